//! Bad input on the raw protocol: each gets a clear error (or log line), the offender is closed
//! only when it must be, and a conversation running beside it is untouched.

mod support;

use std::io::Write;

use p2pchat_proto::{encode_to_vec, ErrorCode, Frame, LeftReason, PROTOCOL_VERSION};
use support::{assert_chat_works, msg, Raw, Server};

/// A server with one healthy conversation already running on it.
fn server_with_probe(extra: &[&str]) -> (Server, Raw, Raw) {
    let server = Server::plain(extra);
    let (a, b) = Raw::pair(server.port, "ProbeA", "ProbeB");
    (server, a, b)
}

fn error_code(frame: &Frame) -> (ErrorCode, bool) {
    match frame {
        Frame::Error { code, fatal, .. } => (*code, *fatal),
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

#[test]
fn garbage_bytes_are_refused_and_closed() {
    let (server, mut a, mut b) = server_with_probe(&[]);
    let mut raw = server.raw();
    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let frames = raw.expect_closed();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(error_code(&frames[0]), (ErrorCode::HelloRequired, true));
    server.expect_log("malformed frame");
    assert_chat_works(&mut a, &mut b, "after garbage");
}

#[test]
fn a_first_frame_other_than_hello_is_refused() {
    let (server, mut a, mut b) = server_with_probe(&[]);
    let mut raw = server.raw();
    raw.send(&raw.nick_frame("Sneaky"));
    let frames = raw.expect_closed();
    assert_eq!(error_code(&frames[0]), (ErrorCode::HelloRequired, true));
    let mut raw = server.raw();
    raw.send(&Frame::Hello {
        version: 0,
        features: 0,
        client: "ancient".into(),
    });
    let frames = raw.expect_closed();
    assert_eq!(
        error_code(&frames[0]),
        (ErrorCode::UnsupportedVersion, true)
    );
    assert_chat_works(&mut a, &mut b, "after bad hellos");
}

#[test]
fn a_newer_client_is_answered_in_this_version() {
    let server = Server::plain(&[]);
    let mut raw = server.raw();
    raw.send(&Frame::Hello {
        version: 7,
        features: u32::MAX,
        client: "future".into(),
    });
    match raw.recv() {
        Frame::Welcome {
            version, features, ..
        } => assert_eq!(
            (version, features),
            (PROTOCOL_VERSION, p2pchat_proto::FEATURE_HISTORY)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_length_over_the_limit_is_refused_before_it_is_read() {
    let (server, mut a, mut b) = server_with_probe(&["--max-message", "1000"]);
    let (mut raw, _) = Raw::login(server.port, "Big");
    // Announce 100 MB and send only the header: the relay must answer without waiting for it.
    raw.send_bytes(&[0x05, 0xF5, 0xE1, 0x00, 0x07]);
    let frames = raw.expect_closed();
    assert_eq!(
        error_code(frames.last().expect("an error")),
        (ErrorCode::FrameTooLarge, true)
    );
    server.expect_log("is over the limit");
    assert_chat_works(&mut a, &mut b, "after oversized frame");
}

#[test]
fn a_zero_length_frame_is_refused() {
    let server = Server::plain(&[]);
    let (mut raw, _) = Raw::login(server.port, "Zero");
    raw.send_bytes(&[0, 0, 0, 0, 0]);
    let frames = raw.expect_closed();
    assert_eq!(
        error_code(frames.last().expect("an error")),
        (ErrorCode::MalformedFrame, true)
    );
}

#[test]
fn unknown_type_and_relay_only_frames_are_skipped_with_an_error() {
    let (server, mut a, mut b) = server_with_probe(&[]);
    let (mut raw, _) = Raw::login(server.port, "Odd");
    raw.send_bytes(&[0, 0, 0, 3, 0x7E, 1, 2]);
    assert_eq!(error_code(&raw.recv()), (ErrorCode::UnknownType, false));
    raw.send(&Frame::Waiting);
    assert_eq!(error_code(&raw.recv()), (ErrorCode::UnexpectedFrame, false));
    raw.send(&raw.nick_frame("Again"));
    assert_eq!(error_code(&raw.recv()), (ErrorCode::UnexpectedFrame, false));
    raw.send(&Frame::Ping(99));
    assert_eq!(
        raw.recv(),
        Frame::Pong(99),
        "the connection is still usable"
    );
    server.expect_log("unknown frame type 0x7e");
    assert_chat_works(&mut a, &mut b, "after unknown type");
}

#[test]
fn bodies_are_opaque_but_text_fields_must_be_utf8() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Sender", "Receiver");
    // A message body is an end-to-end envelope: bytes the relay forwards as they are.
    let mut opaque = encode_to_vec(&msg("ab"));
    let len = opaque.len();
    opaque[len - 2..].copy_from_slice(&[0xC3, 0x28]);
    a.send_bytes(&opaque);
    match b.recv_until(|f| matches!(f, Frame::Message(_))) {
        Frame::Message(message) => assert_eq!(message.body, [0xC3, 0x28]),
        _ => unreachable!(),
    }
    // A nickname, though, is text.
    let mut bad = encode_to_vec(&Frame::ChatWith("ab".into()));
    let len = bad.len();
    bad[len - 2..].copy_from_slice(&[0xC3, 0x28]);
    a.send_bytes(&bad);
    let refused = a.recv_until(|f| matches!(f, Frame::Error { .. }));
    assert_eq!(error_code(&refused), (ErrorCode::InvalidUtf8, false));
    a.send(&msg("valid"));
    assert_eq!(b.recv_text(), "valid");
    server.expect_log("not valid UTF-8");
}

#[test]
fn empty_and_overlong_messages_are_refused() {
    let server = Server::plain(&["--max-message", "10"]);
    let (mut a, mut b) = Raw::pair(server.port, "Sender", "Receiver");
    a.send(&msg(""));
    assert_eq!(error_code(&a.recv()), (ErrorCode::EmptyMessage, false));
    a.send(&msg(&"x".repeat(11)));
    assert_eq!(error_code(&a.recv()), (ErrorCode::FrameTooLarge, false));
    a.send(&msg(&"x".repeat(10)));
    assert_eq!(b.recv_text(), "x".repeat(10));
}

#[test]
fn a_message_before_the_nickname_is_refused() {
    let server = Server::plain(&[]);
    let mut raw = server.raw();
    raw.hello();
    raw.send(&msg("too soon"));
    assert_eq!(error_code(&raw.recv()), (ErrorCode::NotLoggedIn, false));
    raw.send(&raw.nick_frame("Patient"));
    assert!(matches!(raw.recv(), Frame::NickOk { nick, .. } if nick == "Patient"));
}

#[test]
fn bad_nicknames_get_reasons_and_a_retry() {
    let (server, mut a, mut b) = server_with_probe(&[]);
    let mut raw = server.raw();
    raw.hello();
    let cases = [
        (String::new(), ErrorCode::NickInvalid, "empty"),
        ("n".repeat(33), ErrorCode::NickInvalid, "at most 32"),
        ("probea".into(), ErrorCode::NickTaken, "already taken"),
        ("bad\u{7}bell".into(), ErrorCode::NickInvalid, "control"),
        ("new\nline".into(), ErrorCode::NickInvalid, "control"),
        ("has space".into(), ErrorCode::NickInvalid, "white space"),
        (
            "in\u{200b}visible".into(),
            ErrorCode::NickInvalid,
            "invisible",
        ),
    ];
    for (nick, expected, reason) in cases {
        raw.send(&raw.nick_frame(&nick));
        match raw.recv() {
            Frame::Error { code, fatal, text } => {
                assert_eq!((code, fatal), (expected, false), "{nick:?}");
                assert!(text.contains(reason), "{nick:?}: {text}");
            }
            other => panic!("{nick:?}: {other:?}"),
        }
    }
    raw.send(&raw.nick_frame("Finally"));
    assert!(matches!(raw.recv(), Frame::NickOk { nick, .. } if nick == "Finally"));
    server.expect_log("🚫 Client 3 nickname \"probea\" rejected");
    assert_chat_works(&mut a, &mut b, "after bad nicknames");
}

#[test]
fn a_silent_connection_is_timed_out_at_login() {
    let (server, mut a, mut b) = server_with_probe(&["--login-timeout", "1s"]);
    let mut silent = server.raw();
    let frames = silent.expect_closed();
    assert_eq!(
        error_code(frames.last().expect("an error")),
        (ErrorCode::Timeout, true)
    );
    server.expect_log("⏱️ Client 3 timed out: no nickname within 1s");
    assert_chat_works(&mut a, &mut b, "after a silent client");
}

#[test]
fn a_client_killed_mid_frame_is_a_lost_connection() {
    let server = Server::plain(&[]);
    let (a, mut b) = Raw::pair(server.port, "Cut", "Left");
    let frame = encode_to_vec(&msg("never finished"));
    let mut stream = a.stream;
    stream.write_all(&frame[..7]).expect("half a frame");
    drop(stream);
    assert_eq!(
        b.recv(),
        Frame::Left {
            reason: LeftReason::ConnectionLost,
            nick: "Cut".into()
        }
    );
    // The relay keeps their conversation: Left waits for Cut to come back.
    assert_eq!(b.recv(), Frame::WaitingFor("Cut".into()));
    server.expect_log("🔴 Client 1 (Cut) connection lost in the middle of a frame");
}

#[test]
fn held_messages_beyond_the_allowance_are_refused_not_dropped_silently() {
    let server = Server::plain(&["--max-held", "100"]);
    let (mut a, waiting) = Raw::login(server.port, "Hoarder");
    assert_eq!(waiting, Frame::Waiting);
    // Each 10-byte message is a 47-byte frame: two fit in 100 bytes, the rest do not, even a
    // shorter one after them (what is kept stays the oldest, without gaps): one error each.
    for i in 0..3 {
        a.send(&msg(&format!("held {i:05}")));
    }
    a.send(&msg("x"));
    assert_eq!(error_code(&a.recv()), (ErrorCode::HeldFull, false));
    assert_eq!(error_code(&a.recv()), (ErrorCode::HeldFull, false));
    let (mut b, paired) = Raw::login(server.port, "Finder");
    assert_eq!(paired, Frame::Paired("Hoarder".into()));
    assert_eq!(b.recv_text(), "held 00000");
    assert_eq!(b.recv_text(), "held 00001");
    a.send(&msg("live"));
    assert_eq!(b.recv_text(), "live");
}

#[test]
fn who_and_chat_with_on_the_raw_protocol() {
    let server = Server::plain(&[]);
    let mut raw = server.raw();
    raw.hello();
    raw.send(&Frame::ChatWith("bad name".into()));
    assert_eq!(error_code(&raw.recv()), (ErrorCode::NickInvalid, false));
    raw.send(&Frame::Who);
    assert_eq!(
        raw.recv(),
        Frame::Online {
            total: 0,
            entries: vec![]
        }
    );
    raw.send(&Frame::ChatWith("Friend".into()));
    raw.send(&raw.nick_frame("Me"));
    assert!(matches!(raw.recv(), Frame::NickOk { nick, .. } if nick == "Me"));
    assert_eq!(raw.recv(), Frame::WaitingFor("Friend".into()));
    raw.expect_conversation();
    raw.send(&Frame::ChatWith("me".into()));
    let refused = raw.recv();
    assert_eq!(error_code(&refused), (ErrorCode::NickInvalid, false));
    let (_friend, paired) = Raw::login(server.port, "Friend");
    assert_eq!(paired, Frame::Paired("Me".into()));
    assert_eq!(raw.recv(), Frame::Paired("Friend".into()));
}
