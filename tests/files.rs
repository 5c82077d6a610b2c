//! Files through the relay, end to end with the real binary: sizes from 0 B to 200 MiB arrive
//! identical, hostile names land safely, a corrupted chunk never leaves a file under its final
//! name, and chat keeps flowing while a large file moves.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use p2pchat_proto::{ErrorCode, FileChunk, Frame};
use p2pchat_secure::transfer::FileControl;
use p2pchat_secure::Channel;
use support::*;

/// A file of `size` bytes of a varied pattern (so a misplaced chunk shows).
fn make_file(dir: &Path, name: &str, size: usize) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0;
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ size as u64;
    while written < size {
        for byte in block.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let n = block.len().min(size - written);
        file.write_all(&block[..n]).unwrap();
        written += n;
    }
    path
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// Two clients that found each other; the second saves files in `downloads`.
fn pair_with_downloads(server: &Server, downloads: &Path, extra: &[&str]) -> (Client, Client) {
    let dir = downloads.to_str().unwrap();
    let mut first = vec!["--nick", "Ann", "--to", "Bob"];
    first.extend_from_slice(extra);
    let a = server.start_client(&first);
    a.expect("Waiting for Bob");
    let mut second = vec!["--nick", "Bob", "--to", "Ann", "--downloads", dir];
    second.extend_from_slice(extra);
    let b = server.start_client(&second);
    b.expect("Connected to Ann");
    a.expect("🔑 Bob's identity key is ");
    b.expect("🔑 Ann's identity key is ");
    (a, b)
}

/// Everything in `dir` that is not a temporary file.
fn saved_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `saved_files` once no temporary file is left (the client's writer thread removes them on
/// its own time), waiting at most `WAIT`.
fn settled_files(dir: &Path) -> Vec<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let names = saved_files(dir);
        if !names.iter().any(|n| n.ends_with(".p2pchat-part")) {
            return names;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{names:?} left behind"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn files_from_empty_to_a_mebibyte_arrive_identical() {
    let server = Server::start(&[]);
    let (source, downloads) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = pair_with_downloads(&server, downloads.path(), &[]);
    for (name, size) in [("empty.bin", 0), ("one.bin", 1), ("mebi.bin", 1 << 20)] {
        let path = make_file(source.path(), name, size);
        a.say(&format!("/send {}", path.display()));
        b.expect(&format!("offers {name}"));
        b.say("/accept");
        b.expect(&format!("✅ Saved {name}"));
        a.expect(&format!("received {name}"));
        assert!(
            same_bytes(&path, &downloads.path().join(name)),
            "{name} differs"
        );
    }
    assert_eq!(
        saved_files(downloads.path()),
        ["empty.bin", "mebi.bin", "one.bin"]
    );
}

#[test]
fn a_large_file_moves_while_chat_keeps_flowing() {
    let server = Server::start(&[]);
    let (source, downloads) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = pair_with_downloads(&server, downloads.path(), &[]);
    let path = make_file(source.path(), "big.bin", 200 << 20);
    a.say(&format!("/send {}", path.display()));
    b.expect("offers big.bin");
    b.say("/accept");
    // While it moves, messages go both ways and arrive in order.
    for i in 0..20 {
        a.say(&format!("during transfer {i}"));
        b.say(&format!("reply {i}"));
    }
    b.wait_for_count("💬 Companion: during transfer", 20, WAIT * 4);
    a.wait_for_count("💬 Companion: reply", 20, WAIT * 4);
    let texts = b.lines_starting("💬 Companion: during transfer ");
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(texts, expected);
    b.expect_within("✅ Saved big.bin", WAIT * 8);
    assert!(same_bytes(&path, &downloads.path().join("big.bin")));
    // Chat was not held back until the end.
    let out = b.output();
    let saved = out
        .iter()
        .position(|l| l.contains("✅ Saved big.bin"))
        .unwrap();
    let first_chat = out
        .iter()
        .position(|l| l.contains("during transfer 0"))
        .unwrap();
    assert!(first_chat < saved, "chat waited for the file");
}

#[test]
fn a_file_never_overwrites_one_already_there() {
    let server = Server::start(&[]);
    let (source, downloads) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(downloads.path().join("notes.txt"), b"keep me").unwrap();
    let (a, b) = pair_with_downloads(&server, downloads.path(), &[]);
    let path = make_file(source.path(), "notes.txt", 1000);
    for _ in 0..2 {
        a.say(&format!("/send {}", path.display()));
        b.expect("offers notes.txt");
        b.say("/accept");
        b.expect("✅ Saved notes");
    }
    assert_eq!(
        std::fs::read(downloads.path().join("notes.txt")).unwrap(),
        b"keep me"
    );
    assert_eq!(
        saved_files(downloads.path()),
        ["notes (1).txt", "notes (2).txt", "notes.txt"]
    );
}

/// A raw protocol peer, "Mallory", chatting with a real client `Bob` that saves files in
/// `downloads` by itself (`--auto-accept`), on a plain-TCP relay.
struct Peer {
    raw: Raw,
    channel: Channel,
    counter: u64,
}

impl Peer {
    fn meet(server: &Server) -> Self {
        let mut raw = server.raw();
        raw.hello();
        raw.send(&Frame::ChatWith("Bob".into()));
        raw.send(&raw.nick_frame("Mallory"));
        let info = loop {
            match raw.recv() {
                Frame::Conversation(info) => break info,
                Frame::Ping(token) => raw.send(&Frame::Pong(token)),
                _ => {}
            }
        };
        assert_ne!(info.companion_key, [0; 32], "Bob has a key");
        let channel = Channel::new(&identity_of("Mallory"), &info.companion_key).unwrap();
        Self {
            raw,
            channel,
            counter: 1,
        }
    }

    fn send_control(&mut self, control: &FileControl) {
        let mut id = [0; 16];
        getrandom::fill(&mut id).unwrap();
        self.counter += 1;
        let body = self.channel.seal_file(&id, self.counter, control).unwrap();
        self.raw.send(&Frame::Message(p2pchat_proto::ChatMessage {
            seq: 0,
            sent_ms: 0,
            id,
            body,
        }));
    }

    /// Offers `data` as `name`, waits for Bob's accept, sends it in one chunk (with one byte
    /// flipped if `corrupt`), and returns what Bob said last about the transfer.
    fn transfer(&mut self, name: &str, data: &[u8], corrupt: bool) -> FileControl {
        use sha2::Digest;
        let mut transfer = [0; 16];
        getrandom::fill(&mut transfer).unwrap();
        self.send_control(&FileControl::Offer {
            transfer,
            name: name.into(),
            size: data.len() as u64,
        });
        let accepted = self.next_control();
        assert!(
            matches!(accepted, FileControl::Accept { from: 0, .. }),
            "{accepted:?}"
        );
        let mut body = Vec::new();
        self.channel
            .seal_chunk(&transfer, 0, data, &mut body)
            .unwrap();
        if corrupt {
            let middle = body.len() / 2;
            body[middle] ^= 0x01;
        }
        self.raw.send(&Frame::Chunk(FileChunk {
            transfer,
            offset: 0,
            body,
        }));
        self.send_control(&FileControl::Sent {
            transfer,
            sha256: sha2::Sha256::digest(data).into(),
        });
        self.next_control()
    }

    /// The next file control message Bob sends.
    fn next_control(&mut self) -> FileControl {
        loop {
            match self.raw.recv() {
                Frame::Message(message) => {
                    let plain = self
                        .channel
                        .open(false, &message.id, &message.body)
                        .unwrap();
                    if let Some(control) = plain.file {
                        return control;
                    }
                }
                Frame::Ping(token) => self.raw.send(&Frame::Pong(token)),
                _ => {}
            }
        }
    }
}

fn bob_saving_in(server: &Server, downloads: &Path) -> Client {
    let dir = downloads.to_str().unwrap();
    let bob = server.start_client(&["--nick", "Bob", "--to", "Mallory", "--auto-accept", dir]);
    bob.expect("Waiting for Mallory");
    bob
}

#[test]
fn hostile_file_names_land_safely_inside_the_downloads_dir() {
    let server = Server::plain(&[]);
    let outer = tempfile::tempdir().unwrap();
    let downloads = outer.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let bob = bob_saving_in(&server, &downloads);
    let mut mallory = Peer::meet(&server);
    let long = "x".repeat(300);
    for name in [
        "../../etc/passwd",
        "/abs/path",
        "a/../../b",
        "nul\0byte",
        "new\nline",
        long.as_str(),
    ] {
        let answer = mallory.transfer(name, b"payload", false);
        assert!(
            matches!(answer, FileControl::Received { .. }),
            "{name:?}: {answer:?}"
        );
    }
    bob.expect("Saved");
    let mut saved = saved_files(&downloads);
    saved.sort();
    let mut expected = vec![
        "passwd".to_owned(),
        "path".into(),
        "b".into(),
        "nul_byte".into(),
        "new_line".into(),
        "x".repeat(p2pchat_proto::MAX_FILE_NAME_BYTES),
    ];
    expected.sort();
    assert_eq!(saved, expected);
    // Nothing was written anywhere else.
    assert_eq!(saved_files(outer.path()), ["downloads"]);
    for name in &saved {
        assert_eq!(std::fs::read(downloads.join(name)).unwrap(), b"payload");
    }
}

#[test]
fn a_corrupted_chunk_never_leaves_a_file_under_its_name() {
    let server = Server::plain(&[]);
    let downloads = tempfile::tempdir().unwrap();
    let bob = bob_saving_in(&server, downloads.path());
    let mut mallory = Peer::meet(&server);
    let answer = mallory.transfer("tampered.bin", &[7u8; 5000], true);
    assert!(matches!(answer, FileControl::Cancel { .. }), "{answer:?}");
    bob.expect("tampered.bin");
    // Nothing under any name; the temporary file (written by another thread) goes too.
    assert!(settled_files(downloads.path()).is_empty());
    // A clean one afterwards goes through.
    let answer = mallory.transfer("clean.bin", &[8u8; 5000], false);
    assert!(matches!(answer, FileControl::Received { .. }), "{answer:?}");
    assert_eq!(settled_files(downloads.path()), ["clean.bin"]);
}

#[test]
fn a_chunk_for_nobody_or_past_the_limit_is_refused_clearly() {
    let server = Server::plain(&["--max-file", "1000"]);
    let (mut probe1, mut probe2) = Raw::pair(server.port, "Probe1", "Probe2");
    let (mut a, mut b) = Raw::pair(server.port, "Sender", "Receiver");
    let chunk = |offset: u64, len: usize| {
        Frame::Chunk(FileChunk {
            transfer: [1; 16],
            offset,
            body: vec![0; len],
        })
    };
    a.send(&chunk(0, 100));
    assert_eq!(
        b.recv_until(|f| matches!(f, Frame::Chunk(_))),
        chunk(0, 100)
    );
    a.send(&chunk(2000, 100));
    match a.recv_until(|f| matches!(f, Frame::Error { .. })) {
        Frame::Error { code, fatal, .. } => {
            assert_eq!((code, fatal), (ErrorCode::FileTooLarge, false))
        }
        _ => unreachable!(),
    }
    b.send(&Frame::Bye);
    b.expect_closed();
    a.send(&chunk(0, 100));
    match a.recv_until(|f| matches!(f, Frame::Error { .. })) {
        Frame::Error { code, fatal, .. } => {
            assert_eq!((code, fatal), (ErrorCode::NotDelivered, false))
        }
        _ => unreachable!(),
    }
    assert_chat_works(&mut probe1, &mut probe2, "after refused chunks");
}

/// The receiver, Bob, saving into `downloads` with the config dir `config` (kept by the test).
fn receiver(server: &Server, downloads: &Path, config: &Path) -> Client {
    let dir = downloads.to_str().unwrap();
    Client::start_at(
        server.port,
        &["--nick", "Bob", "--to", "Ann", "--auto-accept", dir],
        config,
    )
}

/// A relay, a proxy to it that counts what the sender sends, and three directories: the
/// source, the downloads and a config dir kept across a client's restart.
fn restart_setup() -> (Server, Proxy, [tempfile::TempDir; 3]) {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port);
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    (server, proxy, dirs)
}

/// What went through `proxy` in all is less than 1.6x the file's `size`: little was sent
/// twice.
fn assert_little_sent_again(proxy: &Proxy, size: usize) {
    let sent = proxy.sent_upstream();
    eprintln!(
        "sent {sent} bytes for a file of {size}: {:.3}x",
        sent as f64 / size as f64
    );
    assert!(
        (sent as f64) < 1.6 * size as f64,
        "sent {sent} bytes for a file of {size}"
    );
}

/// Ann sending `path` to Bob with `--send`, through `proxy` (which counts what she sends).
fn send_through(proxy: &Proxy, path: &Path) -> Client {
    let path = path.to_str().unwrap();
    Client::start(
        proxy.port,
        &["--nick", "Ann", "--to", "Bob", "--send", path],
    )
}

#[test]
fn a_receiver_killed_halfway_gets_the_rest_after_a_restart() {
    let (server, proxy, [source, downloads, config]) = restart_setup();
    let size = 150 << 20;
    let path = make_file(source.path(), "resume.bin", size);
    let mut bob = receiver(&server, downloads.path(), config.path());
    bob.expect("Waiting for Ann");
    let mut ann = send_through(&proxy, &path);
    bob.expect_within("resume.bin: 50%", WAIT * 4);
    bob.kill9();
    let bob = receiver(&server, downloads.path(), config.path());
    bob.expect("Resuming resume.bin");
    bob.expect_within("✅ Saved resume.bin", WAIT * 8);
    assert!(ann.wait_exit().success(), "the sender did not finish");
    assert!(same_bytes(&path, &downloads.path().join("resume.bin")));
    assert_eq!(settled_files(downloads.path()), ["resume.bin"]);
    assert_little_sent_again(&proxy, size);
}

#[test]
fn a_sender_killed_halfway_goes_on_after_a_restart() {
    let (server, proxy, [source, downloads, config]) = restart_setup();
    let size = 150 << 20;
    let path = make_file(source.path(), "again.bin", size);
    let dir = downloads.path().to_str().unwrap();
    let bob = server.start_client(&["--nick", "Bob", "--to", "Ann", "--auto-accept", dir]);
    bob.expect("Waiting for Ann");
    let ann_args = [
        "--nick",
        "Ann",
        "--to",
        "Bob",
        "--send",
        path.to_str().unwrap(),
    ];
    let mut ann = Client::start_at(proxy.port, &ann_args, config.path());
    bob.expect_within("again.bin: 50%", WAIT * 4);
    ann.kill9();
    bob.expect("paused");
    // The same command again: the old offer is taken up, not made anew.
    let mut ann = Client::start_at(proxy.port, &ann_args, config.path());
    bob.expect_within("✅ Saved again.bin", WAIT * 8);
    assert!(ann.wait_exit().success(), "the sender did not finish");
    let said = ann.output();
    for line in [
        "📎 Still offering again.bin to Bob (offered before a restart)",
        "📎 Resuming again.bin for Bob from",
    ] {
        assert!(
            said.iter().any(|l| l.starts_with(line)),
            "{line:?} in {said:?}"
        );
    }
    assert!(same_bytes(&path, &downloads.path().join("again.bin")));
    assert_eq!(settled_files(downloads.path()), ["again.bin"]);
    assert_little_sent_again(&proxy, size);
    // The finished offer's record is gone: nothing is left to take up.
    let outgoing = config.path().join("p2pchat").join("outgoing");
    let left = std::fs::read_dir(&outgoing)
        .expect("the offer was recorded there")
        .count();
    assert_eq!(left, 0, "records left in {}", outgoing.display());
}

#[test]
fn an_offer_survives_a_restart_of_the_receiver_before_it_answered() {
    let server = Server::start(&[]);
    let (source, downloads, config) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let dir = downloads.path().to_str().unwrap();
    let bob_args = ["--nick", "Bob", "--to", "Ann", "--downloads", dir];
    let mut bob = Client::start_at(server.port, &bob_args, config.path());
    bob.expect("Waiting for Ann");
    let ann = server.start_client(&["--nick", "Ann", "--to", "Bob"]);
    bob.expect("🔑 Ann's identity key is ");
    let path = make_file(source.path(), "later.txt", 5000);
    ann.say(&format!("/send {}", path.display()));
    bob.expect("offers later.txt");
    bob.kill9();
    let bob = Client::start_at(server.port, &bob_args, config.path());
    bob.expect("📎 Ann offers later.txt");
    bob.say("/accept");
    bob.expect("✅ Saved later.txt");
    ann.expect("✅ Bob received later.txt");
    assert!(same_bytes(&path, &downloads.path().join("later.txt")));
}

#[test]
fn a_cut_connection_resumes_the_transfer() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port);
    let (source, downloads) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let path = make_file(source.path(), "cut.bin", 100 << 20);
    let dir = downloads.path().to_str().unwrap();
    let bob = server.start_client(&["--nick", "Bob", "--to", "Ann", "--auto-accept", dir]);
    bob.expect("Waiting for Ann");
    let mut ann = send_through(&proxy, &path);
    bob.expect_within("cut.bin: 25%", WAIT * 4);
    assert!(proxy.cut() > 0, "no connection to cut");
    bob.expect_within("✅ Saved cut.bin", WAIT * 8);
    assert!(ann.wait_exit().success());
    assert!(same_bytes(&path, &downloads.path().join("cut.bin")));
}

#[test]
fn a_directory_and_several_files_go_in_one_command() {
    let server = Server::start(&[]);
    let (source, downloads) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let album = source.path().join("album");
    std::fs::create_dir_all(album.join("2026")).unwrap();
    let mut sent = vec![
        make_file(&album, "cover.jpg", 3000),
        make_file(&album.join("2026"), "track.ogg", 300_000),
    ];
    // More files than transfers may run at once: the rest wait for a free slot.
    for i in 0..20 {
        sent.push(make_file(&album, &format!("note{i:02}.txt"), 100 + i));
    }
    let loose = make_file(source.path(), "loose notes.txt", 10);
    let dir = downloads.path().to_str().unwrap();
    let bob = server.start_client(&["--nick", "Bob", "--to", "Ann", "--auto-accept", dir]);
    bob.expect("Waiting for Ann");
    let mut ann = server.start_client(&[
        "--nick",
        "Ann",
        "--to",
        "Bob",
        "--send",
        album.to_str().unwrap(),
        "--send",
        loose.to_str().unwrap(),
    ]);
    ann.expect("📎 23 files to send; up to 16 move at once");
    assert!(ann.wait_exit().success(), "the sender did not finish");
    sent.push(loose);
    let mut expected: Vec<String> = sent
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(settled_files(downloads.path()), expected);
    for path in &sent {
        let name = path.file_name().unwrap();
        assert!(same_bytes(path, &downloads.path().join(name)), "{name:?}");
    }
    drop(bob);

    // Interactively: several paths (one with a space, quoted) and `/accept all`.
    let downloads = tempfile::tempdir().unwrap();
    let (a, b) = pair_with_downloads(&server, downloads.path(), &[]);
    let spaced = make_file(source.path(), "two words.txt", 20);
    let other = make_file(source.path(), "other.txt", 30);
    a.say(&format!(
        "/send '{}' {} {}",
        spaced.display(),
        other.display(),
        source.path().join("missing.txt").display()
    ));
    a.expect("❌ Cannot send");
    // The two are looked at side by side: their offers may come in either order.
    b.wait_for_count("📎 Ann offers", 2, WAIT);
    b.say("/accept all");
    a.wait_for_count("✅ Bob received", 2, WAIT);
    assert_eq!(
        settled_files(downloads.path()),
        ["other.txt", "two words.txt"]
    );
}
