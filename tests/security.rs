//! Encryption and identity, end to end with the real binary: what crosses the wire and what the
//! relay stores, nickname ownership, certificate pinning, and a client's refusal of altered or
//! replayed messages from a relay that turned against it.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use p2pchat_proto::{decode, encode_to_vec, ErrorCode, Frame};
use p2pchat_secure::Identity;
use support::*;

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Two clients that found each other by name through `port`.
fn pair(port: u16, extra: &[&str], a: &str, b: &str) -> (Client, Client) {
    let mut args = vec!["--nick", a, "--to", b];
    args.extend_from_slice(extra);
    let first = Client::start(port, &args);
    first.expect(&format!("Waiting for {b}"));
    let mut args = vec!["--nick", b, "--to", a];
    args.extend_from_slice(extra);
    let second = Client::start(port, &args);
    second.expect(&format!("Connected to {a}"));
    first.expect(&format!("Connected to {b}"));
    (first, second)
}

#[test]
fn with_tls_neither_texts_nor_nicknames_cross_the_wire_readable() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port);
    let (a, b) = pair(proxy.port, &[], "Zanzibar", "Quixote");
    a.say("the eagle lands at midnight");
    b.expect("💬 Companion: the eagle lands at midnight");
    b.say("copy that, over and out");
    a.expect("💬 Companion: copy that, over and out");
    let wire = proxy.captured();
    assert!(wire.len() > 2000, "only {} bytes captured", wire.len());
    for secret in ["eagle lands", "over and out", "Zanzibar", "Quixote", "P2PC"] {
        assert!(
            !contains(&wire, secret),
            "{secret:?} is readable on the wire"
        );
    }
}

#[test]
fn without_tls_the_nicknames_show_but_the_texts_stay_sealed() {
    // The control for the test above: the capture does see what is not encrypted.
    let server = Server::plain(&[]);
    let proxy = Proxy::start(server.port);
    let (a, b) = pair(proxy.port, &["--plaintext"], "Zanzibar", "Quixote");
    assert!(a.output()[0].starts_with("⚠️ --plaintext: this connection is not encrypted"));
    a.say("the eagle lands at midnight");
    b.expect("💬 Companion: the eagle lands at midnight");
    let wire = proxy.captured();
    assert!(contains(&wire, "Zanzibar") && contains(&wire, "P2PC"));
    assert!(!contains(&wire, "eagle lands"), "message text readable");
}

/// Every file under `dir`, read whole.
fn all_bytes_under(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read data dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            bytes.extend(all_bytes_under(&path));
        } else if let Ok(content) = std::fs::read(&path) {
            bytes.extend(content);
        }
    }
    bytes
}

#[test]
fn the_relay_stores_only_ciphertext() {
    let mut server = Server::start(&[]);
    let (a, b) = pair(server.port, &[], "Ann", "Bob");
    let texts: Vec<String> = (0..50).map(|i| format!("confidential plan {i}")).collect();
    for text in &texts {
        a.say(text);
    }
    b.wait_for_count("💬 Companion: confidential plan", texts.len(), WAIT);
    drop((a, b));
    // Everything the relay wrote, after a clean stop (checkpointed) and before.
    let dir = server.data_dir().expect("data dir").to_path_buf();
    let before = all_bytes_under(&dir);
    server.signal("TERM");
    server.wait_exit();
    let after = all_bytes_under(&dir);
    for bytes in [&before, &after] {
        assert!(bytes.len() > 10_000, "the store holds too little");
        assert!(
            !contains(bytes, "confidential"),
            "message text stored readable"
        );
    }
    // The history is still there for its members, readable by them alone.
    server.restart();
    let a = server.start_client(&["--nick", "Ann", "--to", "Bob", "--history", "5"]);
    a.expect("You: confidential plan 49");
}

#[test]
fn a_registered_nickname_needs_its_key() {
    let server = Server::plain(&[]);
    let (mut owner, _) = Raw::login(server.port, "Owner");
    // Another key, on another connection while the owner is online and after it left.
    for round in 0..2 {
        let mut thief = server.raw();
        thief.hello();
        let mallory = Identity::from_seed(&[0x66; 32]);
        thief.send(&thief.nick_frame_as("owner", &mallory));
        match thief.recv() {
            Frame::Error { code, fatal, text } => {
                assert_eq!((code, fatal), (ErrorCode::NickOwned, false), "{text}");
                assert!(text.contains("another identity key"), "{text}");
            }
            other => panic!("round {round}: expected NickOwned, got {other:?}"),
        }
        // A proof made for another connection's challenge does not verify either.
        let stolen = Frame::Nick {
            nick: "Owner".into(),
            key: identity_of("Owner").public_key(),
            proof: identity_of("Owner").sign_login(&[7; 32], "Owner"),
        };
        thief.send(&stolen);
        assert!(matches!(
            thief.recv(),
            Frame::Error {
                code: ErrorCode::BadProof,
                ..
            }
        ));
        if round == 0 {
            owner.send(&Frame::Bye);
            owner.expect_closed();
        }
    }
    // The owner comes back with its key.
    let (_owner, _) = Raw::login(server.port, "Owner");
    server.expect_log("🔑 nickname Owner registered to key");
}

#[test]
fn an_impostor_client_is_told_why_and_the_owner_still_gets_in() {
    let server = Server::start(&[]);
    let mut owner = server.start_client(&["--nick", "Bob"]);
    owner.expect("Waiting for a companion");
    owner.say("/exit");
    owner.wait_exit();
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("identity");
    let key = key.to_str().unwrap();
    let mut impostor = server.start_client(&["--nick", "Bob", "--identity", key]);
    impostor.expect("belongs to another identity key");
    assert_ne!(impostor.wait_exit().code(), Some(0));
    let owner = server.start_client(&["--nick", "Bob"]);
    owner.expect("Waiting for a companion");
}

#[test]
fn a_released_nickname_can_be_registered_by_another_key() {
    let server = Server::plain(&[]);
    let (mut owner, _) = Raw::login(server.port, "Fleeting");
    owner.send(&Frame::Release);
    assert_eq!(
        owner.recv_until(|f| matches!(f, Frame::Released(_))),
        Frame::Released("Fleeting".into())
    );
    owner.send(&Frame::Bye);
    owner.expect_closed();
    let mut next = server.raw();
    next.hello();
    let newcomer = Identity::from_seed(&[0x77; 32]);
    next.send(&next.nick_frame_as("fleeting", &newcomer));
    assert!(matches!(next.recv(), Frame::NickOk { .. }));
}

#[test]
fn a_changed_certificate_is_refused_with_an_explanation() {
    let server = Server::start(&[]);
    let config = tempfile::tempdir().unwrap();
    let pins = config.path().join("p2pchat");
    std::fs::create_dir_all(&pins).unwrap();
    let forged = vec!["AB"; 32].join(":");
    std::fs::write(
        pins.join("known_hosts"),
        format!("127.0.0.1:{} {forged}\n", server.port),
    )
    .unwrap();
    let mut client = Client::start_in(server.port, &["--nick", "Careful"], config);
    client.expect("CERTIFICATE HAS CHANGED");
    client.expect(&forged);
    assert_eq!(client.wait_exit().code(), Some(1));
    let output = client.output().join("\n");
    assert!(output.contains("known_hosts"), "{output}");
    assert!(!server.log().iter().any(|line| line.contains("Careful")));
    // The first connection pins; the next is quiet about it.
    let first = server.start_client(&["--nick", "Trusting"]);
    first.expect("First connection to 127.0.0.1");
}

/// A relay gone bad, between one client and the real relay (plain TCP: the operator of a relay
/// sees inside TLS anyway): passes what the client sends, and what the relay sends through
/// `edit`, which returns the frames the client gets instead.
struct Mitm {
    port: u16,
}

impl Mitm {
    fn start(target: u16, edit: impl FnMut(Frame) -> Vec<Frame> + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let edit = Arc::new(Mutex::new(edit));
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(relay) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let (mut up_from, mut up_to) =
                (client.try_clone().unwrap(), relay.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut up_from, &mut up_to);
            });
            let (mut from, mut to) = (relay, client);
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Ok(Some((frame, used))) = decode(&buf, 1 << 20) {
                    buf.drain(..used);
                    for frame in (edit.lock().unwrap())(frame) {
                        if to.write_all(&encode_to_vec(&frame)).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
        Self { port }
    }
}

#[test]
fn altered_and_replayed_messages_are_refused_and_reported() {
    let server = Server::plain(&[]);
    let mut seen = 0;
    let mut first = None;
    let mitm = Mitm::start(server.port, move |frame| match frame {
        Frame::Message(mut message) => {
            seen += 1;
            match seen {
                1 => {
                    first = Some(message.clone());
                    vec![Frame::Message(message)]
                }
                2 => {
                    let last = message.body.len() - 1;
                    message.body[last / 2] ^= 0x20;
                    vec![Frame::Message(message)]
                }
                3 => {
                    let mut replay = first.clone().expect("first message");
                    replay.seq = message.seq + 1;
                    vec![Frame::Message(message), Frame::Message(replay)]
                }
                _ => vec![Frame::Message(message)],
            }
        }
        other => vec![other],
    });
    let ann = Client::start(mitm.port, &["--plaintext", "--nick", "Ann", "--to", "Bob"]);
    ann.expect("Waiting for Bob");
    let bob = server.start_client(&["--nick", "Bob", "--to", "Ann"]);
    bob.expect("Connected to Ann");
    ann.expect("Connected to Bob");
    bob.say("one: genuine");
    ann.expect("💬 Companion: one: genuine");
    bob.say("two: will be altered");
    ann.expect("integrity check");
    bob.say("three: genuine");
    ann.expect("💬 Companion: three: genuine");
    ann.expect("arrived again under a new number (replayed");
    bob.say("four: genuine");
    ann.expect("💬 Companion: four: genuine");
    let shown = ann.lines_starting("💬 Companion: ");
    assert_eq!(
        shown,
        [
            "Connected to Bob",
            "one: genuine",
            "three: genuine",
            "four: genuine"
        ],
        "altered or replayed text was shown"
    );
}

#[test]
fn a_relay_with_a_ca_issued_certificate_is_checked_against_the_ca() {
    // A certificate for 127.0.0.1 (self-signed: it is its own CA here), served with --cert/--key.
    let pki = tempfile::tempdir().unwrap();
    let issued = p2pchat_secure::tls::ServerTls::self_signed(pki.path(), vec!["127.0.0.1".into()])
        .expect("certificate");
    let (cert, key) = (pki.path().join("cert.pem"), pki.path().join("key.pem"));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = Server::start(&["--cert", cert, "--key", key]);
    assert!(server
        .log()
        .iter()
        .any(|line| line.contains(&issued.fingerprint)));
    let (a, b) = pair(server.port, &["--ca", cert], "Ann", "Bob");
    a.say("checked by the CA");
    b.expect("💬 Companion: checked by the CA");
    assert!(!a.output().iter().any(|l| l.contains("First connection")));
    assert!(!a.config_dir().join("p2pchat/known_hosts").exists());
    // Another CA's certificate is not accepted.
    let other = tempfile::tempdir().unwrap();
    p2pchat_secure::tls::ServerTls::self_signed(other.path(), vec!["127.0.0.1".into()]).unwrap();
    let other_ca = other.path().join("cert.pem");
    let mut refused = Client::start(
        server.port,
        &["--nick", "Eve", "--ca", other_ca.to_str().unwrap()],
    );
    refused.expect("Could not connect");
    assert_eq!(refused.wait_exit().code(), Some(1));
}

#[test]
fn a_companions_new_key_is_announced_loudly() {
    let server = Server::start(&[]);
    // Ann meets Bob and remembers his key.
    let ann_config = tempfile::tempdir().unwrap();
    let ann_dir = ann_config.path().to_path_buf();
    let mut ann = Client::start_in(server.port, &["--nick", "Ann", "--to", "Bob"], ann_config);
    ann.expect("Waiting for Bob");
    let mut bob = server.start_client(&["--nick", "Bob", "--to", "Ann"]);
    ann.expect("🔑 Bob's identity key is ");
    // Bob gives his nickname up; someone with another key takes it.
    bob.say("/release");
    bob.expect("released");
    bob.say("/exit");
    assert!(bob.wait_exit().success());
    ann.say("/exit");
    assert!(ann.wait_exit().success());
    let keys = tempfile::tempdir().unwrap();
    let other = keys.path().join("identity");
    let mut new_bob = server.start_client(&[
        "--nick",
        "Bob",
        "--to",
        "Ann",
        "--identity",
        other.to_str().unwrap(),
    ]);
    new_bob.expect("Waiting for Ann");
    // Ann, with the key she pinned, hears of the change before anything else Bob says.
    let kept = tempfile::TempDir::new().unwrap();
    copy_dir(&ann_dir, kept.path());
    let ann = Client::start_in(server.port, &["--nick", "Ann", "--to", "Bob"], kept);
    ann.expect("THE IDENTITY KEY OF YOUR COMPANION HAS CHANGED");
    new_bob.say("trust me");
    ann.expect("💬 Companion: trust me");
    new_bob.say("/exit");
    new_bob.wait_exit();
}

/// Copies a client's config dir (the original went with its client).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
