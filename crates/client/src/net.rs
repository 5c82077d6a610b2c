//! The connection to the relay: connect (over `transport`: TLS or plain TCP), handshake, a
//! reader task that turns bytes into events and a writer task that batches frames onto the
//! stream. Nothing here knows about the terminal,
//! and nothing here keeps frames for later: after a broken connection the app's queue of
//! unacknowledged messages says what to send again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use p2pchat_proto::{
    decode, encode, encode_to_bytes, max_frame_len, Challenge, Frame, DEFAULT_MAX_MESSAGE,
    FEATURE_HISTORY, PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, Notify};

use crate::transport::{self, looks_like_tls, BoxStream, Target};
use tokio::task::AbortHandle;
use tracing::debug;

/// How long connecting and the handshake may take before the client gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames the client lets queue for the socket before it stops reading input: the user's typing
/// (or a piped file) slows to the network's pace instead of filling memory.
const SEND_BACKLOG: usize = 256;
/// Frames queued for the socket below which another file chunk may be queued: chunks never
/// fill the queue, so a chat line typed during a transfer waits behind at most 1 MiB of them
/// (milliseconds on a fast link; 4 chunks left the link idle between wake-ups).
const BULK_BACKLOG: usize = 16;

/// What the relay announced in its `Welcome`.
#[derive(Debug, Clone)]
pub struct Welcome {
    /// Longest message text accepted.
    pub max_message: u32,
    /// The relay drops connections silent for this long.
    pub heartbeat: Duration,
    /// The relay's name and version.
    pub server: String,
    /// Whether the relay stores history and acknowledges only what is on disk.
    pub stored_history: bool,
    /// This connection's login challenge.
    pub challenge: Challenge,
    /// What to tell the user about the relay's certificate (a first connection).
    pub notice: Option<String>,
}

/// What the reader task reports.
#[derive(Debug)]
pub enum NetEvent {
    /// A frame from the relay.
    Frame(Frame),
    /// A frame that could not be decoded was skipped.
    Skipped(String),
    /// The connection ended; the text says how.
    Closed(String),
}

/// Why connecting failed, in words for the user.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed.
    #[error("{}", describe_io_error(.0))]
    Io(#[from] std::io::Error),
    /// Took longer than `CONNECT_TIMEOUT`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer is not a p2pchat relay, refused the handshake, or TLS failed.
    #[error("{0}")]
    Handshake(String),
    /// The relay's certificate is not the one pinned for it: the text is the full warning.
    /// Never retried.
    #[error("{0}")]
    CertificateChanged(String),
}

impl ConnectError {
    /// Whether trying again is pointless or dangerous (a changed certificate).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::CertificateChanged(_))
    }
}

/// Connects to the target and completes the TLS and p2pchat handshakes.
pub async fn connect(target: &Target) -> Result<(Connection, Welcome), ConnectError> {
    let attempt = async {
        let opened = transport::open(target).await?;
        let (connection, mut welcome) = handshake(opened.stream).await?;
        welcome.notice = opened.notice;
        Ok((connection, welcome))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))?
}

/// A connected, greeted socket and the bytes already read past the `Welcome`.
pub struct Connection {
    stream: BoxStream,
    leftover: BytesMut,
    max_frame: usize,
}

async fn handshake(mut stream: BoxStream) -> Result<(Connection, Welcome), ConnectError> {
    let hello = Frame::Hello {
        version: PROTOCOL_VERSION,
        features: FEATURE_HISTORY,
        client: format!("p2pchat {}", env!("CARGO_PKG_VERSION")),
    };
    stream.write_all(&encode_to_bytes(&hello)).await?;
    let max_frame = max_frame_len(DEFAULT_MAX_MESSAGE);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match decode(&buf, max_frame) {
            Ok(Some((frame, used))) => {
                let _ = buf.split_to(used);
                return match frame {
                    Frame::Welcome {
                        max_message,
                        heartbeat_ms,
                        server,
                        features,
                        challenge,
                        ..
                    } => {
                        let welcome = Welcome {
                            max_message,
                            heartbeat: Duration::from_millis(u64::from(heartbeat_ms.max(300))),
                            server,
                            stored_history: features & FEATURE_HISTORY != 0,
                            challenge,
                            notice: None,
                        };
                        let max_frame = max_frame_len(max_message);
                        let connection = Connection {
                            stream,
                            leftover: buf,
                            max_frame,
                        };
                        Ok((connection, welcome))
                    }
                    Frame::Error { text, .. } => Err(ConnectError::Handshake(format!(
                        "the server refused the connection: {text}"
                    ))),
                    other => Err(ConnectError::Handshake(format!(
                        "expected a Welcome from the server, got {:?}",
                        other.frame_type()
                    ))),
                };
            }
            Ok(None) => {}
            Err(_) if looks_like_tls(&buf) => return Err(speaks_tls()),
            Err(err) => {
                return Err(ConnectError::Handshake(format!(
                    "this does not look like a p2pchat server ({err})"
                )))
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            if looks_like_tls(&buf) {
                return Err(speaks_tls());
            }
            return Err(ConnectError::Handshake(
                "the server closed the connection during the handshake".into(),
            ));
        }
    }
}

/// A plaintext client that reached a TLS relay.
fn speaks_tls() -> ConnectError {
    ConnectError::Handshake(
        "the relay speaks TLS but this client was started with --plaintext; leave --plaintext out"
            .into(),
    )
}

impl Connection {
    /// Starts the reader and writer tasks; both report the connection's end on `events`.
    pub fn start(self, events: mpsc::Sender<NetEvent>) -> Tasks {
        let (reader, writer) = tokio::io::split(self.stream);
        let reading = tokio::spawn(read_frames(
            reader,
            self.leftover,
            self.max_frame,
            events.clone(),
        ));
        let (tx, rx) = mpsc::unbounded_channel();
        let outgoing = Outgoing {
            tx,
            backlog: Arc::new(AtomicUsize::new(0)),
            room: Arc::new(Notify::new()),
            bulk: Arc::new(Notify::new()),
        };
        let writing = tokio::spawn(write_frames(writer, rx, outgoing.clone(), events));
        Tasks {
            outgoing,
            handles: [reading.abort_handle(), writing.abort_handle()],
        }
    }
}

/// A started connection: its sending handle, and its tasks, stopped when this is dropped (a
/// connection given up for a new one must not linger half-open).
pub struct Tasks {
    /// Where frames for the relay go.
    pub outgoing: Outgoing,
    handles: [AbortHandle; 2],
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.abort();
        }
    }
}

enum Item {
    Frame(Frame),
    /// Flush, then close the sending side (the relay then closes and the reader sees the end).
    Finish,
}

/// Handle for sending frames; the writer task owns the socket.
#[derive(Clone)]
pub struct Outgoing {
    tx: mpsc::UnboundedSender<Item>,
    backlog: Arc<AtomicUsize>,
    room: Arc<Notify>,
    bulk: Arc<Notify>,
}

impl Outgoing {
    /// Queues a frame. Callers stop producing input frames while `has_room` is false, which
    /// bounds the queue (replies such as `Pong` are few and always allowed).
    pub fn send(&self, frame: Frame) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Item::Frame(frame));
    }

    /// Flushes what is queued and closes the sending side.
    pub fn finish(&self) {
        let _ = self.tx.send(Item::Finish);
    }

    /// Whether more input may be queued now.
    pub fn has_room(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) < SEND_BACKLOG
    }

    /// Resolves when the writer has drained the backlog below the limit again.
    pub async fn room(&self) {
        self.room.notified().await;
    }

    /// Whether a file chunk may be queued now (the queue is nearly empty).
    pub fn has_bulk_room(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) < BULK_BACKLOG
    }

    /// Resolves when the backlog has dropped below `BULK_BACKLOG` again.
    pub async fn bulk_room(&self) {
        self.bulk.notified().await;
    }
}

async fn write_frames(
    mut socket: WriteHalf<BoxStream>,
    mut rx: mpsc::UnboundedReceiver<Item>,
    outgoing: Outgoing,
    events: mpsc::Sender<NetEvent>,
) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut finish = false;
    while let Some(first) = rx.recv().await {
        // Batch whatever else is already queued into the same write.
        let mut written = 0;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Frame(frame) => {
                    encode(&frame, &mut out);
                    written += 1;
                }
                Item::Finish => finish = true,
            }
            if out.len() < 64 * 1024 && !finish {
                next = rx.try_recv().ok();
            }
        }
        if let Err(err) = socket.write_all(&out).await {
            // Say so at once: the reader may not notice a dead peer for a heartbeat interval,
            // and the app re-sends whatever was not acknowledged on the next connection.
            debug!("write failed: {err}");
            let why = format!("could not send to the server: {}", describe_io_error(&err));
            let _ = events.send(NetEvent::Closed(why)).await;
            return;
        }
        out.clear();
        let before = outgoing.backlog.fetch_sub(written, Ordering::Relaxed);
        if before >= SEND_BACKLOG && before - written < SEND_BACKLOG {
            outgoing.room.notify_one();
        }
        if before >= BULK_BACKLOG && before - written < BULK_BACKLOG {
            outgoing.bulk.notify_one();
        }
        if finish {
            let _ = socket.shutdown().await;
            return;
        }
    }
}

async fn read_frames(
    mut socket: ReadHalf<BoxStream>,
    mut buf: BytesMut,
    max_frame: usize,
    events: mpsc::Sender<NetEvent>,
) {
    let closed = loop {
        loop {
            match decode(&buf, max_frame) {
                Ok(Some((frame, used))) => {
                    let _ = buf.split_to(used);
                    if events.send(NetEvent::Frame(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => match err.skip_len() {
                    Some(skip) => {
                        let _ = buf.split_to(skip);
                        let _ = events.send(NetEvent::Skipped(err.to_string())).await;
                    }
                    None => {
                        let why = format!("the server sent a malformed frame ({err})");
                        let _ = events.send(NetEvent::Closed(why)).await;
                        return;
                    }
                },
            }
        }
        buf.reserve(8 * 1024);
        match socket.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => break "the server closed the connection".to_owned(),
            Ok(0) => break "the connection closed in the middle of a frame".to_owned(),
            Ok(_) => {}
            Err(err) => break describe_io_error(&err),
        }
    };
    let _ = events.send(NetEvent::Closed(closed)).await;
}

/// A connection error in plain words.
pub fn describe_io_error(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused (is the server running?)".into(),
        ErrorKind::ConnectionReset => "the connection was reset".into(),
        ErrorKind::BrokenPipe => "the connection was broken".into(),
        ErrorKind::TimedOut => "the connection timed out".into(),
        _ => err.to_string(),
    }
}
