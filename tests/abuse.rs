//! Abuse of the relay over real sockets on loopback: connections that never log in (slow-loris),
//! a connection flood from one address, a message flood, and TLS (clients that log in and chat
//! through it, a plaintext client against a TLS relay, refusals and shutdown inside TLS). The
//! relay runs in-process (`p2pchat_server::run`); clients speak the protocol with raw sockets.
//! Every wait is bounded; outcomes are asserted, not timings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use p2pchat_proto::{decode, encode_to_vec, ChatMessage, ErrorCode, Frame, PROTOCOL_VERSION};
use p2pchat_secure::tls::{ClientTls, ServerTls, Trust};
use p2pchat_secure::Identity;
use p2pchat_server::{Config, Owners};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use tokio_util::sync::CancellationToken;

/// Longest any single expected event may take.
const WAIT: Duration = Duration::from_secs(15);
/// Largest frame a test client accepts.
const MAX_FRAME: usize = 70 * 1024;
/// Most log bytes kept from the relays of this test binary.
const MAX_LOG: usize = 8 << 20;

/// The relays' log lines, shared by every test in this binary.
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        log
    })
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut log = self.0.lock().unwrap();
        if log.len() + bytes.len() <= MAX_LOG {
            log.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(needle: &str) -> bool {
    String::from_utf8_lossy(&log().lock().unwrap()).contains(needle)
}

/// A relay running in its own runtime, shut down on drop.
struct Relay {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
    tls: Option<Arc<ClientConfig>>,
    _dir: Option<tempfile::TempDir>,
}

impl Relay {
    fn start(config: Config) -> Self {
        log();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let _ = p2pchat_server::raise_open_files_limit();
        let listener = runtime
            .block_on(p2pchat_server::bind("127.0.0.1", 0))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let run = p2pchat_server::run(
            listener,
            config,
            None,
            Owners::in_memory(1000),
            p2pchat_server::Rooms::in_memory(Default::default()),
            shutdown.clone(),
        );
        let task = Some(runtime.spawn(run));
        Self {
            addr,
            shutdown,
            task,
            runtime,
            tls: None,
            _dir: None,
        }
    }

    /// A relay with a self-signed certificate; its clients trust it on first use.
    fn start_tls(mut config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ServerTls::self_signed(&dir.path().join("tls"), vec!["localhost".into()])
            .expect("certificate");
        config.tls = Some(server.config);
        let mut relay = Self::start(config);
        let trust = Trust::KnownHosts(dir.path().join("known_hosts"));
        let client = ClientTls::new(&trust, "localhost", relay.addr.port()).expect("client TLS");
        relay.tls = Some(client.config);
        relay._dir = Some(dir);
        relay
    }

    /// A TCP connection from 127.0.0.1.
    fn tcp(&self) -> TcpStream {
        TcpStream::connect(self.addr).expect("connect")
    }

    /// A TCP connection from another loopback address (Linux routes all of 127/8 to lo).
    fn tcp_from(&self, ip: &str) -> TcpStream {
        let local: SocketAddr = format!("{ip}:0").parse().expect("address");
        let stream = self.runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(local)?;
            socket.connect(self.addr).await
        });
        let stream = stream.expect("connect").into_std().expect("std stream");
        stream.set_nonblocking(false).expect("blocking");
        stream
    }

    /// A client on `stream`, over TLS if the relay speaks it.
    fn peer(&self, stream: TcpStream) -> Peer {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => Peer::new(Box::new(stream)),
            Some(config) => {
                let conn = ClientConnection::new(config.clone(), localhost()).expect("TLS client");
                Peer::new(Box::new(StreamOwned::new(conn, stream)))
            }
        }
    }

    /// Two clients logged in and paired with each other, from `ip`.
    fn pair(&self, ip: &str, first: &str, second: &str) -> (Peer, Peer) {
        let mut a = self.peer(self.tcp_from(ip));
        assert_eq!(a.login(first), Frame::Waiting);
        let mut b = self.peer(self.tcp_from(ip));
        assert_eq!(b.login(second), Frame::Paired(first.into()));
        assert_eq!(
            a.recv_where(|f| matches!(f, Frame::Paired(_))),
            Frame::Paired(second.into())
        );
        (a, b)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(WAIT, task).await });
        }
    }
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("server name")
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// A raw protocol client over plain TCP or TLS.
struct Peer {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    challenge: [u8; 32],
}

impl Peer {
    fn new(io: Box<dyn Io>) -> Self {
        Self {
            io,
            buf: Vec::new(),
            challenge: [0; 32],
        }
    }

    fn send(&mut self, frame: &Frame) {
        self.io.write_all(&encode_to_vec(frame)).expect("send");
        self.io.flush().expect("flush");
    }

    /// The next frame, or `None` once the relay has closed the connection.
    fn recv(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((frame, used)) = decode(&self.buf, MAX_FRAME).expect("well-formed frame") {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.io.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) if is_timeout(&err) => {
                    assert!(Instant::now() < deadline, "no frame within {WAIT:?}");
                }
                Err(_) => return None,
            }
        }
    }

    /// The next frame `pred` accepts, skipping (and answering pings among) the others.
    fn recv_where(&mut self, mut pred: impl FnMut(&Frame) -> bool) -> Frame {
        for _ in 0..100_000 {
            let frame = self
                .recv()
                .expect("connection closed while waiting for a frame");
            if pred(&frame) {
                return frame;
            }
            if let Frame::Ping(token) = frame {
                self.send(&Frame::Pong(token));
            }
        }
        panic!("the expected frame never came");
    }

    fn hello(&mut self) -> Frame {
        self.send(&Frame::Hello {
            version: PROTOCOL_VERSION,
            features: 0,
            client: "abuse test".into(),
        });
        let answer = self.recv().expect("an answer to Hello");
        if let Frame::Welcome { challenge, .. } = &answer {
            self.challenge = *challenge;
        }
        answer
    }

    /// Hello and Nick; returns what follows `NickOk` (`Waiting` or `Paired`).
    fn login(&mut self, nick: &str) -> Frame {
        assert!(matches!(self.hello(), Frame::Welcome { .. }));
        let identity = Identity::from_seed(&seed(nick));
        self.send(&Frame::Nick {
            nick: nick.into(),
            key: identity.public_key(),
            proof: identity.sign_login(&self.challenge, nick),
        });
        let accepted = self.recv().expect("NickOk");
        assert!(matches!(&accepted, Frame::NickOk { .. }), "{accepted:?}");
        self.recv().expect("Waiting or Paired")
    }

    fn recv_text(&mut self) -> Vec<u8> {
        match self.recv_where(|f| matches!(f, Frame::Message(_))) {
            Frame::Message(message) => message.body,
            _ => unreachable!(),
        }
    }
}

fn is_timeout(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A test identity per nickname.
fn seed(nick: &str) -> [u8; 32] {
    let mut seed = [7u8; 32];
    for (slot, byte) in seed.iter_mut().zip(nick.bytes()) {
        *slot = byte;
    }
    seed
}

fn message(body: Vec<u8>) -> Frame {
    let mut id = [0; 16];
    getrandom::fill(&mut id).expect("random id");
    Frame::Message(ChatMessage {
        seq: 0,
        sent_ms: 0,
        id,
        body,
    })
}

/// A message each way between `a` and `b`.
fn round_trip(a: &mut Peer, b: &mut Peer, label: &str) {
    a.send(&message(format!("ping {label}").into_bytes()));
    assert_eq!(b.recv_text(), format!("ping {label}").into_bytes());
    b.send(&message(format!("pong {label}").into_bytes()));
    assert_eq!(a.recv_text(), format!("pong {label}").into_bytes());
}

/// Waits until the relay closes `stream` (end of stream or reset), ignoring what it sends.
fn expect_closed(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut chunk = [0u8; 4096];
    for _ in 0..10_000 {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if is_timeout(&err) => panic!("not closed within {WAIT:?}"),
            Err(_) => return,
        }
    }
    panic!("the relay kept sending instead of closing");
}

fn short_login(config: Config) -> Config {
    Config {
        login_timeout: Duration::from_secs(2),
        max_per_ip: 0,
        ..config
    }
}

/// Connections that never log in (silent, or stuck halfway through `Hello` or a TLS
/// ClientHello) cost the relay nothing but their socket until the login timeout closes them,
/// and logged-in clients chat meanwhile.
fn slow_loris(relay: &Relay, half_hello: &[u8]) {
    let mut silent: Vec<TcpStream> = (0..200).map(|_| relay.tcp()).collect();
    let mut halfway: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = relay.tcp();
            stream.write_all(half_hello).expect("half a hello");
            stream
        })
        .collect();
    let (mut a, mut b) = relay.pair("127.0.0.1", "Probe1", "Probe2");
    for round in 0..3 {
        round_trip(&mut a, &mut b, &format!("while stalled {round}"));
    }
    for stream in silent.iter_mut().chain(halfway.iter_mut()) {
        expect_closed(stream);
    }
    round_trip(&mut a, &mut b, "after the stalled ones were closed");
}

#[test]
fn slow_loris_connections_are_closed_at_the_login_timeout() {
    let relay = Relay::start(short_login(Config::default()));
    let hello = encode_to_vec(&Frame::Hello {
        version: PROTOCOL_VERSION,
        features: 0,
        client: "never finishes".into(),
    });
    slow_loris(&relay, &hello[..hello.len() / 2]);
    assert!(logged("no nickname within 2s"));
}

#[test]
fn slow_loris_tls_handshakes_are_closed_at_the_login_timeout() {
    let relay = Relay::start_tls(short_login(Config::default()));
    let config = relay.tls.clone().expect("TLS");
    let mut conn = ClientConnection::new(config, localhost()).expect("TLS client");
    let mut client_hello = Vec::new();
    conn.write_tls(&mut client_hello).expect("ClientHello");
    slow_loris(&relay, &client_hello[..client_hello.len() / 2]);
}

#[test]
fn one_address_cannot_take_every_connection() {
    let relay = Relay::start(Config {
        max_per_ip: 20,
        ..Config::default()
    });
    let streams: Vec<TcpStream> = (0..50).map(|_| relay.tcp()).collect();
    // Refused connections are told at once; admitted ones hear nothing until they speak.
    for stream in &streams {
        stream.set_nonblocking(true).expect("non-blocking");
    }
    let mut refused = vec![false; streams.len()];
    let mut buffers = vec![Vec::new(); streams.len()];
    let deadline = Instant::now() + WAIT;
    while refused.iter().filter(|r| **r).count() < 30 {
        assert!(Instant::now() < deadline, "refused: {refused:?}");
        for (i, mut stream) in streams.iter().enumerate() {
            let mut chunk = [0u8; 4096];
            if let Ok(n) = stream.read(&mut chunk) {
                buffers[i].extend_from_slice(&chunk[..n]);
            }
            if let Ok(Some((frame, _))) = decode(&buffers[i], MAX_FRAME) {
                let Frame::Error { code, fatal, text } = frame else {
                    panic!("{frame:?}");
                };
                assert_eq!((code, fatal), (ErrorCode::TooManyConnections, true));
                assert_eq!(
                    text,
                    "too many connections from your address (limit 20); close some and try again"
                );
                refused[i] = true;
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    // The other 20 are served.
    let mut admitted: Vec<Peer> = Vec::new();
    for (stream, _) in streams.into_iter().zip(&refused).filter(|(_, r)| !**r) {
        stream.set_nonblocking(false).expect("blocking");
        let mut peer = relay.peer(stream);
        assert!(matches!(peer.hello(), Frame::Welcome { .. }));
        admitted.push(peer);
    }
    assert_eq!(admitted.len(), 20);
    // Other addresses are not affected.
    let (mut a, mut b) = relay.pair("127.0.0.2", "Other1", "Other2");
    round_trip(&mut a, &mut b, "beside a flooded address");
    assert!(logged("Too many connections from 127.0.0.1 (limit 20)"));
    // Places free up as connections close.
    drop(admitted);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut late = relay.peer(relay.tcp());
        if matches!(late.hello(), Frame::Welcome { .. }) {
            break;
        }
        assert!(Instant::now() < deadline, "the address stayed full");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_message_flood_is_slowed_down_without_losing_anything() {
    const RATE: u32 = 1000;
    const FLOOD: u32 = 4000;
    const BODY: usize = 600;
    let relay = Relay::start(Config {
        max_rate: RATE,
        ..Config::default()
    });
    let (mut probe_a, mut probe_b) = relay.pair("127.0.0.1", "ProbeA", "ProbeB");
    let (mut flooder, mut companion) = relay.pair("127.0.0.1", "Flooder", "Companion");
    let received = Arc::new(AtomicU32::new(0));
    let counter = {
        let received = received.clone();
        thread::spawn(move || {
            for next in 0..FLOOD {
                let body = companion.recv_text();
                let index: u32 = String::from_utf8_lossy(&body[..10]).parse().expect("index");
                assert_eq!(index, next, "flooded messages out of order");
                received.store(next + 1, Ordering::Relaxed);
            }
            companion
        })
    };
    let mut batch = Vec::new();
    for index in 0..FLOOD {
        let mut body = format!("{index:010}").into_bytes();
        body.resize(BODY, b'x');
        batch.extend(encode_to_vec(&message(body)));
    }
    let start = Instant::now();
    // As fast as the socket takes it; the relay's acks and notice (a few hundred bytes) wait in
    // the flooder's receive buffer meanwhile.
    let flood = thread::spawn(move || {
        flooder.io.write_all(&batch).expect("flood");
        let mut acked = 0;
        let mut errors = Vec::new();
        while acked < FLOOD {
            match flooder.recv().expect("the flooder's connection") {
                Frame::Ack { count, .. } => acked += count,
                error @ Frame::Error { .. } => errors.push(error),
                _ => {}
            }
        }
        errors
    });
    // Probes chat while the flood is on.
    round_trip(&mut probe_a, &mut probe_b, "during the flood");
    thread::sleep(Duration::from_millis(500));
    let seen = received.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    // The allowance is RATE a second with a burst of RATE; the read that uses it up may bring
    // more before the relay stops reading (64 KiB asked of the kernel, into a buffer that may
    // have room for more: two reads' worth of slack).
    let slack = (2 * 64 * 1024 / BODY) as f64;
    let bound = f64::from(RATE) * elapsed + f64::from(RATE) + slack;
    assert!(
        f64::from(seen) <= bound,
        "{seen} messages forwarded in {elapsed:.2}s (at most {bound:.0} allowed)"
    );
    round_trip(&mut probe_a, &mut probe_b, "later in the flood");
    let _companion = counter
        .join()
        .expect("every flooded message arrived in order");
    let errors = flood.join().expect("the flooder's frames");
    let text = format!(
        "you are sending more than {RATE} messages a second; the relay is slowing you down"
    );
    let notice = Frame::Error {
        code: ErrorCode::RateLimited,
        fatal: false,
        text,
    };
    assert_eq!(errors, vec![notice], "one notice for one episode");
    assert!(logged("(Flooder) sends more than 1000 messages a second"));
}

#[test]
fn tls_clients_chat_and_a_plaintext_client_is_dropped() {
    let relay = Relay::start_tls(Config {
        max_per_ip: 3,
        ..Config::default()
    });
    let (mut a, mut b) = relay.pair("127.0.0.1", "Secret1", "Secret2");
    round_trip(&mut a, &mut b, "over TLS");
    // Many frames in a few records, both ways.
    let big = vec![b'z'; 60_000];
    for _ in 0..20 {
        a.send(&message(big.clone()));
    }
    for _ in 0..20 {
        assert_eq!(b.recv_text(), big);
    }
    // A client without TLS is dropped with a clear log line; the others carry on.
    let mut plain = relay.tcp_from("127.0.0.3");
    let hello = encode_to_vec(&Frame::Hello {
        version: PROTOCOL_VERSION,
        features: 0,
        client: "no TLS".into(),
    });
    plain.write_all(&hello).expect("hello");
    expect_closed(&mut plain);
    round_trip(&mut a, &mut b, "after the plaintext client");
    assert!(logged("TLS handshake failed"));
    assert!(logged("it needs the same --plaintext setting as the relay"));
    // A refusal is sent inside TLS: the third connection from this address is the last
    // allowed, the fourth is told why.
    let mut third = relay.peer(relay.tcp());
    assert!(matches!(third.hello(), Frame::Welcome { .. }));
    let mut fourth = relay.peer(relay.tcp());
    match fourth.recv() {
        Some(Frame::Error { code, fatal, .. }) => {
            assert_eq!((code, fatal), (ErrorCode::TooManyConnections, true))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fourth.recv(), None);
    // Shutdown reaches TLS clients as a frame, then a clean close (close_notify).
    relay.shutdown.cancel();
    for peer in [&mut a, &mut b] {
        let frame = peer.recv_where(|f| matches!(f, Frame::Shutdown(_)));
        assert!(matches!(frame, Frame::Shutdown(_)));
        let mut rest = [0u8; 64];
        assert_eq!(peer.io.read(&mut rest).expect("close_notify"), 0);
    }
}
