//! Conversations that survive everything: server crashes, client crashes, dropped connections
//! and restarts. Real binaries on loopback; the relay keeps its history in a temporary directory.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::{Client, Proxy, Server};

const COMPANION: &str = "💬 Companion: ";
/// Long exchanges with a crash in the middle take a while on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(90);

fn numbered(tag: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{tag}-{i:05}")).collect()
}

/// Asserts `seen` is exactly `sent`: every message once, in order. Lines that are not messages of
/// `sent` (such as "Connected to …", shown in the same style) are left out first.
fn assert_exactly_once_in_order(seen: &[String], sent: &[String], who: &str) {
    let tag = sent[0].split('-').next().unwrap_or_default().to_owned() + "-";
    let seen: Vec<String> = seen
        .iter()
        .filter(|l| l.starts_with(&tag))
        .cloned()
        .collect();
    let mut counts = std::collections::HashMap::new();
    for line in &seen {
        *counts.entry(line.as_str()).or_insert(0) += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        duplicates.is_empty(),
        "{who} saw duplicates: {duplicates:?}"
    );
    let missing: Vec<_> = sent
        .iter()
        .filter(|m| !counts.contains_key(m.as_str()))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{who} never saw {missing:?} ({} of {})",
        seen.len(),
        sent.len()
    );
    assert_eq!(seen, sent, "{who} saw the messages out of order");
}

/// Numbered messages going both ways between two clients, each typed from a thread of its own.
struct Exchange {
    from_a: Vec<String>,
    from_b: Vec<String>,
    _typing: (std::thread::JoinHandle<()>, std::thread::JoinHandle<()>),
}

impl Exchange {
    /// `a` sends `count` messages tagged `tags.0`, `b` as many tagged `tags.1`.
    fn start(a: &Client, b: &Client, count: usize, tags: (&str, &str)) -> Self {
        let (from_a, from_b) = (numbered(tags.0, count), numbered(tags.1, count));
        let _typing = (a.feed(from_a.clone()), b.feed(from_b.clone()));
        Self {
            from_a,
            from_b,
            _typing,
        }
    }

    /// Waits until each side has shown everything the other sent, then checks it saw each
    /// message exactly once, in order.
    fn assert_complete(&self, a: &Client, b: &Client) {
        b.wait_for_count(COMPANION, self.from_a.len(), LONG);
        a.wait_for_count(COMPANION, self.from_b.len(), LONG);
        assert_exactly_once_in_order(&b.lines_starting(COMPANION), &self.from_a, "Bob");
        assert_exactly_once_in_order(&a.lines_starting(COMPANION), &self.from_b, "Ann");
    }
}

/// Two scripted clients that found each other by name.
fn pair_by_name(server: &Server, port: u16) -> (Client, Client) {
    let a = Client::start(port, &["--nick", "Ann", "--to", "Bob"]);
    a.expect("Waiting for Bob");
    let b = Client::start(port, &["--nick", "Bob", "--to", "Ann"]);
    b.expect("Connected to Ann");
    a.expect("Connected to Bob");
    let _ = server;
    (a, b)
}

/// Both clients send `count` messages while the server is killed with SIGKILL once the
/// receiving side has seen `kill_at`, then restarted on the same data directory.
fn crash_mid_exchange(count: usize, kill_at: usize) {
    let mut server = Server::start(&[]);
    let port = server.port;
    let (a, b) = pair_by_name(&server, port);
    let exchange = Exchange::start(&a, &b, count, ("ann", "bob"));
    b.wait_for_count(COMPANION, kill_at, LONG);
    server.kill9();
    a.expect("Reconnecting");
    b.expect("Reconnecting");
    server.restart();
    a.expect("Reconnected");
    b.expect("Reconnected");
    exchange.assert_complete(&a, &b);
}

#[test]
fn a_server_killed_early_in_an_exchange_loses_and_repeats_nothing() {
    crash_mid_exchange(10_000, 500);
}

#[test]
fn a_server_killed_late_in_an_exchange_loses_and_repeats_nothing() {
    crash_mid_exchange(10_000, 7_000);
}

#[test]
fn a_server_killed_twice_loses_and_repeats_nothing() {
    let mut server = Server::start(&[]);
    let port = server.port;
    let (a, b) = pair_by_name(&server, port);
    let count = 6_000;
    let exchange = Exchange::start(&a, &b, count, ("ann", "bob"));
    for kill_at in [1_000, 3_500] {
        a.wait_for_count(COMPANION, kill_at, LONG);
        server.kill9();
        server.restart();
    }
    exchange.assert_complete(&a, &b);
}

#[test]
fn a_client_killed_mid_stream_gets_what_it_missed_when_it_comes_back() {
    let server = Server::start(&[]);
    let (a, mut b) = pair_by_name(&server, server.port);
    let sent = numbered("ann", 400);
    let feed = a.feed(sent[..200].to_vec());
    b.wait_for_count(COMPANION, 50, LONG);
    b.child.kill().expect("kill -9 Bob");
    let _ = b.wait_exit();
    let before: Vec<String> = b.lines_starting(COMPANION);
    a.expect("Bob left the chat (connection lost)");
    a.expect("Waiting for Bob");
    feed.join().expect("first feed");
    // Ann goes on talking to Bob, who is away: stored, not lost.
    let _more = a.feed(sent[200..].to_vec());
    a.expect("✓ Stored");
    let b2 = server.start_client(&["--nick", "Bob"]);
    b2.expect("Connected to Ann");
    // What Bob had not received arrives now, in order, after what it already had.
    let earlier = b2.lines_starting("📜 [");
    let _ = earlier;
    b2.wait_for_count(COMPANION, 1, LONG);
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let seen: HashSet<String> = before
            .iter()
            .cloned()
            .chain(b2.lines_starting(COMPANION))
            .chain(earlier_texts(&b2))
            .collect();
        if sent.iter().all(|m| seen.contains(m)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Bob never got everything: {} of {}",
            seen.len(),
            sent.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The new messages shown after the restart are in order, each once, and end with the last.
    let fresh: Vec<String> = b2
        .lines_starting(COMPANION)
        .into_iter()
        .filter(|line| line.starts_with("ann-"))
        .collect();
    let start = sent
        .iter()
        .position(|m| *m == fresh[0])
        .expect("a sent message");
    assert_exactly_once_in_order(&fresh, &sent[start..], "Bob after restart");
    assert!(
        start <= before.len(),
        "a gap between what Bob had and what it got back"
    );
    a.expect("✓✓");
}

/// Texts of the history lines (`📜 [date time] Name: text`).
fn earlier_texts(client: &Client) -> Vec<String> {
    client
        .lines_starting("📜 [")
        .into_iter()
        .filter_map(|line| line.split_once("] ").map(|(_, rest)| rest.to_owned()))
        .filter_map(|rest| rest.split_once(": ").map(|(_, text)| text.to_owned()))
        .collect()
}

#[test]
fn a_dropped_connection_is_resumed_without_loss_or_duplicates() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port);
    let a = Client::start(proxy.port, &["--nick", "Ann", "--to", "Bob"]);
    a.expect("Waiting for Bob");
    let b = server.start_client(&["--nick", "Bob", "--to", "Ann"]);
    b.expect("Connected to Ann");
    let count = 5_000;
    let exchange = Exchange::start(&a, &b, count, ("ann", "bob"));
    b.wait_for_count(COMPANION, 1_000, LONG);
    assert_eq!(proxy.cut(), 1, "Ann's connection goes through the proxy");
    a.expect("Reconnecting");
    a.expect("Reconnected");
    exchange.assert_complete(&a, &b);
}

#[test]
fn connections_cut_again_and_again_lose_and_repeat_nothing() {
    let server = Server::start(&[]);
    let (proxy_a, proxy_b) = (Proxy::start(server.port), Proxy::start(server.port));
    let a = Client::start(proxy_a.port, &["--nick", "Ann", "--to", "Bob"]);
    a.expect("Waiting for Bob");
    let b = Client::start(proxy_b.port, &["--nick", "Bob", "--to", "Ann"]);
    b.expect("Connected to Ann");
    let count = 6_000;
    let exchange = Exchange::start(&a, &b, count, ("ann", "bob"));
    // Cut one side, the other, then both at once, while messages flow both ways.
    for (round, at) in [500, 1_500, 2_500, 3_500].into_iter().enumerate() {
        b.wait_for_count(COMPANION, at, LONG);
        match round % 3 {
            0 => proxy_a.cut(),
            1 => proxy_b.cut(),
            _ => proxy_a.cut() + proxy_b.cut(),
        };
    }
    exchange.assert_complete(&a, &b);
    let reconnects = |c: &Client| c.lines_starting("🔌 Reconnected").len();
    assert!(reconnects(&a) >= 1 && reconnects(&b) >= 1, "both were cut");
}

#[test]
fn history_is_shown_in_order_with_its_times_after_a_restart() {
    let mut server = Server::start(&[]);
    let (a, b) = pair_by_name(&server, server.port);
    for i in 1..=3 {
        a.say(&format!("from ann {i}"));
        b.expect(&format!("from ann {i}"));
        b.say(&format!("from bob {i}"));
        a.expect(&format!("from bob {i}"));
    }
    let (mut a, mut b) = (a, b);
    a.say("/exit");
    b.say("/exit");
    // Left cleanly: what each had received is on record (a killed client's last receipt may
    // not be, and then its last message rightly counts as missed).
    assert!(a.wait_exit().success() && b.wait_exit().success());
    server.signal("TERM");
    let _ = server.wait_exit();
    server.restart();
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let a = server.start_client(&["--nick", "Ann", "--to", "Bob"]);
    let b = server.start_client(&["--nick", "Bob", "--to", "Ann"]);
    b.expect("Earlier messages with Ann");
    let expected = [
        ("Ann", "from ann 1"),
        ("You", "from bob 1"),
        ("Ann", "from ann 2"),
        ("You", "from bob 2"),
        ("Ann", "from ann 3"),
        ("You", "from bob 3"),
    ];
    for (who, text) in expected {
        let line = b.expect(&format!("{who}: {text}"));
        assert!(line.starts_with(&format!("📜 [{today} ")), "{line}");
    }
    a.expect("Earlier messages with Bob");
    a.expect("Bob: from bob 3");
    // /history pages further back: here there is nothing before the first.
    b.say("/history 2");
    b.expect("No earlier messages");
}

#[test]
fn messages_for_someone_away_wait_for_them_with_receipts() {
    let server = Server::start(&[]);
    // Bob has been here before, so his nickname has a key to encrypt to.
    let mut b = server.start_client(&["--nick", "Bob"]);
    b.expect("Waiting for a companion");
    b.say("/exit");
    assert!(b.wait_exit().success());
    let a = server.start_client(&["--nick", "Ann", "--to", "Bob"]);
    a.expect("Waiting for Bob");
    a.say("are you there?");
    a.say("call me");
    a.expect("✓ Stored");
    let b = server.start_client(&["--nick", "Bob"]);
    b.expect("Connected to Ann");
    b.expect("💬 Companion: are you there?");
    b.expect("💬 Companion: call me");
    a.expect("✓✓");
}

#[test]
fn messages_for_someone_never_seen_wait_in_the_client_for_their_key() {
    let server = Server::start(&[]);
    let a = server.start_client(&["--nick", "Ann", "--to", "Newcomer"]);
    a.expect("Waiting for Newcomer");
    a.say("welcome aboard");
    a.expect("Newcomer has not connected to this relay yet");
    let b = server.start_client(&["--nick", "Newcomer"]);
    b.expect("Connected to Ann");
    b.expect("💬 Companion: welcome aboard");
    a.expect("✓✓");
}

#[test]
fn without_history_nothing_is_kept_across_a_restart() {
    let mut server = Server::start(&["--no-history"]);
    let (a, b) = pair_by_name(&server, server.port);
    a.say("ephemeral");
    b.expect("💬 Companion: ephemeral");
    drop((a, b));
    server.restart();
    let a = server.start_client(&["--nick", "Ann", "--to", "Bob"]);
    a.expect("Waiting for Bob");
    let b = server.start_client(&["--nick", "Bob", "--to", "Ann"]);
    b.expect("Connected to Ann");
    b.say("fresh");
    a.expect("💬 Companion: fresh");
    assert!(!a.output().iter().any(|l| l.contains("ephemeral")));
    assert!(!b.output().iter().any(|l| l.contains("Earlier messages")));
}

#[test]
fn retention_deletes_old_messages() {
    let mut server = Server::start(&["--retention", "2s"]);
    let (a, b) = pair_by_name(&server, server.port);
    a.say("soon forgotten");
    b.expect("💬 Companion: soon forgotten");
    a.expect("✓✓");
    drop((a, b));
    server.expect_log("Deleted");
    server.restart();
    let a = server.start_client(&["--nick", "Ann", "--to", "Bob"]);
    a.expect("Waiting for Bob");
    let b = server.start_client(&["--nick", "Bob", "--to", "Ann"]);
    b.expect("Connected to Ann");
    b.say("new");
    a.expect("💬 Companion: new");
    assert!(!a.output().iter().any(|l| l.contains("soon forgotten")));
}

/// Starts a relay on `data_dir` that must refuse to start: exit status 1, one sentence, no panic.
/// Returns what it said.
fn refused_at_start(data_dir: &std::path::Path) -> String {
    let output = std::process::Command::new(support::binary())
        .args(["server", "127.0.0.1", "0", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run server");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_corrupt_data_dir_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("history.db"), vec![0x5A; 8192]).expect("write junk");
    let stderr = refused_at_start(dir.path());
    assert!(stderr.contains("Could not open the history in"), "{stderr}");
}

#[test]
fn an_unusable_data_dir_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write file");
    let stderr = refused_at_start(&file.join("history"));
    assert!(
        stderr.contains("Could not create the data directory"),
        "{stderr}"
    );
}

#[test]
fn a_second_relay_on_the_same_data_dir_is_refused() {
    let server = Server::start(&[]);
    let dir = server
        .data_dir()
        .expect("the harness's data dir")
        .to_owned();
    let stderr = refused_at_start(&dir);
    assert!(stderr.contains("another p2pchat server"), "{stderr}");
    // The first one is unaffected.
    let (a, b) = pair_by_name(&server, server.port);
    a.say("still here");
    b.expect("💬 Companion: still here");
}

#[test]
fn ctrl_c_while_reconnecting_quits_at_once() {
    let mut server = Server::start(&[]);
    let (mut a, _b) = pair_by_name(&server, server.port);
    server.kill9();
    a.expect("Reconnecting");
    // Without Ctrl+C the client would go on retrying for --retry-for (5 minutes); wait_exit's
    // bound is what proves it quit.
    support::signal(&a.child, "INT");
    let status = a.wait_exit();
    assert!(status.success(), "{status:?}");
}

#[test]
fn ten_conversations_survive_a_crash_together() {
    let mut server = Server::start(&[]);
    let port = server.port;
    let count = 4_000;
    let mut pairs = Vec::new();
    for i in 0..10 {
        let (ann, bob) = (format!("Ann{i}"), format!("Bob{i}"));
        let a = Client::start(port, &["--nick", &ann, "--to", &bob]);
        a.expect(&format!("Waiting for {bob}"));
        let b = Client::start(port, &["--nick", &bob, "--to", &ann]);
        b.expect(&format!("Connected to {ann}"));
        let exchange = Exchange::start(&a, &b, count, (&format!("a{i}"), &format!("b{i}")));
        pairs.push((a, b, exchange));
    }
    pairs[9].1.wait_for_count(COMPANION, 300, LONG);
    server.kill9();
    server.restart();
    for (a, b, exchange) in &pairs {
        a.expect("Reconnected");
        b.expect("Reconnected");
        exchange.assert_complete(a, b);
    }
}
