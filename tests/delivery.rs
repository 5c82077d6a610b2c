//! The delivery guarantees of protocol 2, driven frame by frame with a raw client: sequence
//! numbers, acknowledgements after storing, receipts, resuming a nickname, history paging, and
//! the bad inputs around them.

mod support;

use p2pchat_proto::{ErrorCode, Frame, PROTOCOL_VERSION};
use support::{msg, text_of, Raw, Server};

fn seq_of(frame: &Frame) -> u64 {
    match frame {
        Frame::Message(message) => message.seq,
        other => panic!("not a message: {other:?}"),
    }
}

/// The next chat message, skipping other frames.
fn next_message(raw: &mut Raw) -> Frame {
    raw.recv_until(|f| matches!(f, Frame::Message(_)))
}

/// Waits until `count` messages are acknowledged, in as many `Ack` frames as it takes.
fn await_acks(raw: &mut Raw, count: u32) {
    let mut acked = 0;
    while acked < count {
        acked += ack(raw).0;
    }
}

fn ack(raw: &mut Raw) -> (u32, u64) {
    match raw.recv_until(|f| matches!(f, Frame::Ack { .. })) {
        Frame::Ack { count, first_seq } => (count, first_seq),
        _ => unreachable!(),
    }
}

#[test]
fn both_sides_share_one_increasing_numbering_and_are_acknowledged() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    a.send(&msg("one"));
    assert_eq!(ack(&mut a), (1, 1));
    let first = next_message(&mut b);
    assert_eq!((text_of(&first), seq_of(&first)), (Some("one"), 1));
    b.send(&msg("two"));
    b.send(&msg("three"));
    let mut acked = 0;
    while acked < 2 {
        let (count, first_seq) = ack(&mut b);
        assert_eq!(first_seq, 2 + acked);
        acked += u64::from(count);
    }
    let second = next_message(&mut a);
    let third = next_message(&mut a);
    assert_eq!((seq_of(&second), seq_of(&third)), (2, 3));
    match second {
        Frame::Message(message) => assert!(message.sent_ms > 1_700_000_000_000),
        _ => unreachable!(),
    }
}

#[test]
fn received_turns_into_delivered_for_the_sender() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    a.send(&msg("hello"));
    let seq = seq_of(&next_message(&mut b));
    b.send(&Frame::Received(seq));
    assert_eq!(
        a.recv_until(|f| matches!(f, Frame::Delivered(_))),
        Frame::Delivered(seq)
    );
    // Claiming more than exists is clamped, and going backwards is ignored.
    b.send(&Frame::Received(1_000_000));
    b.send(&Frame::Received(0));
    support::assert_chat_works(&mut a, &mut b, "after odd receipts");
}

#[test]
fn missed_messages_come_first_when_a_member_returns() {
    let server = Server::plain(&[]);
    let (mut a, b) = Raw::pair(server.port, "Ann", "Bob");
    drop(b);
    assert!(matches!(
        a.recv_until(|f| matches!(f, Frame::Left { .. })),
        Frame::Left { .. }
    ));
    assert_eq!(
        a.recv_until(|f| matches!(f, Frame::WaitingFor(_))),
        Frame::WaitingFor("Bob".into())
    );
    a.expect_conversation();
    for i in 0..50 {
        a.send(&msg(&format!("while away {i}")));
    }
    await_acks(&mut a, 50);
    let (mut b, paired) = Raw::login(server.port, "Bob");
    assert_eq!(paired, Frame::Paired("Ann".into()));
    for i in 0..50 {
        assert_eq!(b.recv_text(), format!("while away {i}"));
    }
    support::assert_chat_works(&mut a, &mut b, "after the return");
}

#[test]
fn the_conversation_frame_says_what_the_relay_has_from_you() {
    let mut server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    let last = msg("remember me");
    let Frame::Message(ref sent) = last else {
        unreachable!()
    };
    let id = sent.id;
    a.send(&last);
    ack(&mut a);
    let seq = seq_of(&next_message(&mut b));
    b.send(&Frame::Received(seq));
    a.recv_until(|f| matches!(f, Frame::Delivered(_)));
    drop((a, b));
    server.kill9();
    server.restart();
    let mut a = Raw::connect(server.port);
    a.hello();
    a.send(&Frame::ChatWith("Bob".into()));
    a.send(&a.nick_frame("Ann"));
    assert!(matches!(a.recv(), Frame::NickOk { .. }));
    assert_eq!(a.recv(), Frame::WaitingFor("Bob".into()));
    let info = a.expect_conversation();
    assert_eq!(info.companion, "Bob");
    assert_eq!((info.last_seq, info.last_from_you), (seq, seq));
    assert_eq!(info.last_id_from_you, id);
    assert_eq!(info.their_read_through, seq);
}

#[test]
fn resuming_with_the_token_replaces_the_old_connection() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    let _ = (&mut a, &mut b);
    // The token came with NickOk; log in again by hand to see it.
    let mut c = Raw::connect(server.port);
    c.hello();
    c.send(&c.nick_frame("Cy"));
    let Frame::NickOk { token, .. } = c.recv() else {
        panic!("no NickOk")
    };
    assert_eq!(c.recv(), Frame::Waiting);
    // A wrong token is refused; the right one takes over and the old connection is closed.
    let mut thief = Raw::connect(server.port);
    thief.hello();
    thief.send(&thief.resume_frame("Cy", [0x42; 16]));
    assert!(matches!(
        thief.recv(),
        Frame::Error {
            code: ErrorCode::NickTaken,
            ..
        }
    ));
    let mut again = Raw::connect(server.port);
    again.hello();
    again.send(&again.resume_frame("Cy", token));
    assert!(matches!(again.recv(), Frame::NickOk { .. }));
    assert_eq!(again.recv(), Frame::Waiting);
    let closing = c.expect_closed();
    assert!(
        closing.iter().any(|f| matches!(
            f,
            Frame::Error {
                code: ErrorCode::Replaced,
                fatal: true,
                ..
            }
        )),
        "{closing:?}"
    );
    support::assert_chat_works(&mut a, &mut b, "others unaffected");
}

#[test]
fn history_pages_backwards_and_says_when_there_is_more() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    for i in 1..=30 {
        a.send(&msg(&format!("m{i}")));
        assert_eq!(b.recv_text(), format!("m{i}"));
    }
    await_acks(&mut a, 30);
    b.send(&Frame::History {
        before: 0,
        limit: 20,
    });
    let mut page = Vec::new();
    let end = loop {
        match b.recv() {
            Frame::Earlier(earlier) => page.push(earlier),
            frame @ Frame::HistoryEnd { .. } => break frame,
            _ => {}
        }
    };
    assert_eq!(
        end,
        Frame::HistoryEnd {
            count: 20,
            more: true
        }
    );
    let texts: Vec<String> = page
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    let expected: Vec<String> = (11..=30).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    assert!(page.iter().all(|m| !m.mine));
    b.send(&Frame::History {
        before: page[0].seq,
        limit: 20,
    });
    let mut older = Vec::new();
    let end = loop {
        match b.recv() {
            Frame::Earlier(earlier) => {
                older.push(String::from_utf8_lossy(&earlier.body).into_owned())
            }
            frame @ Frame::HistoryEnd { .. } => break frame,
            _ => {}
        }
    };
    assert_eq!(
        end,
        Frame::HistoryEnd {
            count: 10,
            more: false
        }
    );
    assert_eq!(older, (1..=10).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[test]
fn bad_delivery_frames_get_an_error_and_break_nothing() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    // A Message too short to hold its seq, time and id.
    a.send_bytes(&[0, 0, 0, 4, 0x07, b'a', b'b', b'c']);
    assert!(matches!(
        a.recv_until(|f| matches!(f, Frame::Error { .. })),
        Frame::Error {
            code: ErrorCode::MalformedFrame,
            fatal: false,
            ..
        }
    ));
    // Relay-only frames from a client.
    a.send(&Frame::Ack {
        count: 1,
        first_seq: 1,
    });
    a.send(&Frame::Delivered(3));
    for _ in 0..2 {
        assert!(matches!(
            a.recv_until(|f| matches!(f, Frame::Error { .. })),
            Frame::Error {
                code: ErrorCode::UnexpectedFrame,
                ..
            }
        ));
    }
    support::assert_chat_works(&mut a, &mut b, "after bad frames");
    // A version-1 client is told which version this relay speaks.
    let mut old = Raw::connect(server.port);
    old.send(&Frame::Hello {
        version: PROTOCOL_VERSION - 1,
        features: 0,
        client: "old".into(),
    });
    assert!(matches!(
        old.recv(),
        Frame::Error {
            code: ErrorCode::UnsupportedVersion,
            fatal: true,
            ..
        }
    ));
}

#[test]
fn without_history_acks_come_at_once_and_history_is_empty() {
    let server = Server::plain(&["--no-history"]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    a.send(&msg("live only"));
    assert_eq!(ack(&mut a), (1, 1));
    assert_eq!(b.recv_text(), "live only");
    b.send(&Frame::History {
        before: 0,
        limit: 20,
    });
    assert_eq!(
        b.recv_until(|f| matches!(f, Frame::HistoryEnd { .. })),
        Frame::HistoryEnd {
            count: 0,
            more: false
        }
    );
}

#[test]
fn odd_history_and_resume_requests_are_answered_and_break_nothing() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    for i in 0..250 {
        a.send(&msg(&format!("n{i}")));
    }
    for i in 0..250 {
        assert_eq!(b.recv_text(), format!("n{i}"));
    }
    await_acks(&mut a, 250);
    // A limit of 0 is an empty answer; a huge one is capped at 200 and says there is more.
    b.send(&Frame::History {
        before: 0,
        limit: 0,
    });
    assert_eq!(
        b.recv_until(|f| matches!(f, Frame::HistoryEnd { .. })),
        Frame::HistoryEnd {
            count: 0,
            more: false
        }
    );
    b.send(&Frame::History {
        before: 0,
        limit: u32::MAX,
    });
    assert_eq!(
        b.recv_until(|f| matches!(f, Frame::HistoryEnd { .. })),
        Frame::HistoryEnd {
            count: 200,
            more: true
        }
    );
    // History and receipts before a nickname are refused without closing anything.
    let mut early = Raw::connect(server.port);
    early.hello();
    early.send(&Frame::History {
        before: 0,
        limit: 5,
    });
    assert!(matches!(
        early.recv(),
        Frame::Error {
            code: ErrorCode::UnexpectedFrame,
            fatal: false,
            ..
        }
    ));
    // A Resume too short to hold its token is malformed; the connection goes on.
    early.send_bytes(&[0, 0, 0, 4, 0x12, 1, 2, 3]);
    assert!(matches!(
        early.recv(),
        Frame::Error {
            code: ErrorCode::MalformedFrame,
            fatal: false,
            ..
        }
    ));
    early.send(&early.nick_frame("Cleo"));
    assert!(matches!(early.recv(), Frame::NickOk { .. }));
    support::assert_chat_works(&mut a, &mut b, "after odd requests");
}

#[test]
fn a_receipt_arriving_after_the_companion_left_still_counts() {
    let mut server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Ann", "Bob");
    b.send(&msg("last words"));
    let seq = seq_of(&next_message(&mut a));
    b.send(&Frame::Bye);
    b.expect_closed();
    a.recv_until(|f| matches!(f, Frame::Waiting));
    // Ann's receipt for Bob's last message reaches the relay after Bob has gone.
    a.send(&Frame::Received(seq));
    a.send(&Frame::Bye);
    a.expect_closed();
    server.signal("TERM");
    let _ = server.wait_exit();
    server.restart();
    let mut a = Raw::connect(server.port);
    a.hello();
    a.send(&Frame::ChatWith("Bob".into()));
    a.send(&a.nick_frame("Ann"));
    a.recv_until(|f| matches!(f, Frame::WaitingFor(_)));
    assert_eq!(a.expect_conversation().read_through, seq);
}
