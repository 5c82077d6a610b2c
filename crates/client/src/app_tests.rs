use super::*;

fn texts(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Show(line) => Some(line.text.clone()),
            _ => None,
        })
        .collect()
}

fn sends(effects: &[Effect]) -> Vec<Frame> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Send(frame) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn logged_in(nick: &str) -> App {
    let mut app = App::new(64 * 1024, None, false);
    assert_eq!(app.start(), [Effect::Prompt(Prompt::Nick)]);
    assert_eq!(
        sends(&app.handle(Event::Line(nick.into()))),
        [Frame::Nick(nick.into())]
    );
    app.handle(Event::Frame(Frame::NickOk(nick.into())));
    app
}

#[test]
fn the_designs_conversation() {
    let mut app = logged_in("Nick1");
    let shown = app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert_eq!(texts(&shown), ["💬 Companion: Connected to Nick2"]);
    let typed = app.handle(Event::Line("Sup".into()));
    assert_eq!(sends(&typed), [Frame::Message("Sup".into())]);
    assert_eq!(typed.last(), Some(&Effect::Prompt(Prompt::Message)));
    let shown = app.handle(Event::Frame(Frame::Message("Hi:>".into())));
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
    let effects = app.handle(Event::Frame(Frame::Paired("Nick2".into())));
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
    app.handle(Event::Frame(Frame::NickOk("Nick1".into())));
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
    let shown = app.handle(Event::Frame(Frame::Message("\u{1b}[2Jhi\nthere".into())));
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
    app.handle(Event::Frame(Frame::NickOk("Nick1".into())));
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
