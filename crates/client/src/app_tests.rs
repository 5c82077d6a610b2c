//! The app's basic paths: login, pairing, commands, leaving. `conversation_tests.rs`,
//! `reconnect_tests.rs` and `encryption_tests.rs` use the helpers here. Everyone's identity is
//! derived from their nickname, so a test can seal and open as any of them.

use super::*;
pub(super) use p2pchat_proto::{
    fold_nick, ChatMessage, ConversationInfo, EarlierMessage, ErrorCode, LeftReason, MessageId,
    OnlineEntry, PublicKey,
};
pub(super) use p2pchat_secure::{Channel, Identity};

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

/// The identity of whoever uses `nick` in tests.
pub(super) fn identity_of(nick: &str) -> Identity {
    let mut seed = [0x5A; 32];
    for (at, byte) in fold_nick(nick).bytes().take(32).enumerate() {
        seed[at] = byte;
    }
    Identity::from_seed(&seed)
}

pub(super) fn key_of(nick: &str) -> PublicKey {
    identity_of(nick).public_key()
}

/// The channel `from` seals with to `to`.
pub(super) fn channel(from: &str, to: &str) -> Channel {
    Channel::new(&identity_of(from), &key_of(to)).expect("test keys are valid")
}

/// A new app for Nick1.
pub(super) fn fresh(max_message: u32, preset_nick: Option<String>, scripted: bool) -> App {
    App::new(identity_of("Nick1"), max_message, preset_nick, scripted)
}

/// The `Nick` frame Nick1's app sends for `nick` on a connection whose challenge is `challenge`.
pub(super) fn nick_frame_for(nick: &str, challenge: &Challenge) -> Frame {
    let me = identity_of("Nick1");
    Frame::Nick {
        nick: nick.into(),
        key: me.public_key(),
        proof: me.sign_login(challenge, nick),
    }
}

/// The `Nick` frame on the first connection (the challenge is all zero in tests).
pub(super) fn nick_frame(nick: &str) -> Frame {
    nick_frame_for(nick, &[0; 32])
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

/// The app's `n`th batch holding just `text`, as `sent_lines` shows it.
pub(super) fn sent(n: u128, text: &str) -> (MessageId, Vec<String>) {
    (id(n), vec![text.to_owned()])
}

/// The messages the effects send, opened as Nick2 would: each one's id and lines.
pub(super) fn sent_lines(effects: &[Effect]) -> Vec<(MessageId, Vec<String>)> {
    let nick2 = channel("Nick2", "Nick1");
    sends(effects)
        .into_iter()
        .filter_map(|frame| match frame {
            Frame::Message(message) => {
                let plain = nick2
                    .open(false, &message.id, &message.body)
                    .expect("sealed for Nick2");
                Some((message.id, plain.texts))
            }
            _ => None,
        })
        .collect()
}

/// A message from Nick2, sealed with counter `seq`.
pub(super) fn incoming(seq: u64, id_byte: u8, text: &str) -> Event {
    incoming_counted(seq, id_byte, seq, &[text])
}

/// A message from Nick2 with these lines and this counter.
pub(super) fn incoming_counted(seq: u64, id_byte: u8, counter: u64, lines: &[&str]) -> Event {
    let id = [id_byte; 16];
    Event::Frame(Frame::Message(ChatMessage {
        seq,
        sent_ms: 1_795_624_800_000,
        id,
        body: channel("Nick2", "Nick1")
            .seal(&id, counter, lines)
            .expect("sealed"),
    }))
}

pub(super) fn logged_in(nick: &str) -> App {
    log_in(fresh(64 * 1024, None, false), nick)
}

pub(super) fn log_in(mut app: App, nick: &str) -> App {
    assert_eq!(app.start(), [Effect::Prompt(Prompt::Nick)]);
    assert_eq!(
        sends(&app.handle(Event::Line(nick.into()))),
        [nick_frame(nick)]
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
        companion_key: key_of(companion),
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
    let shown = texts(&app.handle(conversation("Nick2", 0)));
    assert_eq!(shown.len(), 1);
    assert!(shown[0].starts_with("🔑 Nick2's identity key is "));
    assert!(shown[0].ends_with(" — compare safety numbers with /verify"));
    let typed = app.handle(Event::Line("Sup".into()));
    assert_eq!(sent_lines(&typed), [sent(1, "Sup")]);
    assert_eq!(typed.last(), Some(&Effect::Prompt(Prompt::Message)));
    let shown = app.handle(incoming(1, 1, "Hi:>"));
    assert_eq!(texts(&shown), ["💬 Companion: Hi:>"]);
}

#[test]
fn preset_nick_is_sent_at_once() {
    let mut app = fresh(100, Some("Nick1".into()), true);
    assert_eq!(app.start(), [Effect::Send(nick_frame("Nick1"))]);
}

#[test]
fn rejected_nick_asks_again_interactively() {
    let mut app = fresh(100, None, false);
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
        [nick_frame("Nick3")]
    );
}

#[test]
fn invalid_nick_is_refused_locally_and_asked_again() {
    let mut app = fresh(100, None, true);
    app.start();
    let effects = app.handle(Event::Line("two words".into()));
    assert!(sends(&effects).is_empty());
    assert!(texts(&effects)[0].contains("white space"));
    assert_eq!(effects.last(), Some(&Effect::Prompt(Prompt::Nick)));
}

#[test]
fn rejected_preset_nick_ends_a_script() {
    let mut app = fresh(100, Some("Nick1".into()), true);
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
    assert!(sends(&app.handle(Event::Line("early".into()))).is_empty());
    let shown = app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert_eq!(texts(&shown), ["💬 Companion: Connected to Nick2"]);
    // Sealed and sent once the companion's key is known.
    let effects = app.handle(conversation("Nick2", 0));
    assert_eq!(sent_lines(&effects), [sent(1, "early")]);
    assert_eq!(
        texts(&effects).last().map(String::as_str),
        Some("📨 The messages you sent while waiting went to Nick2")
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
    // Paired, but no key yet: still waiting.
    let effects = app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert!(sends(&effects).is_empty());
    assert!(!effects.contains(&Effect::WaitForAcks));
    // The key: the message goes, then wait (bounded) for its ack, then say goodbye.
    let effects = app.handle(conversation("Nick2", 0));
    assert_eq!(sent_lines(&effects), [sent(1, "early")]);
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
    // An envelope adds 56 bytes to a line: this relay's limit leaves 8 for the text.
    let mut app = chatting(fresh(64, None, false), "Nick2");
    assert!(sends(&app.handle(Event::Line("   ".into()))).is_empty());
    let effects = app.handle(Event::Line("123456789".into()));
    assert!(sends(&effects).is_empty());
    assert_eq!(
        texts(&effects),
        ["❌ Message too long: 9 bytes (the limit is 8); not sent"]
    );
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
    let mut app = chatting(fresh(64 * 1024, None, false), "Nick2");
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
    let mut app = fresh(100, Some("Nick1".into()), true).with_companion(Some("Nick2".into()));
    assert_eq!(
        app.start(),
        [
            Effect::Send(Frame::ChatWith("Nick2".into())),
            Effect::Send(nick_frame("Nick1"))
        ]
    );
    app.handle(nick_ok("Nick1"));
    let shown = texts(&app.handle(Event::Frame(Frame::WaitingFor("Nick2".into()))));
    assert!(shown[0].starts_with("⏳ Waiting for Nick2 to be free"));
    let mut bad = fresh(100, None, true).with_companion(Some("two words".into()));
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
