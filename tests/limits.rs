//! Limits under load and abuse: a reader that stops reading, the connection limit, running out of
//! file descriptors. Memory stays bounded and everyone else keeps chatting.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2pchat_proto::{encode_to_vec, ErrorCode, Frame};
use support::{assert_chat_works, KeepAlive, Raw, Server};

#[test]
fn a_receiver_that_stops_reading_cannot_grow_the_relay() {
    let server = Server::plain(&["--heartbeat", "5s"]);
    let (mut probe_a, mut probe_b) = Raw::pair(server.port, "ProbeA", "ProbeB");
    let (sender, paused) = Raw::pair(server.port, "Firehose", "Paused");
    let baseline = server.rss_kib();
    // The paused receiver is alive (it pings) but never reads; the probes ping too, so only
    // the paused reader's own behaviour can end a conversation here.
    let keepalive = KeepAlive::start(&paused);
    let _probes_alive = (KeepAlive::start(&probe_a), KeepAlive::start(&probe_b));

    // The sender tries to push 1 GiB at the paused receiver as fast as it can.
    let sent = Arc::new(AtomicU64::new(0));
    let pusher = {
        let mut stream = sender.stream.try_clone().expect("clone");
        let sent = sent.clone();
        let mut batch = Vec::new();
        while batch.len() < 64 * 1024 {
            batch.extend(encode_to_vec(&support::msg(&"x".repeat(1000))));
        }
        std::thread::spawn(move || {
            while sent.load(Ordering::Relaxed) < 1 << 30 {
                if stream.write_all(&batch).is_err() {
                    break;
                }
                sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        })
    };

    // TCP backpressure must stop it long before 1 GiB: progress stalls while the relay holds
    // only a bounded amount for the paused receiver.
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(400));
        let now = sent.load(Ordering::Relaxed);
        if now > 0 && now - last < 1 << 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sender was never slowed down ({now} bytes)"
        );
        last = now;
    }
    let stalled_at = sent.load(Ordering::Relaxed);
    assert!(
        stalled_at < 256 << 20,
        "{stalled_at} bytes went before the stall"
    );
    let grown = server.rss_kib().saturating_sub(baseline);
    assert!(
        grown < 32 * 1024,
        "relay grew by {grown} KiB while {stalled_at} bytes were pushed at a paused reader"
    );
    // Other conversations flow while the firehose is stuck.
    assert_chat_works(&mut probe_a, &mut probe_b, "during backpressure");

    // The paused reader is dropped once its writes have stalled for a heartbeat interval, and
    // its companion is told.
    server.expect_log("🐢 Client 4 (Paused) disconnected");
    drop(keepalive);
    drop(paused);
    assert_chat_works(
        &mut probe_a,
        &mut probe_b,
        "after the paused reader was dropped",
    );
    let _ = sender.stream.shutdown(std::net::Shutdown::Both);
    let _ = pusher.join();
}

#[test]
fn newcomers_beyond_max_connections_are_told_the_server_is_full() {
    let server = Server::plain(&["--max-connections", "2"]);
    let (mut a, mut b) = Raw::pair(server.port, "First", "Second");
    let mut third = server.raw();
    let frames = third.expect_closed();
    match frames.as_slice() {
        [Frame::Error { code, fatal, text }] => {
            assert_eq!((*code, *fatal), (ErrorCode::ServerFull, true));
            assert!(text.contains("full"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    let mut client = server.start_client(&["--nick", "Late"]);
    client.expect("the server is full (2 connections); try again later");
    assert_eq!(client.wait_exit().code(), Some(1));
    server.expect_log("⛔ Connection limit of 2 reached");
    assert_chat_works(&mut a, &mut b, "at the limit");
    // A place frees up when someone leaves.
    a.send(&Frame::Bye);
    a.expect_closed();
    let (_, waiting) = Raw::login(server.port, "Third");
    assert_eq!(waiting, Frame::Paired("Second".into()));
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    let server = Server::start_with_open_files(48, &["--plaintext", "--max-connections", "1000"]);
    server.expect_log("📂 Open-files limit 48");
    let (mut a, mut b) = Raw::pair(server.port, "Keep1", "Keep2");
    // More connections than the process can have files: the kernel queues them, accept fails
    // with EMFILE, and the relay must pause, log once, and carry on.
    let flood: Vec<Raw> = (0..80).map(|_| server.raw()).collect();
    server.expect_log("Accepting connections failed");
    assert_chat_works(&mut a, &mut b, "while out of descriptors");
    drop(flood);
    server.expect_log("✅ Accepting connections again");
    let (_, next) = Raw::login(server.port, "After");
    assert_eq!(next, Frame::Waiting);
    // One warning per episode of failures (an episode ends when an accept succeeds again),
    // never one per failed attempt.
    let log = server.log();
    let count = |needle: &str| log.iter().filter(|l| l.contains(needle)).count();
    let failures = count("Accepting connections failed");
    let recoveries = count("Accepting connections again");
    assert!(
        failures >= 1 && failures <= recoveries + 1,
        "{failures} vs {recoveries}"
    );
    assert!(failures <= 3, "logged {failures} times");
}
