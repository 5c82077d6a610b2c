//! The app's basic paths: login, pairing, commands, leaving. `conversation_tests.rs` and
//! `reconnect_tests.rs` use the helpers here.

use super::*;
pub(super) use p2pchat_proto::{
    ChatMessage, ConversationInfo, EarlierMessage, ErrorCode, LeftReason,
};

pub(super) fn texts(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Show(line) => Some(line.text.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn sends(effects: &[Effect]) -> Vec<Frame> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Send(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn nick_ok(nick: &str) -> Event {
    Event::Frame(Frame::NickOk {
        nick: nick.into(),
        token: [0xAB; 16],
    })
}

/// The id the app gives its `n`th message (the seed is 0 in tests).
pub(super) fn id(n: u128) -> MessageId {
    n.to_be_bytes()
}

/// The frame that sends the app's `n`th message.
pub(super) fn sent(n: u128, text: &str) -> Frame {
    Frame::Message(ChatMessage {
        seq: 0,
        sent_ms: 0,
        id: id(n),
        text: text.into(),
    })
}

/// A message from the companion.
pub(super) fn incoming(seq: u64, id_byte: u8, text: &str) -> Event {
    Event::Frame(Frame::Message(ChatMessage {
        seq,
        sent_ms: 1_795_624_800_000,
        id: [id_byte; 16],
        text: text.into(),
    }))
}

pub(super) fn logged_in(nick: &str) -> App {
    log_in(App::new(64 * 1024, None, false), nick)
}

pub(super) fn log_in(mut app: App, nick: &str) -> App {
    assert_eq!(app.start(), [Effect::Prompt(Prompt::Nick)]);
    assert_eq!(
        sends(&app.handle(Event::Line(nick.into()))),
        [Frame::Nick(nick.into())]
    );
    app.handle(nick_ok(nick));
    app
}

pub(super) fn ack(count: u32, first_seq: u64) -> Event {
    Event::Frame(Frame::Ack { count, first_seq })
}

/// A `Conversation` frame for a conversation nobody has missed anything of.
pub(super) fn conversation(companion: &str, read_through: u64) -> Event {
    Event::Frame(Frame::Conversation(ConversationInfo {
        companion: companion.into(),
        last_seq: read_through,
        read_through,
        their_read_through: 0,
        last_from_you: 0,
        last_id_from_you: [0; 16],
    }))
}

/// Logged in as Nick1 and paired with `companion` in a new conversation.
pub(super) fn chatting(app: App, companion: &str) -> App {
    let mut app = log_in(app, "Nick1");
    app.handle(Event::Frame(Frame::Paired(companion.into())));
    assert!(sends(&app.handle(conversation(companion, 0))).is_empty());
    app
}

#[test]
fn the_designs_conversation() {
    let mut app = logged_in("Nick1");
    let shown = app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert_eq!(texts(&shown), ["💬 Companion: Connected to Nick2"]);
    let typed = app.handle(Event::Line("Sup".into()));
    assert_eq!(sends(&typed), [sent(1, "Sup")]);
    assert_eq!(typed.last(), Some(&Effect::Prompt(Prompt::Message)));
    let shown = app.handle(incoming(1, 1, "Hi:>"));
    assert_eq!(texts(&shown), ["💬 Companion: Hi:>"]);
}

#[test]
fn preset_nick_is_sent_at_once() {
    let mut app = App::new(100, Some("Nick1".into()), true);
    assert_eq!(app.start(), [Effect::Send(Frame::Nick("Nick1".into()))]);
}

#[test]
fn rejected_nick_asks_again_interactively() {
    let mut app = App::new(100, None, false);
    app.start();
    app.handle(Event::Line("Nick1".into()));
    let effects = app.handle(Event::Frame(Frame::Error {
        code: ErrorCode::NickTaken,
        fatal: false,
        text: "the nickname Nick1 is already taken".into(),
    }));
    assert_eq!(
        texts(&effects),
        ["❌ Nickname rejected: the nickname Nick1 is already taken"]
    );
    assert_eq!(effects.last(), Some(&Effect::Prompt(Prompt::Nick)));
    assert_eq!(
        sends(&app.handle(Event::Line("Nick3".into()))),
        [Frame::Nick("Nick3".into())]
    );
}

#[test]
fn invalid_nick_is_refused_locally_and_asked_again() {
    let mut app = App::new(100, None, true);
    app.start();
    let effects = app.handle(Event::Line("two words".into()));
    assert!(sends(&effects).is_empty());
    assert!(texts(&effects)[0].contains("white space"));
    assert_eq!(effects.last(), Some(&Effect::Prompt(Prompt::Nick)));
}

#[test]
fn rejected_preset_nick_ends_a_script() {
    let mut app = App::new(100, Some("Nick1".into()), true);
    app.start();
    let effects = app.handle(Event::Frame(Frame::Error {
        code: ErrorCode::NickTaken,
        fatal: false,
        text: "taken".into(),
    }));
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
}

#[test]
fn messages_while_waiting_are_held_and_reported() {
    let mut app = logged_in("Nick1");
    let shown = app.handle(Event::Frame(Frame::Waiting));
    assert!(texts(&shown)[0].contains("held"));
    app.handle(Event::Line("early".into()));
    let shown = app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert_eq!(
        texts(&shown),
        [
            "💬 Companion: Connected to Nick2",
            "📨 The messages you sent while waiting were delivered to Nick2"
        ]
    );
}

#[test]
fn end_of_input_with_held_messages_waits_for_a_companion() {
    let mut app = logged_in("Nick1");
    app.handle(Event::Frame(Frame::Waiting));
    app.handle(Event::Line("early".into()));
    let effects = app.handle(Event::InputEnded);
    assert!(sends(&effects).is_empty());
    assert!(texts(&effects)[0].starts_with("⏳ End of input: staying until a companion joins"));
    // Paired: now wait (bounded) for the held message's ack, then say goodbye.
    let effects = app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert!(sends(&effects).is_empty());
    assert_eq!(effects.last(), Some(&Effect::WaitForAcks));
    let effects = app.handle(Event::Frame(Frame::Ack {
        count: 1,
        first_seq: 1,
    }));
    assert_eq!(sends(&effects), [Frame::Bye]);
    assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
}

#[test]
fn exit_says_goodbye_and_ends_cleanly() {
    for event in [
        Event::Line("/exit".into()),
        Event::InputEnded,
        Event::Interrupted,
    ] {
        let mut app = logged_in("Nick1");
        app.handle(Event::Frame(Frame::Paired("Nick2".into())));
        let effects = app.handle(event);
        assert_eq!(sends(&effects), [Frame::Bye]);
        assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
        assert!(app.handle(Event::Line("late".into())).is_empty());
    }
}

#[test]
fn companion_leaving_is_shown_with_the_reason() {
    let mut app = logged_in("Nick2");
    app.handle(Event::Frame(Frame::Paired("Nick1".into())));
    let shown = app.handle(Event::Frame(Frame::Left {
        reason: LeftReason::Quit,
        nick: "Nick1".into(),
    }));
    assert_eq!(texts(&shown), ["👋 Nick1 left the chat"]);
    let shown = app.handle(Event::Frame(Frame::Left {
        reason: LeftReason::ConnectionLost,
        nick: "Nick3".into(),
    }));
    assert_eq!(texts(&shown), ["👋 Nick3 left the chat (connection lost)"]);
}

#[test]
fn empty_and_oversized_lines_are_not_sent() {
    let mut app = App::new(8, None, false);
    app.start();
    app.handle(Event::Line("Nick1".into()));
    app.handle(nick_ok("Nick1"));
    assert!(sends(&app.handle(Event::Line("   ".into()))).is_empty());
    let effects = app.handle(Event::Line("123456789".into()));
    assert!(sends(&effects).is_empty());
    assert!(texts(&effects)[0].contains("too long"));
    assert_eq!(sends(&app.handle(Event::Line("12345678".into()))).len(), 1);
}

#[test]
fn server_going_away_exits_non_zero() {
    let mut app = logged_in("Nick1");
    let effects = app.handle(Event::ConnectionLost("connection reset".into()));
    assert_eq!(
        texts(&effects),
        ["❌ Lost connection to the chat server: connection reset"]
    );
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
    let mut app = logged_in("Nick1");
    let effects = app.handle(Event::Frame(Frame::Shutdown("bye".into())));
    assert_eq!(
        texts(&effects),
        ["🛑 The chat server is shutting down (bye)"]
    );
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
}

#[test]
fn pings_are_answered() {
    let mut app = logged_in("Nick1");
    assert_eq!(
        app.handle(Event::Frame(Frame::Ping(42))),
        [Effect::Send(Frame::Pong(42))]
    );
}

#[test]
fn terminal_escapes_from_the_network_are_defused() {
    let mut app = logged_in("Nick1");
    let shown = app.handle(incoming(1, 1, "\u{1b}[2Jhi\nthere"));
    assert_eq!(texts(&shown), ["💬 Companion: \u{FFFD}[2Jhi↵there"]);
}

#[test]
fn unknown_commands_and_help() {
    let mut app = logged_in("Nick1");
    let shown = texts(&app.handle(Event::Line("/frobnicate".into())));
    assert!(shown[0].contains("Unknown command /frobnicate"));
    let shown = texts(&app.handle(Event::Line("/help".into())));
    assert!(shown.iter().any(|line| line.contains("/exit")));
}

#[test]
fn to_asks_for_the_companion_before_the_nickname() {
    let mut app = App::new(100, Some("Nick1".into()), true).with_companion(Some("Nick2".into()));
    assert_eq!(
        app.start(),
        [
            Effect::Send(Frame::ChatWith("Nick2".into())),
            Effect::Send(Frame::Nick("Nick1".into()))
        ]
    );
    app.handle(nick_ok("Nick1"));
    let shown = texts(&app.handle(Event::Frame(Frame::WaitingFor("Nick2".into()))));
    assert!(shown[0].starts_with("⏳ Waiting for Nick2 to be free"));
    let mut bad = App::new(100, None, true).with_companion(Some("two words".into()));
    assert_eq!(bad.start().last(), Some(&Effect::Close { code: 1 }));
}

#[test]
fn who_and_chat_commands() {
    let mut app = logged_in("Nick1");
    assert_eq!(sends(&app.handle(Event::Line("/who".into()))), [Frame::Who]);
    assert_eq!(
        sends(&app.handle(Event::Line("/chat Nick3".into()))),
        [Frame::ChatWith("Nick3".into())]
    );
    assert_eq!(
        sends(&app.handle(Event::Line("/chat".into()))),
        [Frame::ChatWith(String::new())]
    );
    assert!(sends(&app.handle(Event::Line("/chat bad\u{7}".into()))).is_empty());
    let shown = texts(&app.handle(Event::Frame(Frame::Online {
        total: 3,
        entries: vec![
            OnlineEntry {
                nick: "Nick1".into(),
                chatting: false,
            },
            OnlineEntry {
                nick: "Nick2".into(),
                chatting: true,
            },
        ],
    })));
    assert_eq!(
        shown,
        ["👥 Online (3): Nick1 (waiting), Nick2 (chatting) and 1 more"]
    );
}
