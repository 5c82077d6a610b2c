//! Lost connections, resuming, failed stores, and leaving with messages in flight.

use super::tests::*;
use super::*;
use crate::outbox::MAX_UNACKED;

fn new_app() -> App {
    fresh(64 * 1024, None, false)
        .with_reconnect(true)
        .with_stored_history(true)
}

fn line(text: &str) -> Event {
    Event::Line(text.into())
}

/// The challenge of every new connection in these tests.
const CHALLENGE: [u8; 32] = [7; 32];

fn reconnected() -> Event {
    Event::Reconnected {
        max_message: 64 * 1024,
        stored_history: true,
        challenge: CHALLENGE,
    }
}

/// `Resume` for Nick1, signed over the new connection's challenge.
fn resume() -> Frame {
    let me = identity_of("Nick1");
    Frame::Resume {
        nick: "Nick1".into(),
        token: [0xAB; 16],
        key: me.public_key(),
        proof: me.sign_login(&CHALLENGE, "Nick1"),
    }
}

fn error(code: ErrorCode, fatal: bool, text: &str) -> Event {
    Event::Frame(Frame::Error {
        code,
        fatal,
        text: text.into(),
    })
}

fn resumed_conversation(last_from_you: u64, last_id_from_you: MessageId) -> Event {
    Event::Frame(Frame::Conversation(ConversationInfo {
        companion: "Nick2".into(),
        companion_key: key_of("Nick2"),
        last_seq: last_from_you,
        read_through: 0,
        their_read_through: 0,
        last_from_you,
        last_id_from_you,
    }))
}

#[test]
fn resume_sends_again_only_what_the_relay_does_not_hold() {
    let mut app = chatting(new_app(), "Nick2");
    for text in ["one", "two", "three"] {
        app.handle(line(text));
    }
    app.handle(ack(1, 1));
    let effects = app.handle(Event::ConnectionLost("the connection was reset".into()));
    assert_eq!(
        texts(&effects),
        ["⚠️ Lost connection to the chat server: the connection was reset. Reconnecting…"]
    );
    assert_eq!(effects.last(), Some(&Effect::Reconnect));
    // Typing goes on meanwhile; it is queued, not sent.
    let effects = app.handle(line("four"));
    assert!(sends(&effects).is_empty());
    assert_eq!(effects.last(), Some(&Effect::Prompt(Prompt::Message)));
    assert_eq!(
        sends(&app.handle(reconnected())),
        [Frame::ChatWith("Nick2".into()), resume()]
    );
    assert!(
        sends(&app.handle(line("five"))).is_empty(),
        "not before the resync"
    );
    assert!(sends(&app.handle(nick_ok("Nick1"))).is_empty());
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    // The relay stored "two" (seq 2) but never got "three".
    // "three" goes again as it was; what was typed meanwhile goes packed in one envelope.
    let effects = app.handle(resumed_conversation(2, id(2)));
    assert_eq!(
        sent_lines(&effects),
        [
            sent(3, "three"),
            (id(4), vec!["four".to_owned(), "five".to_owned()])
        ]
    );
    app.handle(ack(2, 3));
    let effects = app.handle(line("/exit"));
    assert_eq!(sends(&effects), [Frame::Bye]);
}

#[test]
fn resume_sends_everything_when_the_last_stored_id_is_not_queued() {
    let mut app = chatting(new_app(), "Nick2");
    app.handle(line("a"));
    app.handle(line("b"));
    app.handle(Event::ConnectionLost("reset".into()));
    app.handle(reconnected());
    app.handle(nick_ok("Nick1"));
    let shown = texts(&app.handle(Event::Frame(Frame::WaitingFor("Nick2".into()))));
    assert!(shown[0].starts_with("⏳ Waiting for Nick2 to come back..."));
    let effects = app.handle(resumed_conversation(9, [0xEE; 16]));
    assert_eq!(sent_lines(&effects), [sent(1, "a"), sent(2, "b")]);
}

#[test]
fn the_opening_history_is_not_shown_again_after_a_reconnect() {
    let mut app = log_in(new_app().with_history(20), "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert_eq!(sends(&app.handle(conversation("Nick2", 4))).len(), 1);
    app.handle(Event::Frame(Frame::HistoryEnd {
        count: 0,
        more: false,
    }));
    app.handle(Event::ConnectionLost("reset".into()));
    app.handle(reconnected());
    app.handle(nick_ok("Nick1"));
    assert!(sends(&app.handle(conversation("Nick2", 4))).is_empty());
}

#[test]
fn waiting_for_anyone_keeps_lines_across_a_reconnect_until_a_key() {
    let mut app = log_in(new_app(), "Nick1");
    app.handle(Event::Frame(Frame::Waiting));
    assert!(sends(&app.handle(line("early"))).is_empty());
    app.handle(Event::ConnectionLost("reset".into()));
    assert_eq!(sends(&app.handle(reconnected())), [resume()]);
    assert!(sends(&app.handle(nick_ok("Nick1"))).is_empty());
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    let effects = app.handle(conversation("Nick2", 0));
    assert_eq!(sent_lines(&effects), [sent(1, "early")]);
}

#[test]
fn replaced_ends_without_reconnecting() {
    let mut app = chatting(new_app(), "Nick2");
    let effects = app.handle(error(ErrorCode::Replaced, true, "resumed elsewhere"));
    assert_eq!(
        texts(&effects),
        ["❌ Another connection resumed Nick1, so the server closed this one (resumed elsewhere); not reconnecting"]
    );
    assert!(!effects.contains(&Effect::Reconnect));
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
    assert!(app
        .handle(Event::ConnectionLost("closed".into()))
        .is_empty());
}

#[test]
fn shutdown_and_timeouts_reconnect_other_fatal_errors_end() {
    let mut app = chatting(new_app(), "Nick2");
    let effects = app.handle(Event::Frame(Frame::Shutdown("restart".into())));
    assert_eq!(
        texts(&effects),
        ["⚠️ Lost connection to the chat server: the server is shutting down (restart). Reconnecting…"]
    );
    assert_eq!(effects.last(), Some(&Effect::Reconnect));
    let mut app = chatting(new_app(), "Nick2");
    let effects = app.handle(error(ErrorCode::Timeout, true, "silent too long"));
    assert_eq!(effects.last(), Some(&Effect::Reconnect));
    let mut app = chatting(new_app(), "Nick2");
    let effects = app.handle(error(ErrorCode::UnexpectedFrame, true, "what?"));
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
}

#[test]
fn giving_up_on_reconnecting_exits_non_zero() {
    let mut app = chatting(new_app(), "Nick2");
    app.handle(Event::ConnectionLost("reset".into()));
    let effects = app.handle(Event::ReconnectFailed(
        "connection refused; gave up after 5m".into(),
    ));
    assert_eq!(
        texts(&effects),
        ["❌ Could not reconnect to the chat server: connection refused; gave up after 5m"]
    );
    assert!(sends(&effects).is_empty());
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
}

#[test]
fn a_wrong_token_on_resume_ends_the_client() {
    let mut app = chatting(new_app(), "Nick2");
    app.handle(Event::ConnectionLost("reset".into()));
    app.handle(reconnected());
    let effects = app.handle(error(ErrorCode::NickTaken, false, "taken"));
    assert_eq!(
        texts(&effects),
        ["❌ Could not take back the nickname Nick1 after reconnecting: taken"]
    );
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
}

#[test]
fn a_lost_connection_before_the_nickname_asks_for_it_again() {
    let mut app = fresh(100, None, false).with_reconnect(true);
    app.start();
    app.handle(line("Nick1"));
    app.handle(Event::ConnectionLost("reset".into()));
    assert_eq!(
        sends(&app.handle(reconnected())),
        [nick_frame_for("Nick1", &CHALLENGE)]
    );
}

#[test]
fn leaving_waits_a_moment_for_acks() {
    let mut app = chatting(new_app(), "Nick2");
    app.handle(line("a"));
    app.handle(line("b"));
    let effects = app.handle(Event::InputEnded);
    assert_eq!(effects, [Effect::WaitForAcks]);
    app.handle(ack(1, 1));
    assert!(app.handle(line("ignored")).is_empty());
    let effects = app.handle(Event::AckWaitOver);
    assert_eq!(
        texts(&effects),
        ["⚠️ 1 message(s) were not confirmed by the server"]
    );
    assert_eq!(sends(&effects), [Frame::Bye]);
    assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
}

#[test]
fn news_of_the_companion_does_not_undo_leaving() {
    let mut app = chatting(new_app(), "Nick2");
    app.handle(line("last words"));
    assert_eq!(app.handle(line("/exit")), [Effect::WaitForAcks]);
    // The companion leaves too before our ack arrives: we still leave once it does.
    app.handle(Event::Frame(Frame::Left {
        reason: LeftReason::Quit,
        nick: "Nick2".into(),
    }));
    app.handle(Event::Frame(Frame::WaitingFor("Nick2".into())));
    let effects = app.handle(ack(1, 7));
    assert_eq!(sends(&effects), [Frame::Bye]);
    assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
}

#[test]
fn quitting_while_reconnecting_is_immediate() {
    for quit in [Event::Interrupted, Event::InputEnded, line("/exit")] {
        let mut app = chatting(new_app(), "Nick2");
        app.handle(Event::ConnectionLost("reset".into()));
        app.handle(line("queued"));
        let effects = app.handle(quit);
        assert_eq!(
            texts(&effects),
            ["⚠️ 1 message(s) were not confirmed by the server"]
        );
        assert!(sends(&effects).is_empty(), "no connection to say Bye on");
        assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
    }
}

#[test]
fn end_of_piped_input_while_reconnecting_stays_to_send() {
    let mut app = fresh(100, Some("Nick1".into()), true).with_reconnect(true);
    app.start();
    app.handle(nick_ok("Nick1"));
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    app.handle(line("a"));
    app.handle(Event::ConnectionLost("reset".into()));
    let effects = app.handle(Event::InputEnded);
    assert_eq!(
        texts(&effects),
        ["⏳ End of input: staying to send 1 queued message(s) once reconnected (Ctrl+C quits now)"]
    );
    assert!(!effects.contains(&Effect::Close { code: 0 }));
    app.handle(reconnected());
    app.handle(nick_ok("Nick1"));
    let effects = app.handle(resumed_conversation(0, [0; 16]));
    assert_eq!(sent_lines(&effects), [sent(1, "a")]);
    assert_eq!(effects.last(), Some(&Effect::WaitForAcks));
    let effects = app.handle(ack(1, 1));
    assert_eq!(sends(&effects), [Frame::Bye]);
}

#[test]
fn a_failed_store_is_sent_again_with_the_next_message() {
    let mut app = chatting(new_app(), "Nick2");
    app.handle(line("a"));
    let effects = app.handle(error(ErrorCode::StoreFailed, false, "disk full"));
    assert_eq!(
        texts(&effects),
        ["⚠️ The server could not store your messages (disk full); 1 will be sent again with your next one"]
    );
    assert_eq!(
        sent_lines(&app.handle(line("b"))),
        [sent(1, "a"), sent(2, "b")]
    );
}

#[test]
fn a_refused_held_message_is_forgotten() {
    let mut app = chatting(new_app(), "Nick2");
    app.handle(line("kept"));
    app.handle(line("too many"));
    let shown = texts(&app.handle(error(ErrorCode::HeldFull, false, "held messages are full")));
    assert_eq!(
        shown,
        ["⚠️ held messages are full: “too many” was not sent"]
    );
    let effects = app.handle(Event::Interrupted);
    assert_eq!(
        texts(&effects),
        ["⚠️ 1 message(s) were not confirmed by the server"]
    );
}

#[test]
fn input_stops_at_the_unacked_bound_and_commands_need_a_connection() {
    let mut app = chatting(new_app(), "Nick2");
    for _ in 0..MAX_UNACKED {
        app.handle(line("x"));
    }
    assert!(!app.accepts_input());
    app.handle(ack(1, 1));
    assert!(app.accepts_input());
    app.handle(Event::ConnectionLost("reset".into()));
    let shown = texts(&app.handle(line("/who")));
    assert!(shown[0].starts_with("⚠️ Not connected to the chat server"));
}
