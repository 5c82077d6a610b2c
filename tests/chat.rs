//! End-to-end chat through the real binary: a relay and scripted clients, as users run them.

mod support;

use support::{Client, Server};

#[test]
fn the_designs_transcript() {
    let server = Server::start(&[]);
    let nick1 = server.start_client(&[]);
    // A first run creates the identity key and trusts the relay's certificate, and says so.
    assert!(nick1
        .next_line()
        .starts_with("🔑 Created your identity key in "));
    assert!(nick1
        .next_line()
        .starts_with("🔐 First connection to 127.0.0.1:"));
    let banner = nick1.next_line();
    assert_eq!(
        banner,
        format!("🔌 Connected to chat server at 127.0.0.1:{}", server.port)
    );
    assert_eq!(nick1.next_line(), "Type /exit to quit");
    nick1.say("Nick1");
    nick1.expect("Waiting for a companion");
    let nick2 = server.client("Nick2");
    nick2.expect("💬 Companion: Connected to Nick1");
    nick1.expect("💬 Companion: Connected to Nick2");
    nick1.say("Sup");
    assert_eq!(nick2.expect("Sup"), "💬 Companion: Sup");
    nick2.say("Hi:>");
    assert_eq!(nick1.expect("Hi:>"), "💬 Companion: Hi:>");

    for line in [
        "- INFO - 🚀 Chat server started on 127.0.0.1:",
        "- INFO - 🟢 Waiting for 2 clients to connect...",
        "- INFO - 🔵 Client 1 connected from 127.0.0.1:",
        "- INFO - 🟣 Client 2 connected from 127.0.0.1:",
        "- INFO - 👤 Client 1 nickname: Nick1",
        "- INFO - 👤 Client 2 nickname: Nick2",
        "- INFO - 💬 Chat session started",
    ] {
        let logged = server.log().into_iter().find(|l| l.contains(line));
        let logged = logged.unwrap_or_else(|| panic!("no log line with {line:?}"));
        // `2026-11-25 15:45:22 - INFO - ...`: a date, a time, then the level.
        let (stamp, _) = logged.split_once(" - ").expect("timestamped");
        assert_eq!(stamp.len(), "2026-11-25 15:45:22".len(), "{logged}");
    }
}

#[test]
fn nick_flag_skips_the_prompt() {
    let server = Server::start(&[]);
    let a = server.start_client(&["--nick", "Nick1"]);
    a.expect("Waiting for a companion");
    let b = server.start_client(&["--nick", "Nick2"]);
    b.expect("Connected to Nick1");
    b.say("first line is a message");
    a.expect("💬 Companion: first line is a message");
}

#[test]
fn messages_typed_while_waiting_are_delivered_in_order() {
    let server = Server::start(&[]);
    let a = server.client("Early");
    a.expect("Waiting for a companion");
    for text in ["one", "two", "three"] {
        a.say(text);
    }
    let b = server.client("Late");
    assert_eq!(
        b.expect("Companion: Connected"),
        "💬 Companion: Connected to Early"
    );
    b.expect("🔑 Early's identity key is ");
    for text in ["one", "two", "three"] {
        assert_eq!(b.next_line(), format!("💬 Companion: {text}"));
    }
    a.expect("The messages you sent while waiting went to Late");
}

#[test]
fn piped_input_ending_while_held_waits_to_deliver() {
    let server = Server::start(&[]);
    let mut a = server.client("Sender");
    a.expect("Waiting for a companion");
    a.say("kept for you");
    a.close_input();
    a.expect("End of input");
    let b = server.client("Receiver");
    b.expect("💬 Companion: kept for you");
    assert!(a.wait_exit().success());
    b.expect("👋 Sender left the chat");
}

#[test]
fn three_conversations_never_see_each_others_messages() {
    let server = Server::start(&[]);
    let pairs: Vec<(Client, Client)> = (1..=3)
        .map(|i| server.pair(&format!("A{i}"), &format!("B{i}")))
        .collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        a.say(&format!("secret from A{}", i + 1));
        b.say(&format!("secret from B{}", i + 1));
    }
    for (i, (a, b)) in pairs.iter().enumerate() {
        assert_eq!(
            b.expect("secret"),
            format!("💬 Companion: secret from A{}", i + 1)
        );
        assert_eq!(
            a.expect("secret"),
            format!("💬 Companion: secret from B{}", i + 1)
        );
    }
    for (a, b) in &pairs {
        a.say("/exit");
        b.expect("left the chat");
    }
    for (i, (a, b)) in pairs.iter().enumerate() {
        let secrets = |c: &Client| -> Vec<String> {
            c.output()
                .into_iter()
                .filter(|l| l.contains("secret"))
                .collect()
        };
        assert_eq!(
            secrets(a),
            [format!("💬 Companion: secret from B{}", i + 1)]
        );
        assert_eq!(
            secrets(b),
            [format!("💬 Companion: secret from A{}", i + 1)]
        );
    }
}

#[test]
fn ten_thousand_messages_arrive_complete_and_in_order() {
    let server = Server::start(&[]);
    let (a, b) = server.pair("Bulk", "Sink");
    let mut batch = String::new();
    for i in 0..10_000 {
        batch.push_str(&format!("message {i:05}\n"));
    }
    let writer = std::thread::spawn(move || {
        a.type_bytes(batch.as_bytes());
        a
    });
    for i in 0..10_000 {
        assert_eq!(b.next_line(), format!("💬 Companion: message {i:05}"));
    }
    let a = writer.join().expect("writer thread");
    a.say("/exit");
    b.expect("👋 Bulk left the chat");
}

#[test]
fn unicode_messages_and_nicknames() {
    let server = Server::start(&[]);
    let (a, b) = server.pair("Зоя", "李小龙");
    let texts = [
        "😀🎉 emoji 👨‍👩‍👧",
        "中文、日本語、한국어",
        "שלום עולם",
        "مرحبا بالعالم",
    ];
    for text in texts {
        a.say(text);
        assert_eq!(b.expect("Companion:"), format!("💬 Companion: {text}"));
        b.say(text);
        assert_eq!(a.expect("Companion:"), format!("💬 Companion: {text}"));
    }
}

#[test]
fn exit_leaves_cleanly_and_the_companion_is_paired_again() {
    let server = Server::start(&[]);
    let (mut a, b) = server.pair("Nick1", "Nick2");
    a.say("/exit");
    assert!(a.wait_exit().success(), "/exit exits 0");
    assert_eq!(b.expect("left"), "👋 Nick1 left the chat");
    b.expect("Waiting for a companion");
    server.expect_log("👋 Client 1 (Nick1) left the chat");
    let c = server.client("Nick3");
    c.expect("💬 Companion: Connected to Nick2");
    b.expect("💬 Companion: Connected to Nick3");
    b.say("welcome");
    c.expect("💬 Companion: welcome");
}

#[test]
fn end_of_input_and_ctrl_c_leave_cleanly() {
    let server = Server::start(&[]);
    let (mut a, b) = server.pair("Eof", "Stays");
    a.say("last words");
    a.close_input();
    assert!(a.wait_exit().success(), "end of input exits 0");
    b.expect("💬 Companion: last words");
    b.expect("👋 Eof left the chat");

    let mut c = server.client("Interrupted");
    c.expect("Connected to Stays");
    support::signal(&c.child, "INT");
    assert!(c.wait_exit().success(), "Ctrl+C exits 0");
    b.expect("👋 Interrupted left the chat");
}

#[test]
fn rejected_nickname_can_be_retried_without_reconnecting() {
    let server = Server::start(&[]);
    let a = server.client("Taken");
    a.expect("Waiting");
    // The same identity as Taken's owner: the nickname is refused only because it is in use.
    let key = support::identity_file("Taken");
    let b = server.start_client(&["--identity", key.to_str().expect("UTF-8 path")]);
    b.say("taken");
    assert_eq!(
        b.expect("rejected"),
        "❌ Nickname rejected: the nickname taken is already taken"
    );
    b.say("two words");
    assert!(b.expect("rejected").contains("white space"));
    b.say(&"x".repeat(33));
    assert!(b.expect("rejected").contains("at most 32"));
    b.say("Free");
    b.expect("Connected to Taken");
    server.expect_log("🚫 Client 2 nickname \"taken\" rejected");
    assert!(
        server
            .log()
            .iter()
            .filter(|l| l.contains("connected from"))
            .count()
            == 2,
        "the retry used the same connection"
    );
}

#[test]
fn overlong_and_empty_lines_are_not_sent() {
    // 72 bytes of body: 56 of end-to-end envelope, 16 of text.
    let server = Server::start(&["--max-message", "72"]);
    let (a, b) = server.pair("Writer", "Reader");
    a.say("");
    a.say("   ");
    a.say("this line is longer than sixteen bytes");
    a.expect("Message too long");
    a.say("short enough");
    assert_eq!(b.expect("Companion:"), "💬 Companion: short enough");
}

#[test]
fn to_waits_for_the_companion_asked_for() {
    let server = Server::start(&[]);
    let a = server.start_client(&["--nick", "Alice", "--to", "Bob"]);
    assert_eq!(
        a.expect("Waiting for"),
        "⏳ Waiting for Bob to be free... Messages you send now are stored and delivered when you are connected."
    );
    a.say("for Bob only");
    // A newcomer who takes anyone is not given Alice: she waits for Bob.
    let carol = server.client("Carol");
    carol.expect("Waiting for a companion");
    let bob = server.client("Bob");
    bob.expect("💬 Companion: Connected to Alice");
    bob.expect("💬 Companion: for Bob only");
    a.expect("💬 Companion: Connected to Bob");
    server.expect_log("🎯 Alice is waiting for Bob");
    assert!(!carol.output().iter().any(|l| l.contains("for Bob only")));
}

#[test]
fn who_lists_people_and_chat_switches_companion() {
    let server = Server::start(&[]);
    let (a, b) = server.pair("Nick1", "Nick2");
    let c = server.client("Nick3");
    c.expect("Waiting for a companion");
    a.say("/who");
    assert_eq!(
        a.expect("Online"),
        "👥 Online (3): Nick1 (chatting), Nick2 (chatting), Nick3 (waiting)"
    );
    a.say("/chat Nick3");
    a.expect("💬 Companion: Connected to Nick3");
    c.expect("💬 Companion: Connected to Nick1");
    b.expect("👋 Nick1 left the chat");
    b.expect("Waiting for a companion");
    a.say("hello Nick3");
    c.expect("💬 Companion: hello Nick3");
    a.say("/chat two words");
    a.expect("❌ Cannot chat with two words: a nickname cannot contain spaces");
}
