//! Message flow: acks, receipts, duplicates, `Received`, history.

use super::tests::*;
use super::*;

fn new_app() -> App {
    fresh(64 * 1024, None, false)
        .with_stored_history(true)
        .with_utc_times()
}

/// A history message (sealed by Nick1 when `mine`, else by Nick2), with counter `seq`.
fn earlier(seq: u64, mine: bool, text: &str) -> Event {
    let id = [seq as u8; 16];
    let sealer = if mine {
        channel("Nick1", "Nick2")
    } else {
        channel("Nick2", "Nick1")
    };
    Event::Frame(Frame::Earlier(EarlierMessage {
        seq,
        sent_ms: 1_795_624_800_000,
        mine,
        id,
        body: sealer.seal(&id, seq, &[text]).expect("sealed"),
    }))
}

fn history_end(count: u32, more: bool) -> Event {
    Event::Frame(Frame::HistoryEnd { count, more })
}

fn line(text: &str) -> Event {
    Event::Line(text.into())
}

#[test]
fn acks_pop_the_queue_in_send_order() {
    let mut app = chatting(new_app(), "Nick2");
    for text in ["a", "b", "c"] {
        app.handle(line(text));
    }
    assert!(app.handle(ack(2, 5)).is_empty());
    // One is still unacknowledged, so leaving waits for it.
    let effects = app.handle(line("/exit"));
    assert_eq!(effects, [Effect::WaitForAcks]);
    let effects = app.handle(ack(1, 7));
    assert_eq!(sends(&effects), [Frame::Bye]);
    assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
}

#[test]
fn receipts_are_one_line_per_batch() {
    let mut app = log_in(new_app(), "Nick1");
    app.handle(Event::Frame(Frame::WaitingFor("Nick2".into())));
    app.handle(conversation("Nick2", 0));
    for text in ["a", "b", "c"] {
        app.handle(line(text));
    }
    assert!(app.handle(ack(1, 1)).is_empty());
    assert!(app.handle(ack(2, 2)).is_empty());
    assert_eq!(
        texts(&app.handle(Event::Drained)),
        ["✓ Stored for Nick2 (away): 3 message(s)"]
    );
    assert!(app.handle(Event::Drained).is_empty());
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    app.handle(Event::Frame(Frame::Delivered(2)));
    app.handle(Event::Frame(Frame::Delivered(3)));
    assert_eq!(
        texts(&app.handle(Event::Drained)),
        ["✓✓ 3 messages delivered to Nick2"]
    );
    app.handle(line("d"));
    app.handle(ack(1, 5));
    app.handle(Event::Frame(Frame::Delivered(5)));
    let effects = app.handle(Event::Drained);
    assert_eq!(texts(&effects), ["✓✓ Delivered to Nick2"]);
    assert!(matches!(
        &effects[0],
        Effect::Show(Line {
            style: Style::Notice,
            ..
        })
    ));
}

#[test]
fn a_relay_without_history_says_so_in_receipts() {
    let mut app = log_in(fresh(100, None, false), "Nick1");
    app.handle(Event::Frame(Frame::WaitingFor("Nick2".into())));
    app.handle(conversation("Nick2", 0));
    app.handle(line("a"));
    app.handle(ack(1, 1));
    assert_eq!(
        texts(&app.handle(Event::Drained)),
        ["✓ Accepted by the server, but Nick2 is away and this server keeps no history: 1 message(s)"]
    );
}

#[test]
fn a_redelivered_id_is_shown_once() {
    let mut app = chatting(new_app(), "Nick2");
    assert_eq!(
        texts(&app.handle(incoming(1, 7, "once"))),
        ["💬 Companion: once"]
    );
    // Delivered again under its number (after a reconnect): dropped quietly.
    assert!(app.handle(incoming(1, 7, "once")).is_empty());
    // Numbered anew (a replay, or a re-send after a relay crash): not shown, but said.
    let renumbered = texts(&app.handle(incoming(2, 7, "once")));
    assert_eq!(renumbered.len(), 1);
    assert!(
        renumbered[0].contains("arrived again under a new number"),
        "{renumbered:?}"
    );
    assert_eq!(
        texts(&app.handle(incoming(3, 8, "twice"))),
        ["💬 Companion: twice"]
    );
}

#[test]
fn received_is_sent_once_per_batch() {
    let mut app = chatting(new_app(), "Nick2");
    for seq in 1..=3 {
        assert!(sends(&app.handle(incoming(seq, seq as u8, "hi"))).is_empty());
    }
    assert_eq!(sends(&app.handle(Event::Drained)), [Frame::Received(3)]);
    assert!(sends(&app.handle(Event::Drained)).is_empty());
}

#[test]
fn history_comes_before_what_arrived_meanwhile() {
    let mut app = log_in(new_app().with_history(20), "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    let effects = app.handle(conversation("Nick2", 5));
    assert_eq!(
        sends(&effects),
        [Frame::History {
            before: 6,
            limit: 20
        }]
    );
    assert!(app.handle(incoming(6, 6, "missed")).is_empty());
    assert!(
        sends(&app.handle(Event::Drained)).is_empty(),
        "not shown yet"
    );
    app.handle(earlier(4, true, "mine"));
    app.handle(earlier(5, false, "theirs"));
    let effects = app.handle(history_end(2, false));
    assert_eq!(
        texts(&effects),
        [
            "📜 Earlier messages with Nick2:",
            "📜 [2026-11-25 16:40] You: mine",
            "📜 [2026-11-25 16:40] Nick2: theirs",
            "💬 Companion: missed"
        ]
    );
    assert!(matches!(
        &effects[1],
        Effect::Show(Line {
            style: Style::Earlier,
            ..
        })
    ));
    assert_eq!(sends(&app.handle(Event::Drained)), [Frame::Received(6)]);
    // A copy of a history message arriving live is a duplicate.
    assert!(app.handle(incoming(5, 5, "theirs")).is_empty());
}

#[test]
fn the_opening_page_shows_what_you_had_then_what_you_missed() {
    let mut app = log_in(new_app().with_history(20), "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    let effects = app.handle(Event::Frame(Frame::Conversation(ConversationInfo {
        companion: "Nick2".into(),
        companion_key: key_of("Nick2"),
        last_seq: 8,
        read_through: 5,
        their_read_through: 5,
        last_from_you: 5,
        last_id_from_you: [5; 16],
    })));
    // Up to what we had; what we missed comes live.
    assert_eq!(
        sends(&effects),
        [Frame::History {
            before: 6,
            limit: 20
        }]
    );
    // A missed message arrives live while the page is on its way, and waits for it.
    assert!(app.handle(incoming(7, 7, "seven")).is_empty());
    app.handle(earlier(4, false, "four"));
    app.handle(earlier(5, true, "five"));
    assert_eq!(
        texts(&app.handle(history_end(2, false))),
        [
            "📜 Earlier messages with Nick2:",
            "📜 [2026-11-25 16:40] Nick2: four",
            "📜 [2026-11-25 16:40] You: five",
            "💬 Companion: seven",
        ]
    );
    assert_eq!(sends(&app.handle(Event::Drained)), [Frame::Received(7)]);
    // More missed messages after the page are shown as they come.
    assert_eq!(
        texts(&app.handle(incoming(8, 8, "eight"))),
        ["💬 Companion: eight"]
    );
}

#[test]
fn empty_history_prints_nothing_and_is_asked_once_per_companion() {
    let mut app = log_in(new_app().with_history(20), "Nick1");
    app.handle(Event::Frame(Frame::WaitingFor("Nick2".into())));
    assert_eq!(sends(&app.handle(conversation("Nick2", 3))).len(), 1);
    assert!(app.handle(history_end(0, false)).is_empty());
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    assert!(sends(&app.handle(conversation("nick2", 3))).is_empty());
    app.handle(Event::Frame(Frame::Paired("Nick3".into())));
    assert_eq!(sends(&app.handle(conversation("Nick3", 9))).len(), 1);
}

#[test]
fn history_pages_back_from_the_oldest_shown() {
    let mut app = log_in(new_app().with_history(2), "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    app.handle(conversation("Nick2", 10));
    app.handle(earlier(9, false, "nine"));
    app.handle(earlier(10, true, "ten"));
    let shown = texts(&app.handle(history_end(2, true)));
    assert_eq!(
        shown[0],
        "📜 Earlier messages with Nick2 (/history shows more):"
    );
    assert_eq!(
        sends(&app.handle(line("/history 5"))),
        [Frame::History {
            before: 9,
            limit: 5
        }]
    );
    let effects = app.handle(line("/history"));
    assert!(sends(&effects).is_empty());
    assert_eq!(
        texts(&effects),
        ["⏳ Earlier messages are still on their way"]
    );
    app.handle(earlier(8, false, "eight"));
    let shown = texts(&app.handle(history_end(1, false)));
    assert_eq!(
        shown,
        [
            "📜 Earlier messages with Nick2:",
            "📜 [2026-11-25 16:40] Nick2: eight"
        ]
    );
    app.handle(line("/history 1"));
    assert_eq!(
        texts(&app.handle(history_end(0, false))),
        ["📜 No earlier messages with Nick2"]
    );
}

#[test]
fn history_needs_a_conversation_and_starts_from_the_latest() {
    let mut app = logged_in("Nick1");
    let shown = texts(&app.handle(line("/history")));
    assert!(shown[0].starts_with("❌ No conversation yet"));
    let mut app = chatting(new_app(), "Nick2");
    assert_eq!(
        sends(&app.handle(line("/history"))),
        [Frame::History {
            before: 0,
            limit: 20
        }]
    );
    let shown = texts(&app.handle(line("/history 0")));
    assert!(shown[0].starts_with("❓ Usage: /history [N]"));
}

#[test]
fn a_companion_whose_connection_broke_is_waited_for() {
    let mut app = chatting(new_app(), "Nick2");
    let shown = texts(&app.handle(Event::Frame(Frame::Left {
        reason: LeftReason::ConnectionLost,
        nick: "Nick2".into(),
    })));
    assert_eq!(shown, ["👋 Nick2 left the chat (connection lost)"]);
    let shown = texts(&app.handle(Event::Frame(Frame::WaitingFor("Nick2".into()))));
    assert_eq!(
        shown,
        ["⏳ Waiting for Nick2 to come back... Messages you send now are stored and delivered when they return."]
    );
    assert_eq!(
        sent_lines(&app.handle(line("still there?"))),
        [sent(1, "still there?")]
    );
}

#[test]
fn waiting_for_someone_says_whether_messages_are_stored() {
    let mut stored = log_in(new_app(), "Nick1");
    let shown = texts(&stored.handle(Event::Frame(Frame::WaitingFor("Nick2".into()))));
    assert_eq!(
        shown,
        ["⏳ Waiting for Nick2 to be free... Messages you send now are stored and delivered when you are connected."]
    );
    let mut live_only = log_in(new_app().with_stored_history(false), "Nick1");
    let shown = texts(&live_only.handle(Event::Frame(Frame::WaitingFor("Nick2".into()))));
    assert_eq!(
        shown,
        ["⏳ Waiting for Nick2 to be free... Messages you send now are held and delivered when you are connected."]
    );
}

#[test]
fn live_messages_wait_for_the_end_and_overflow_is_released() {
    use crate::history::MAX_HELD_BACK;
    let mut app = log_in(new_app().with_history(5), "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    app.handle(conversation("Nick2", 3));
    let nick2 = channel("Nick2", "Nick1");
    let live = |seq: u64| {
        let id = (seq as u128).to_be_bytes();
        Event::Frame(Frame::Message(ChatMessage {
            seq,
            sent_ms: 0,
            id,
            body: nick2
                .seal(&id, seq, &[&format!("live {seq}")])
                .expect("sealed"),
        }))
    };
    for seq in 4..4 + MAX_HELD_BACK as u64 {
        assert!(app.handle(live(seq)).is_empty());
    }
    // One too many: everything that waited goes, in order, with it.
    let released = texts(&app.handle(live(99_999)));
    assert_eq!(released.len(), MAX_HELD_BACK + 1);
    assert_eq!(released[0], "💬 Companion: live 4");
    assert_eq!(released[MAX_HELD_BACK], "💬 Companion: live 99999");
    assert_eq!(texts(&app.handle(live(100_000))).len(), 1);
    // The answer still ends the request; nothing is left waiting behind it.
    app.handle(earlier(2, false, "old"));
    assert_eq!(
        texts(&app.handle(history_end(1, false))),
        [
            "📜 Earlier messages with Nick2:",
            "📜 [2026-11-25 16:40] Nick2: old"
        ]
    );
}
