//! Faults: killed clients, silent connections, a relay that stops or vanishes. The relay keeps
//! running through what one client does; clients say one clear sentence when the relay goes.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use p2pchat_proto::{decode, encode_to_vec, max_frame_len, Frame, LeftReason};
use support::{assert_chat_works, Client, Raw, Server, WAIT};

#[test]
fn a_killed_client_is_noticed_at_once() {
    // Without history the survivor goes back to arrival order; with it, it waits for the one
    // who vanished (tests/history.rs).
    let server = Server::start(&["--no-history"]);
    let (mut a, b) = server.pair("Doomed", "Survivor");
    support::signal(&a.child, "KILL");
    let _ = a.wait_exit();
    assert_eq!(
        b.expect("left the chat"),
        "👋 Doomed left the chat (connection lost)"
    );
    b.expect("Waiting for a companion");
    server.expect_log("🔴 Client 1 (Doomed) connection lost");
    // The survivor is paired again with the next arrival.
    let c = server.client("Next");
    c.expect("Connected to Survivor");
}

#[test]
fn a_silent_half_open_connection_times_out_within_the_heartbeat() {
    let server = Server::plain(&["--heartbeat", "500ms"]);
    // A raw client that logs in and then never sends again looks exactly like a peer whose
    // network vanished: no FIN, no RST, just silence.
    let (mut silent, mut watcher) = Raw::pair(server.port, "Silent", "Watcher");
    // The watcher pings to stay alive itself while it waits for the news.
    let deadline = Instant::now() + WAIT;
    let left = loop {
        assert!(Instant::now() < deadline, "no Left within {WAIT:?}");
        watcher.send(&Frame::Ping(1));
        match watcher.recv_timeout(Duration::from_millis(100)) {
            Some(frame @ Frame::Left { .. }) => break frame,
            _ => continue,
        }
    };
    assert_eq!(
        left,
        Frame::Left {
            reason: LeftReason::TimedOut,
            nick: "Silent".into()
        }
    );
    let frames = silent.expect_closed();
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::Error { fatal: true, .. })),
        "{frames:?}"
    );
    server.expect_log("⏱️ Client 1 (Silent) timed out: nothing received for 500ms");
}

#[test]
fn real_clients_keep_a_short_heartbeat_alive() {
    let server = Server::start(&["--heartbeat", "1s"]);
    let (a, b) = server.pair("Quiet1", "Quiet2");
    // Several heartbeat intervals of silence from the users: the clients' pings keep them in.
    std::thread::sleep(std::time::Duration::from_millis(3000));
    a.say("still here");
    b.expect("💬 Companion: still here");
    assert!(!server.log().iter().any(|l| l.contains("timed out")));
}

#[test]
fn server_sigint_tells_everyone_and_exits_zero() {
    for signal in ["INT", "TERM"] {
        let mut server = Server::plain(&[]);
        let (mut a, mut b) = server.pair_with("One", "Two", &["--retry-for", "0s"]);
        let mut raw = server.raw();
        raw.hello();
        server.signal(signal);
        let status = server.wait_exit();
        assert!(status.success(), "{signal}: {status:?}");
        for client in [&mut a, &mut b] {
            client.expect("🛑 The chat server is shutting down");
            assert_eq!(client.wait_exit().code(), Some(1));
        }
        let frames = raw.expect_closed();
        assert!(frames.iter().any(|f| matches!(f, Frame::Shutdown(_))));
        server.expect_log("🛑 Shutting down");
        server.expect_log("✅ Server stopped");
    }
}

#[test]
fn unreachable_server_is_one_clear_sentence_and_non_zero() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut client = Client::start(port, &["--nick", "Lonely"]);
    let line = client.next_line();
    assert_eq!(
        line,
        format!("❌ Could not connect to chat server at 127.0.0.1:{port}: connection refused (is the server running?)")
    );
    assert_eq!(client.wait_exit().code(), Some(1));
    assert_eq!(client.output().len(), 1);
}

#[test]
fn server_vanishing_mid_chat_is_reported() {
    let server = Server::start(&[]);
    let (mut a, _b) = server.pair_with("Left", "Behind", &["--retry-for", "0s"]);
    let mut server = server;
    support::signal(&server.child, "KILL");
    let _ = server.wait_exit();
    a.expect("❌ Lost connection to the chat server");
    assert_eq!(a.wait_exit().code(), Some(1));
}

#[test]
fn a_relay_gone_silent_is_detected_by_the_client() {
    // A fake relay that greets the client with a 600 ms heartbeat and then never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fake = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while decode(&got, max_frame_len(1024)).ok().flatten().is_none() {
            let n = socket.read(&mut buf).expect("read hello");
            got.extend_from_slice(&buf[..n]);
        }
        let welcome = Frame::Welcome {
            version: p2pchat_proto::PROTOCOL_VERSION,
            features: 0,
            max_message: 1024,
            heartbeat_ms: 600,
            challenge: [0; 32],
            server: "silent fake".into(),
        };
        socket.write_all(&encode_to_vec(&welcome)).expect("welcome");
        // Hold the socket open, read and ignore everything, never answer.
        socket.set_read_timeout(Some(WAIT)).expect("timeout");
        while let Ok(n) = socket.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    let mut client = Client::start(
        port,
        &["--plaintext", "--nick", "Patient", "--retry-for", "0s"],
    );
    client.expect("❌ Lost connection to the chat server: the server stopped answering");
    assert_eq!(client.wait_exit().code(), Some(1));
    drop(client);
    let _ = fake.join();
}

#[test]
fn many_bad_clients_leave_a_good_conversation_alone() {
    let server = Server::plain(&[]);
    let (mut a, mut b) = Raw::pair(server.port, "Good1", "Good2");
    for round in 0..20 {
        let mut bad = server.raw();
        match round % 4 {
            0 => bad.send_bytes(b"\xff\xff\xff\xff garbage"),
            1 => bad.send_bytes(&[0, 0, 0, 9, 1, b'P']),
            2 => {
                bad.hello();
                bad.send(&bad.nick_frame("Good1"));
            }
            _ => {}
        }
        drop(bad);
        assert_chat_works(&mut a, &mut b, &format!("round {round}"));
    }
}
