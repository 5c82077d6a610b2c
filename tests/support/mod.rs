//! Test harness: the real `p2pchat` binary as server and clients, and a raw protocol client.
//! Everything is on loopback, every wait has a deadline, every child is killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use p2pchat_proto::{decode, encode_to_vec, ChatMessage, Frame, PROTOCOL_VERSION};
use p2pchat_secure::Identity;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_p2pchat")
}

/// Lines a child prints, collected by a thread so reads can time out.
struct Lines {
    rx: Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    fn spawn(source: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for line in BufReader::new(source).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { rx, seen }
    }

    /// The next line containing `needle`, skipping others; panics after `WAIT`.
    fn expect(&self, needle: &str, who: &str) -> String {
        self.expect_within(needle, who, WAIT)
    }

    fn expect_within(&self, needle: &str, who: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{who}: no line containing {needle:?} within {wait:?}; saw:\n{}",
                    self.seen.lock().unwrap().join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{who}: output ended before a line containing {needle:?}; saw:\n{}",
                    self.seen.lock().unwrap().join("\n")
                ),
            }
        }
    }

    /// The next line, whatever it is.
    fn next(&self, who: &str) -> String {
        match self.rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(err) => panic!(
                "{who}: no next line ({err}); saw:\n{}",
                self.seen.lock().unwrap().join("\n")
            ),
        }
    }

    fn all(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn wait_exit(child: &mut Child, who: &str) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{who} did not exit within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal by name (`INT`, `TERM`, `KILL`) with the system's `kill`.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {name} failed");
}

/// A chat message as a client sends it: a fresh random id, no sequence number or time yet.
pub fn msg(text: &str) -> Frame {
    let mut id = [0; 16];
    getrandom::fill(&mut id).expect("random id");
    Frame::Message(ChatMessage {
        seq: 0,
        sent_ms: 0,
        id,
        body: text.as_bytes().to_vec(),
    })
}

/// The body of a `Message` frame as text (raw clients send plain bodies: the relay cannot tell
/// them from end-to-end envelopes, and forwards both).
pub fn text_of(frame: &Frame) -> Option<&str> {
    match frame {
        Frame::Message(message) => std::str::from_utf8(&message.body).ok(),
        _ => None,
    }
}

/// The identity a test uses for `nick`: the same in every run and every process of a test
/// binary and for every spelling of the nickname, different for different nicknames.
pub fn identity_of(nick: &str) -> Identity {
    let nick = p2pchat_proto::fold_nick(nick);
    let mut seed = [0u8; 32];
    seed[0] = 0xA5;
    for (i, byte) in nick.bytes().enumerate() {
        seed[1 + i % 31] ^= byte.rotate_left(i as u32 / 31);
    }
    seed[31] ^= nick.len() as u8;
    Identity::from_seed(&seed)
}

/// Directory of this test process's identity files (one per nickname, like a user's).
fn identity_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("identity dir"))
        .path()
}

/// The identity file of `nick` (created on first use with `identity_of`).
pub fn identity_file(nick: &str) -> std::path::PathBuf {
    let path = identity_dir().join(format!("{}.key", p2pchat_proto::fold_nick(nick)));
    if !path.exists() {
        identity_of(nick).save(&path).expect("write identity file");
    }
    path
}

/// A relay started as `p2pchat server 127.0.0.1 0 EXTRA...`, keeping its history in a
/// temporary directory of its own unless `EXTRA` says otherwise.
pub struct Server {
    pub child: Child,
    pub port: u16,
    log: Lines,
    extra: Vec<String>,
    data: Option<Arc<tempfile::TempDir>>,
}

impl Server {
    /// A relay serving plain TCP (`--plaintext`), for tests that speak raw frames to it.
    pub fn plain(extra: &[&str]) -> Self {
        let mut args = vec!["--plaintext"];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    pub fn start(extra: &[&str]) -> Self {
        let data = Self::own_data_dir(extra);
        let mut command = Command::new(binary());
        command.args(["server", "127.0.0.1", "0"]).args(extra);
        Self::with_data(&mut command, &data);
        Self::spawn(command, extra, data)
    }

    /// Starts the server with a hard and soft open-files limit of `files` (through prlimit).
    pub fn start_with_open_files(files: u32, extra: &[&str]) -> Self {
        let data = Self::own_data_dir(extra);
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={files}:{files}"))
            .arg(binary())
            .args(["server", "127.0.0.1", "0"])
            .args(extra);
        Self::with_data(&mut command, &data);
        Self::spawn(command, extra, data)
    }

    /// Every relay gets a data dir of its own (certificate, nickname owners, history) unless
    /// `extra` names one.
    fn own_data_dir(extra: &[&str]) -> Option<Arc<tempfile::TempDir>> {
        let chosen = extra.contains(&"--data-dir");
        (!chosen).then(|| Arc::new(tempfile::tempdir().expect("temporary data dir")))
    }

    /// Whether the relay serves plain TCP (`--plaintext`) instead of TLS.
    pub fn plaintext(&self) -> bool {
        self.extra.iter().any(|a| a == "--plaintext")
    }

    /// The client options that go with this relay's transport.
    fn transport(&self) -> &'static [&'static str] {
        if self.plaintext() {
            &["--plaintext"]
        } else {
            &[]
        }
    }

    fn with_data(command: &mut Command, data: &Option<Arc<tempfile::TempDir>>) {
        if let Some(dir) = data {
            command.arg("--data-dir").arg(dir.path());
        }
    }

    /// The data directory the server keeps its history in, when the harness chose it.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data.as_deref().map(tempfile::TempDir::path)
    }

    /// Kills the server with SIGKILL (no goodbye to anyone) and waits for it to be gone.
    pub fn kill9(&mut self) {
        stop(&mut self.child);
    }

    /// Starts the server again on the same port, data directory and options.
    pub fn restart(&mut self) {
        stop(&mut self.child);
        let mut command = Command::new(binary());
        command
            .args(["server", "127.0.0.1", &self.port.to_string()])
            .args(&self.extra);
        Self::with_data(&mut command, &self.data);
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        *self = Self::spawn(command, &extra, self.data.clone());
    }

    fn spawn(mut command: Command, extra: &[&str], data: Option<Arc<tempfile::TempDir>>) -> Self {
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start server");
        let log = Lines::spawn(child.stderr.take().expect("stderr"));
        let started = log.expect("Chat server started on", "server");
        let port = started
            .rsplit(':')
            .next()
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {started:?}"));
        Self {
            child,
            port,
            log,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            data,
        }
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn expect_log(&self, needle: &str) -> String {
        self.log.expect(needle, "server log")
    }

    pub fn log(&self) -> Vec<String> {
        self.log.all()
    }

    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// The server's resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child, "server")
    }

    /// A scripted client that has logged in as `nick`.
    pub fn client(&self, nick: &str) -> Client {
        self.client_with(nick, &[])
    }

    /// A scripted client started with `extra` options that has logged in as `nick` (typed as
    /// its first line), with `nick`'s identity file.
    pub fn client_with(&self, nick: &str, extra: &[&str]) -> Client {
        let identity = identity_file(nick);
        let identity = identity.to_str().expect("UTF-8 path");
        let mut args = vec!["--identity", identity];
        args.extend_from_slice(self.transport());
        args.extend_from_slice(extra);
        let client = Client::start(self.port, &args);
        client.say(nick);
        client
    }

    /// `Client::start` with the options that go with this relay's transport.
    pub fn start_client(&self, extra: &[&str]) -> Client {
        let mut args = self.transport().to_vec();
        args.extend_from_slice(extra);
        Client::start(self.port, &args)
    }

    /// Two scripted clients paired with each other (the first must be the only one waiting).
    pub fn pair(&self, first: &str, second: &str) -> (Client, Client) {
        self.pair_with(first, second, &[])
    }

    /// `pair`, with `extra` client options.
    pub fn pair_with(&self, first: &str, second: &str, extra: &[&str]) -> (Client, Client) {
        let a = self.client_with(first, extra);
        a.expect("Waiting for a companion");
        let b = self.client_with(second, extra);
        b.expect(&format!("Connected to {first}"));
        a.expect(&format!("Connected to {second}"));
        // Each then learns the other's key; what follows is the conversation itself.
        b.expect(&format!("🔑 {first}'s identity key is "));
        a.expect(&format!("🔑 {second}'s identity key is "));
        (a, b)
    }

    pub fn raw(&self) -> Raw {
        assert!(
            self.plaintext(),
            "raw clients speak plain TCP: start the relay with --plaintext"
        );
        Raw::connect(self.port)
    }
}

/// Kills a child the test started and reaps it (tests never leave processes behind).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// `p2pchat client 127.0.0.1 PORT` in scripting mode (stdin and stdout are pipes), with a
/// config dir of its own (known relays, companions' keys) and, when `--nick NAME` is among its
/// options and no `--identity`, NAME's identity file.
pub struct Client {
    pub child: Child,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    out: Lines,
    config: ConfigDir,
}

/// A client's config dir: its own, or one the test keeps across restarts.
enum ConfigDir {
    Own(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

impl ConfigDir {
    fn path(&self) -> &std::path::Path {
        match self {
            Self::Own(dir) => dir.path(),
            Self::Kept(path) => path,
        }
    }
}

impl Client {
    pub fn start(port: u16, extra: &[&str]) -> Self {
        Self::start_in(port, extra, tempfile::tempdir().expect("client config dir"))
    }

    /// `start`, with `config` as the client's config dir (known relays, companions' keys).
    pub fn start_in(port: u16, extra: &[&str], config: tempfile::TempDir) -> Self {
        Self::start_with(port, extra, ConfigDir::Own(config))
    }

    /// `start`, with the config dir at `config`, which the test keeps (a client started again
    /// finds its pins there).
    pub fn start_at(port: u16, extra: &[&str], config: &std::path::Path) -> Self {
        Self::start_with(port, extra, ConfigDir::Kept(config.to_path_buf()))
    }

    fn start_with(port: u16, extra: &[&str], config: ConfigDir) -> Self {
        let mut args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let nick = extra
            .windows(2)
            .find(|pair| pair[0] == "--nick")
            .map(|pair| pair[1]);
        if let (Some(nick), false) = (nick, extra.contains(&"--identity")) {
            args.push("--identity".into());
            args.push(identity_file(nick).to_string_lossy().into_owned());
        }
        let mut child = Command::new(binary())
            .args(["client", "127.0.0.1", &port.to_string()])
            .args(&args)
            .env("XDG_CONFIG_HOME", config.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start client");
        let out = Lines::spawn(child.stdout.take().expect("stdout"));
        let stdin = Arc::new(Mutex::new(child.stdin.take()));
        Self {
            child,
            stdin,
            out,
            config,
        }
    }

    /// The client's config dir (`XDG_CONFIG_HOME`).
    pub fn config_dir(&self) -> &std::path::Path {
        self.config.path()
    }

    /// Kills the client with SIGKILL and waits for it to be gone.
    pub fn kill9(&mut self) {
        stop(&mut self.child);
    }

    /// Types a line.
    pub fn say(&self, line: &str) {
        let mut stdin = self.stdin.lock().unwrap();
        let pipe = stdin.as_mut().expect("stdin still open");
        writeln!(pipe, "{line}").expect("write to client");
        pipe.flush().expect("flush client stdin");
    }

    /// Writes raw bytes to the client's stdin.
    pub fn type_bytes(&self, bytes: &[u8]) {
        let mut stdin = self.stdin.lock().unwrap();
        let pipe = stdin.as_mut().expect("stdin still open");
        pipe.write_all(bytes).expect("write to client");
        pipe.flush().expect("flush client stdin");
    }

    /// Types `lines` from a thread of its own (the client may stop reading input for a while,
    /// e.g. while it reconnects); the input stays open afterwards.
    pub fn feed(&self, lines: Vec<String>) -> thread::JoinHandle<()> {
        let stdin = self.stdin.clone();
        thread::spawn(move || {
            for line in &lines {
                let mut stdin = stdin.lock().unwrap();
                let Some(pipe) = stdin.as_mut() else { return };
                if writeln!(pipe, "{line}")
                    .and_then(|()| pipe.flush())
                    .is_err()
                {
                    return;
                }
            }
        })
    }

    /// Lines printed so far that start with `prefix`, without it.
    pub fn lines_starting(&self, prefix: &str) -> Vec<String> {
        self.out
            .all()
            .into_iter()
            .filter_map(|line| line.strip_prefix(prefix).map(str::to_owned))
            .collect()
    }

    /// Waits until at least `count` printed lines start with `prefix`; panics after `wait`.
    pub fn wait_for_count(&self, prefix: &str, count: usize, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let seen = self.lines_starting(prefix).len();
            if seen >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "client printed {seen} of {count} lines starting with {prefix:?} within {wait:?}; last lines:\n{}",
                self.out.all().iter().rev().take(30).rev().cloned().collect::<Vec<_>>().join("\n")
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the client's input (like Ctrl+D).
    pub fn close_input(&self) {
        self.stdin.lock().unwrap().take();
    }

    /// `expect`, waiting up to `wait` (for what takes long even when all is well).
    pub fn expect_within(&self, needle: &str, wait: Duration) -> String {
        self.out.expect_within(needle, "client", wait)
    }

    pub fn expect(&self, needle: &str) -> String {
        self.out.expect(needle, "client")
    }

    pub fn next_line(&self) -> String {
        self.out.next("client")
    }

    pub fn output(&self) -> Vec<String> {
        self.out.all()
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child, "client")
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A hand-driven protocol client over a plain socket.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The challenge of this connection's `Welcome`.
    pub challenge: [u8; 32],
}

const RAW_MAX_FRAME: usize = 1 << 20;

impl Raw {
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: Vec::new(),
            challenge: [0; 32],
        }
    }

    pub fn send(&mut self, frame: &Frame) {
        self.send_bytes(&encode_to_vec(frame));
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next frame; panics on timeout or a closed connection.
    pub fn recv(&mut self) -> Frame {
        self.try_recv()
            .unwrap_or_else(|| panic!("connection closed while waiting for a frame"))
    }

    /// The next frame, or `None` once the relay has closed the connection.
    pub fn try_recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.buffered() {
                return Some(frame);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(err) => panic!("read failed: {err}"),
            }
        }
    }

    /// A whole frame already read, if there is one.
    fn buffered(&mut self) -> Option<Frame> {
        let (frame, used) = decode(&self.buf, RAW_MAX_FRAME).expect("decodable")?;
        self.buf.drain(..used);
        Some(frame)
    }

    /// The next frame if one arrives within `wait`.
    pub fn recv_timeout(&mut self, wait: Duration) -> Option<Frame> {
        if let Some(frame) = self.buffered() {
            return Some(frame);
        }
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut chunk = [0u8; 64 * 1024];
        let read = self.stream.read(&mut chunk);
        self.stream.set_read_timeout(Some(WAIT)).expect("timeout");
        match read {
            Ok(n) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.recv_timeout(Duration::from_millis(1))
            }
            _ => None,
        }
    }

    /// Frames until `pred` matches one (which is returned); pings are answered on the way.
    pub fn recv_until(&mut self, mut pred: impl FnMut(&Frame) -> bool) -> Frame {
        loop {
            let frame = self.recv();
            if pred(&frame) {
                return frame;
            }
            if let Frame::Ping(token) = frame {
                self.send(&Frame::Pong(token));
            }
        }
    }

    /// Asserts the relay closes the connection, skipping frames before the close.
    pub fn expect_closed(&mut self) -> Vec<Frame> {
        let mut before = Vec::new();
        while let Some(frame) = self.try_recv() {
            before.push(frame);
            assert!(before.len() < 10_000, "relay never closed the connection");
        }
        before
    }

    pub fn hello(&mut self) -> Frame {
        self.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
            features: 0,
            client: "raw test client".into(),
        });
        let welcome = self.recv();
        let Frame::Welcome { challenge, .. } = welcome else {
            panic!("expected Welcome, got {welcome:?}");
        };
        self.challenge = challenge;
        welcome
    }

    /// `Nick` for `nick`, proved with `nick`'s test identity over this connection's challenge.
    pub fn nick_frame(&self, nick: &str) -> Frame {
        self.nick_frame_as(nick, &identity_of(nick))
    }

    /// `Nick` for `nick`, proved with `identity`.
    pub fn nick_frame_as(&self, nick: &str, identity: &Identity) -> Frame {
        Frame::Nick {
            nick: nick.into(),
            key: identity.public_key(),
            proof: identity.sign_login(&self.challenge, nick),
        }
    }

    /// `Resume` for `nick` with `token`, proved with `nick`'s test identity.
    pub fn resume_frame(&self, nick: &str, token: [u8; 16]) -> Frame {
        let identity = identity_of(nick);
        Frame::Resume {
            nick: nick.into(),
            token,
            key: identity.public_key(),
            proof: identity.sign_login(&self.challenge, nick),
        }
    }

    /// Handshake and nickname; returns the frame after `NickOk` (`Waiting` or `Paired`).
    /// After `Paired` or `WaitingFor` the relay's `Conversation` frame is read too.
    pub fn login(port: u16, nick: &str) -> (Self, Frame) {
        let mut raw = Self::connect(port);
        raw.hello();
        raw.send(&raw.nick_frame(nick));
        let accepted = raw.recv();
        assert!(
            matches!(&accepted, Frame::NickOk { nick: n, .. } if n == nick),
            "{accepted:?}"
        );
        let next = raw.recv();
        if matches!(next, Frame::Paired(_) | Frame::WaitingFor(_)) {
            raw.expect_conversation();
        }
        (raw, next)
    }

    /// Reads the `Conversation` frame that follows `Paired` and `WaitingFor`.
    pub fn expect_conversation(&mut self) -> p2pchat_proto::ConversationInfo {
        match self.recv_until(|f| matches!(f, Frame::Conversation(_))) {
            Frame::Conversation(info) => info,
            _ => unreachable!(),
        }
    }

    /// The text of the next chat message, skipping other frames.
    pub fn recv_text(&mut self) -> String {
        let frame = self.recv_until(|f| matches!(f, Frame::Message(_)));
        text_of(&frame).unwrap_or_default().to_owned()
    }

    /// Two raw clients paired with each other.
    pub fn pair(port: u16, first: &str, second: &str) -> (Self, Self) {
        let (mut a, waiting) = Self::login(port, first);
        assert_eq!(waiting, Frame::Waiting);
        let (b, paired) = Self::login(port, second);
        assert_eq!(paired, Frame::Paired(first.into()));
        assert_eq!(a.recv(), Frame::Paired(second.into()));
        a.expect_conversation();
        (a, b)
    }
}

/// Pings from a raw client's socket every 300 ms until dropped, so a test can keep a client
/// that does nothing else alive past the relay's heartbeat. The pongs wait unread.
pub struct KeepAlive {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl KeepAlive {
    pub fn start(raw: &Raw) -> Self {
        let mut socket = raw.stream.try_clone().expect("clone socket");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                if socket.write_all(&encode_to_vec(&Frame::Ping(7))).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(300));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Proves a conversation still works: each side's message reaches the other.
pub fn assert_chat_works(a: &mut Raw, b: &mut Raw, tag: &str) {
    let to_b = format!("{tag}: ping from a");
    let to_a = format!("{tag}: pong from b");
    a.send(&msg(&to_b));
    assert_eq!(b.recv_text(), to_b);
    b.send(&msg(&to_a));
    assert_eq!(a.recv_text(), to_a);
}

/// A TCP proxy on loopback between clients and the relay, whose connections a test can cut
/// (both directions closed at once) without killing any process.
pub struct Proxy {
    pub port: u16,
    live: Arc<Mutex<Vec<(TcpStream, TcpStream)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Every byte that went through, both directions (up to `CAPTURE_LIMIT`).
    captured: Arc<Mutex<Vec<u8>>>,
    /// How many bytes went through from the client's side to the relay's.
    upstream: Arc<std::sync::atomic::AtomicU64>,
}

/// Most bytes a proxy keeps of what went through it.
const CAPTURE_LIMIT: usize = 64 << 20;

/// Copies `from` to `to` until either ends, keeping a copy of the bytes in `captured` and
/// adding their number to `counted` if given.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    captured: &Mutex<Vec<u8>>,
    counted: Option<&std::sync::atomic::AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut captured = captured.lock().unwrap();
            if captured.len() + n <= CAPTURE_LIMIT {
                captured.extend_from_slice(&buf[..n]);
            }
        }
        if let Some(counted) = counted {
            counted.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Proxy {
    pub fn start(target: u16) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let live: Arc<Mutex<Vec<(TcpStream, TcpStream)>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let captured: Arc<Mutex<Vec<u8>>> = Arc::default();
        let upstream: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let (conns, stopped, tap) = (live.clone(), stop.clone(), captured.clone());
        let up = upstream.clone();
        thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to, counted) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                        Some(up.clone()),
                    ),
                    (
                        server.try_clone().expect("clone"),
                        client.try_clone().expect("clone"),
                        None,
                    ),
                ] {
                    let tap = tap.clone();
                    thread::spawn(move || pipe(from, to, &tap, counted.as_deref()));
                }
                conns.lock().unwrap().push((client, server));
            }
        });
        Self {
            port,
            live,
            stop,
            captured,
            upstream,
        }
    }

    /// Bytes sent through the proxy by its clients, in all.
    pub fn sent_upstream(&self) -> u64 {
        self.upstream.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every byte that has gone through the proxy so far, both directions interleaved.
    pub fn captured(&self) -> Vec<u8> {
        self.captured.lock().unwrap().clone()
    }

    /// Closes every connection going through the proxy, in both directions.
    pub fn cut(&self) -> usize {
        let conns = std::mem::take(&mut *self.live.lock().unwrap());
        for (client, server) in &conns {
            let _ = client.shutdown(std::net::Shutdown::Both);
            let _ = server.shutdown(std::net::Shutdown::Both);
        }
        conns.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.cut();
    }
}
