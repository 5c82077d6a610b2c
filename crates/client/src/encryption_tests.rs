//! End-to-end encryption in the app: logging in with a key, companions' keys pinned (first,
//! same, changed), lines waiting for a key, batching, refusing forged, unreadable and replayed
//! messages, and `/verify` and `/release`.

use super::tests::*;
use super::*;
use p2pchat_secure::{key_fingerprint, safety_number, verify_login};

fn app() -> App {
    fresh(64 * 1024, None, false).with_stored_history(true)
}

fn line(text: &str) -> Event {
    Event::Line(text.into())
}

fn error(code: ErrorCode) -> Event {
    Event::Frame(Frame::Error {
        code,
        fatal: false,
        text: "refused".into(),
    })
}

/// A `Conversation` frame naming `companion` with `key`.
fn conversation_with_key(companion: &str, key: PublicKey) -> Event {
    Event::Frame(Frame::Conversation(ConversationInfo {
        companion: companion.into(),
        companion_key: key,
        last_seq: 0,
        read_through: 0,
        their_read_through: 0,
        last_from_you: 0,
        last_id_from_you: [0; 16],
    }))
}

/// A live message with this body.
fn raw_message(seq: u64, id_byte: u8, body: Vec<u8>) -> Event {
    Event::Frame(Frame::Message(ChatMessage {
        seq,
        sent_ms: 0,
        id: [id_byte; 16],
        body,
    }))
}

#[test]
fn the_login_proof_is_made_for_this_connection() {
    let mut app = fresh(100, Some("Nick1".into()), true).with_challenge([3; 32]);
    let effects = app.start();
    let Some(Effect::Send(Frame::Nick { nick, key, proof })) = effects.first() else {
        panic!("expected a Nick frame, got {effects:?}");
    };
    assert_eq!(key, &key_of("Nick1"));
    assert!(verify_login(key, &[3; 32], nick, proof));
    assert!(!verify_login(key, &[0; 32], nick, proof));
}

#[test]
fn a_nickname_owned_by_another_key_asks_for_another() {
    let mut app = fresh(100, None, false);
    app.start();
    app.handle(line("bob"));
    let effects = app.handle(error(ErrorCode::NickOwned));
    assert_eq!(
        texts(&effects),
        ["❌ The nickname bob belongs to another identity key; choose another nickname, or start the client with the --identity file that registered it"]
    );
    assert_eq!(effects.last(), Some(&Effect::Prompt(Prompt::Nick)));
    assert_eq!(sends(&app.handle(line("bob2"))), [nick_frame("bob2")]);
    let effects = app.handle(error(ErrorCode::BadProof));
    assert!(texts(&effects)[0]
        .starts_with("❌ The server could not verify your identity key's signature"));
    assert_eq!(effects.last(), Some(&Effect::Prompt(Prompt::Nick)));
    // A script with --nick ends instead, as for a taken nickname.
    let mut script = fresh(100, Some("bob".into()), true);
    script.start();
    let effects = script.handle(error(ErrorCode::NickOwned));
    assert_eq!(effects.last(), Some(&Effect::Close { code: 1 }));
}

#[test]
fn a_companion_key_is_announced_once_then_pinned() {
    let mut app = log_in(app(), "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    let shown = texts(&app.handle(conversation("Nick2", 0)));
    assert_eq!(
        shown,
        [format!(
            "🔑 Nick2's identity key is {} — compare safety numbers with /verify",
            key_fingerprint(&key_of("Nick2"))
        )]
    );
    // The same key again (a re-pairing, another conversation frame): nothing to say.
    app.handle(Event::Frame(Frame::Paired("Nick3".into())));
    app.handle(conversation("Nick3", 0));
    app.handle(Event::Frame(Frame::Paired("nick2".into())));
    assert!(texts(&app.handle(conversation("nick2", 0))).is_empty());
}

#[test]
fn a_changed_key_is_a_loud_warning_and_the_new_key_is_used() {
    let mut app = chatting(app(), "Nick2");
    app.handle(Event::Frame(Frame::Paired("Nick3".into())));
    app.handle(conversation("Nick3", 0));
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    let shown = texts(&app.handle(conversation_with_key("Nick2", key_of("Mallory"))));
    assert_eq!(
        shown[0],
        "⚠️⚠️⚠️ WARNING: THE IDENTITY KEY OF YOUR COMPANION HAS CHANGED ⚠️⚠️⚠️"
    );
    let all = shown.join("\n");
    assert!(all.contains(&key_fingerprint(&key_of("Nick2"))));
    assert!(all.contains(&key_fingerprint(&key_of("Mallory"))));
    assert!(all.contains("or the relay is trying to read this conversation"));
    assert!(all.contains("/verify"));
    // Pinned now: no second warning.
    assert!(texts(&app.handle(conversation_with_key("Nick2", key_of("Mallory")))).is_empty());
    // What is typed now is sealed to the new key.
    let effects = app.handle(line("hi"));
    let Some(Frame::Message(message)) = sends(&effects).pop() else {
        panic!("expected a message, got {effects:?}");
    };
    let opened = channel("Mallory", "Nick1").open(false, &message.id, &message.body);
    assert_eq!(opened.map(|plain| plain.texts), Ok(vec!["hi".to_owned()]));
}

#[test]
fn lines_wait_for_a_companion_without_a_key() {
    let mut app = log_in(app(), "Nick1");
    app.handle(Event::Frame(Frame::WaitingFor("Nick2".into())));
    let shown = texts(&app.handle(conversation_with_key("Nick2", [0; 32])));
    assert_eq!(
        shown,
        ["⏳ Nick2 has not connected to this relay yet, so messages cannot be encrypted for them; what you type waits here and is sent when Nick2 first connects"]
    );
    assert!(sends(&app.handle(line("one"))).is_empty());
    assert!(sends(&app.handle(line("two"))).is_empty());
    // Said once, not on every conversation frame.
    assert!(texts(&app.handle(conversation_with_key("Nick2", [0; 32]))).is_empty());
    assert!(!app
        .handle(Event::InputEnded)
        .contains(&Effect::Close { code: 0 }));
    // Nick2 connects: both lines go, in one envelope.
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    let effects = app.handle(conversation("Nick2", 0));
    assert_eq!(
        sent_lines(&effects),
        [(id(1), vec!["one".to_owned(), "two".to_owned()])]
    );
    // Input had ended: leave once the batch is acknowledged.
    assert_eq!(effects.last(), Some(&Effect::WaitForAcks));
    let effects = app.handle(ack(1, 1));
    assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
}

#[test]
fn lines_that_arrive_together_go_in_few_envelopes() {
    let mut app = chatting(app(), "Nick2");
    let many: Vec<String> = (0..70).map(|n| format!("line {n}")).collect();
    let effects = app.handle(Event::Lines(many.clone()));
    let batches = sent_lines(&effects);
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].1, many[..64]);
    assert_eq!(batches[1].1, many[64..]);
    assert_eq!(
        effects
            .iter()
            .filter(|effect| matches!(effect, Effect::Prompt(_)))
            .count(),
        1
    );
    // A command among them: what came before it goes first, on its own.
    let effects = app.handle(Event::Lines(vec![
        "a".into(),
        "/who".into(),
        "b".into(),
        "c".into(),
    ]));
    let frames = sends(&effects);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[1], Frame::Who);
    assert_eq!(
        sent_lines(&effects),
        [
            (id(3), vec!["a".to_owned()]),
            (id(4), vec!["b".to_owned(), "c".to_owned()])
        ]
    );
}

#[test]
fn forged_and_unreadable_messages_are_not_shown_but_received() {
    let mut app = chatting(app(), "Nick2");
    let mut forged = channel("Nick2", "Nick1")
        .seal(&[1; 16], 1, &["pay mallory"])
        .expect("sealed");
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        texts(&app.handle(raw_message(1, 1, forged))),
        ["⚠️ A message from Nick2 failed its integrity check and was not shown (altered in transit or by the relay)"]
    );
    // The relay reflecting our own message back as the companion's fails the same way.
    let mine = channel("Nick1", "Nick2")
        .seal(&[2; 16], 2, &["mine"])
        .expect("sealed");
    assert!(texts(&app.handle(raw_message(2, 2, mine)))[0].contains("failed its integrity check"));
    let shown = texts(&app.handle(raw_message(3, 3, b"plain text".to_vec())));
    assert!(shown[0].starts_with(
        "⚠️ A message from Nick2 is not encrypted, or uses an envelope version this client cannot read, so it was not shown"
    ));
    assert_eq!(sends(&app.handle(Event::Drained)), [Frame::Received(3)]);
    // Later genuine messages are shown as usual.
    assert_eq!(
        texts(&app.handle(incoming(4, 4, "genuine"))),
        ["💬 Companion: genuine"]
    );
}

#[test]
fn a_replayed_envelope_under_a_new_id_is_rejected() {
    let mut app = chatting(app(), "Nick2");
    let shown = texts(&app.handle(incoming_counted(1, 1, 500, &["first", "second"])));
    assert_eq!(shown, ["💬 Companion: first", "💬 Companion: second"]);
    // The same id again under its number is the ordinary re-delivery: dropped silently.
    assert!(app
        .handle(incoming_counted(1, 1, 500, &["first"]))
        .is_empty());
    // A new id with an old counter is a replay.
    assert_eq!(
        texts(&app.handle(incoming_counted(3, 2, 499, &["first"]))),
        ["⚠️ A replayed message from Nick2 was rejected"]
    );
    assert_eq!(sends(&app.handle(Event::Drained)), [Frame::Received(3)]);
    assert_eq!(
        texts(&app.handle(incoming_counted(4, 3, 501, &["third"]))),
        ["💬 Companion: third"]
    );
}

#[test]
fn history_raises_the_replay_bar_and_marks_other_keys() {
    let mut app = log_in(app().with_history(20).with_utc_times(), "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    app.handle(conversation("Nick2", 2));
    let earlier = |seq: u64, id: MessageId, body: Vec<u8>| {
        Event::Frame(Frame::Earlier(EarlierMessage {
            seq,
            sent_ms: 1_795_624_800_000,
            mine: false,
            id,
            body,
        }))
    };
    // Written to a key Nick1 had before: cannot be opened any more.
    let old_key = Channel::new(&identity_of("Nick2"), &key_of("old Nick1")).expect("channel");
    app.handle(earlier(
        1,
        [1; 16],
        old_key.seal(&[1; 16], 10, &["old"]).expect("sealed"),
    ));
    let sealed = channel("Nick2", "Nick1")
        .seal(&[2; 16], 900, &["recent"])
        .expect("sealed");
    app.handle(earlier(2, [2; 16], sealed));
    let shown = texts(&app.handle(Event::Frame(Frame::HistoryEnd {
        count: 2,
        more: false,
    })));
    assert_eq!(
        shown,
        [
            "📜 Earlier messages with Nick2:",
            "📜 [2026-11-25 16:40] Nick2: [a message encrypted with another key; cannot be read]",
            "📜 [2026-11-25 16:40] Nick2: recent",
        ]
    );
    assert_eq!(
        texts(&app.handle(incoming_counted(3, 3, 900, &["again"]))),
        ["⚠️ A replayed message from Nick2 was rejected"]
    );
}

#[test]
fn verify_shows_the_safety_number_and_both_fingerprints() {
    let mut alone = logged_in("Nick1");
    let shown = texts(&alone.handle(line("/verify")));
    assert!(shown[0].starts_with("❌ No companion key yet"));
    let mut app = chatting(app(), "Nick2");
    let shown = texts(&app.handle(line("/verify")));
    let number = safety_number(&key_of("Nick1"), &key_of("Nick2"));
    let groups: Vec<&str> = number.split(' ').collect();
    assert_eq!(shown[0], "🔐 Safety number for you and Nick2:");
    assert_eq!(shown[1], format!("     {}", groups[..4].join(" ")));
    assert_eq!(shown[3], format!("     {}", groups[8..].join(" ")));
    assert_eq!(
        shown[4],
        format!("   Your key:    {}", key_fingerprint(&key_of("Nick1")))
    );
    assert_eq!(
        shown[5],
        format!("   Nick2's key: {}", key_fingerprint(&key_of("Nick2")))
    );
    assert!(shown[6].contains("in person or over a call"));
    let shown = texts(&app.handle(line("/whoami")));
    assert_eq!(
        shown,
        [format!(
            "🪪 You are Nick1 (key {})",
            key_fingerprint(&key_of("Nick1"))
        )]
    );
}

#[test]
fn release_gives_the_nickname_up() {
    let mut app = logged_in("Nick1");
    assert_eq!(sends(&app.handle(line("/release"))), [Frame::Release]);
    assert_eq!(
        texts(&app.handle(Event::Frame(Frame::Released("Nick1".into())))),
        ["🔓 Nickname Nick1 released: any key can register it once you leave."]
    );
    let help = texts(&app.handle(line("/help"))).join("\n");
    assert!(help.contains("/verify") && help.contains("/release"));
}
