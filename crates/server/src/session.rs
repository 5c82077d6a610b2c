//! One client connection: the handshake, the nickname, and the read loop that forwards chat.
//!
//! The read loop hands on whole runs of complete `Message` frames (one copy of a slice of the read
//! buffer, however many messages it holds) instead of one queue operation per message. Frames
//! other than messages are decoded and acted on one by one. A session never writes to its socket:
//! its outbox's writer task does (see `outbox`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use p2pchat_proto::{
    decode, peek_header, DecodeError, ErrorCode, Frame, FrameType, LeftReason, NickError,
    HEADER_LEN, PROTOCOL_VERSION,
};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::held::Held;
use crate::hub::{Joined, Note, SessionId};
use crate::link::{encode_frame, Link};
use crate::outbox::{self, Outbox};
use crate::report::{log_end, log_pairing, End, Who};
use crate::Shared;

/// Spare room kept in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

enum Phase {
    /// Nothing received yet: the first frame must be `Hello`.
    Hello,
    /// Handshake done, no nickname yet.
    Nick,
    /// Named; chatting with `companion`, or waiting when it is `None`.
    Joined { companion: Option<Outbox> },
}

struct Session {
    id: SessionId,
    who: Who,
    shared: Arc<Shared>,
    link: Link,
    notes: mpsc::UnboundedReceiver<Note<Link>>,
    phase: Phase,
    held: Held,
}

enum Event {
    Shutdown,
    WriterGone,
    Note(Note<Link>),
    Deadline,
    Read(std::io::Result<usize>),
}

/// Serves one accepted connection until it ends, then tells the hub and logs why.
pub async fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    number: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    // Chat frames are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (outbox, outbox_rx) = Outbox::new(shared.config.outbox_bytes());
    let dead = CancellationToken::new();
    let writer = tokio::spawn(outbox::drain(
        outbox_rx,
        writer,
        shared.config.heartbeat,
        dead.clone(),
    ));
    let (link, notes) = Link::new(outbox.clone());
    let mut session = Session {
        id: number,
        who: Who::new(number),
        shared: shared.clone(),
        link,
        notes,
        phase: Phase::Hello,
        held: Held::new(shared.config.max_held as usize),
    };
    debug!("client {number} at {addr}: session started");
    let end = session.run(reader, &shutdown, &dead).await;
    if matches!(end, End::Shutdown) {
        shared.hub.close();
        outbox.push_note(encode_frame(&Frame::Shutdown(
            "stopped by its operator".into(),
        )));
    }
    let departure = shared.hub.leave(session.id, end.left_reason());
    log_end(&session.who, &end, &shared.config);
    if let Some(departure) = departure {
        if let Some((a, b)) = departure.repaired {
            log_pairing(&a, &b);
        }
    }
    if session.held.count() > 0 {
        info!(
            "📭 {} held message(s) from {} were never delivered",
            session.held.count(),
            session.who
        );
    }
    outbox.close();
    drop(session);
    drop(outbox);
    let _ = writer.await;
}

impl Session {
    async fn run(
        &mut self,
        mut reader: OwnedReadHalf,
        shutdown: &CancellationToken,
        dead: &CancellationToken,
    ) -> End {
        let shared = self.shared.clone();
        let config = &shared.config;
        let login_deadline = Instant::now() + config.login_timeout;
        let mut last_read = Instant::now();
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            let deadline = match self.phase {
                Phase::Joined { .. } => last_read + config.heartbeat,
                _ => login_deadline,
            };
            reserve_for_next_frame(&mut buf, shared.max_frame);
            let event = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Event::Shutdown,
                _ = dead.cancelled() => Event::WriterGone,
                Some(note) = self.notes.recv() => Event::Note(note),
                _ = sleep_until(deadline) => Event::Deadline,
                read = reader.read_buf(&mut buf) => Event::Read(read),
            };
            let result = match event {
                Event::Shutdown => return End::Shutdown,
                Event::WriterGone => return End::WriterGone,
                Event::Note(note) => self.on_note(note).await,
                Event::Deadline => return self.timed_out(),
                Event::Read(Ok(0)) if buf.is_empty() => return End::Closed,
                Event::Read(Ok(0)) => return End::MidFrame,
                Event::Read(Ok(_)) => {
                    last_read = Instant::now();
                    self.on_readable(&mut buf).await
                }
                Event::Read(Err(err)) => return End::Reset(err),
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    fn timed_out(&mut self) -> End {
        let (code, end) = match self.phase {
            Phase::Joined { .. } => (
                "no heartbeat from you within the heartbeat interval",
                End::TimedOut,
            ),
            _ => ("no nickname within the login timeout", End::LoginTimeout),
        };
        self.link.outbox.push_note(encode_frame(&Frame::Error {
            code: ErrorCode::Timeout,
            fatal: true,
            text: format!("timed out: {code}"),
        }));
        end
    }

    /// Acts on every complete frame in `buf`, leaving a partial one for the next read.
    async fn on_readable(&mut self, buf: &mut BytesMut) -> Result<(), End> {
        let max_frame = self.shared.max_frame;
        let mut run = 0;
        loop {
            let header = match peek_header(&buf[run..], max_frame) {
                Ok(Some(header)) => header,
                Ok(None) => break,
                Err(err) => {
                    self.forward(buf, &mut run).await?;
                    return Err(self.refuse_stream(err));
                }
            };
            let frame_len = header.frame_len();
            if buf.len() - run < frame_len {
                break;
            }
            if header.type_byte == FrameType::Message as u8 && self.is_joined() {
                match self.check_message(&buf[run + HEADER_LEN..run + frame_len]) {
                    Ok(()) => run += frame_len,
                    Err((code, text)) => {
                        self.forward(buf, &mut run).await?;
                        buf.advance(frame_len);
                        warn!("⚠️ {} sent a bad message: {text}", self.who);
                        self.reply_error(code, text).await?;
                    }
                }
                continue;
            }
            self.forward(buf, &mut run).await?;
            match decode(buf, max_frame) {
                Ok(Some((frame, used))) => {
                    buf.advance(used);
                    self.on_frame(frame).await?;
                }
                Ok(None) => break,
                Err(err) => match err.skip_len() {
                    Some(skip) if !matches!(self.phase, Phase::Hello) => {
                        buf.advance(skip);
                        warn!("⚠️ {} sent a malformed frame: {err}", self.who);
                        self.reply_error(err.error_code(), err.to_string()).await?;
                    }
                    _ => return Err(self.refuse_stream(err)),
                },
            }
        }
        self.forward(buf, &mut run).await
    }

    fn is_joined(&self) -> bool {
        matches!(self.phase, Phase::Joined { .. })
    }

    /// A chat message's payload must be non-empty UTF-8 within the message limit.
    fn check_message(&self, payload: &[u8]) -> Result<(), (ErrorCode, String)> {
        let max = self.shared.config.max_message as usize;
        if payload.is_empty() {
            return Err((
                ErrorCode::EmptyMessage,
                "empty messages are not sent".into(),
            ));
        }
        if payload.len() > max {
            return Err((
                ErrorCode::FrameTooLarge,
                format!(
                    "message of {} bytes is over the limit of {max} bytes",
                    payload.len()
                ),
            ));
        }
        if std::str::from_utf8(payload).is_err() {
            return Err((
                ErrorCode::InvalidUtf8,
                "message text is not valid UTF-8; it was not delivered".into(),
            ));
        }
        Ok(())
    }

    /// Hands the first `run` bytes of `buf` (complete, checked `Message` frames) to the
    /// companion, or holds them while there is none.
    async fn forward(&mut self, buf: &mut BytesMut, run: &mut usize) -> Result<(), End> {
        if *run == 0 {
            return Ok(());
        }
        // Copying the run (one memcpy per read, not per message) lets the read buffer be reused
        // and makes the outbox's byte credit the true memory held for this companion.
        let chunk = Bytes::copy_from_slice(&buf[..*run]);
        buf.advance(*run);
        *run = 0;
        self.drain_notes().await?;
        match &self.phase {
            Phase::Joined {
                companion: Some(companion),
            } => {
                // The companion may have gone before its `Left` note reached us: keep the run
                // (a cheap reference-counted clone) so it is held for the next companion instead
                // of vanishing, exactly as if it had arrived a moment later.
                if companion.push(chunk.clone()).await.is_ok() {
                    return Ok(());
                }
                debug!("{}: companion gone while forwarding; holding", self.who);
                self.hold(chunk).await
            }
            _ => self.hold(chunk).await,
        }
    }

    async fn hold(&mut self, chunk: Bytes) -> Result<(), End> {
        let refused = self.held.push_run(chunk, self.shared.max_frame);
        if refused > 0 {
            let text = format!(
                "{refused} message(s) not kept: the {} byte allowance for messages waiting for a companion is used up",
                self.held.limit()
            );
            self.reply_error(ErrorCode::HeldFull, text).await?;
        }
        Ok(())
    }

    /// Acts on notes the hub sent this session since the last look, in order.
    async fn drain_notes(&mut self) -> Result<(), End> {
        while let Ok(note) = self.notes.try_recv() {
            self.on_note(note).await?;
        }
        Ok(())
    }

    async fn on_note(&mut self, note: Note<Link>) -> Result<(), End> {
        match note {
            Note::NickAccepted(nick) => {
                self.who.name(&nick);
                self.phase = Phase::Joined { companion: None };
            }
            Note::Waiting | Note::CompanionLeft { .. } => {
                self.phase = Phase::Joined { companion: None };
            }
            Note::Paired { companion, .. } => {
                for chunk in self.held.take() {
                    let _ = companion.outbox.push(chunk).await;
                }
                self.phase = Phase::Joined {
                    companion: Some(companion.outbox),
                };
            }
        }
        Ok(())
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<(), End> {
        match (&self.phase, frame) {
            (Phase::Hello, Frame::Hello { version, .. }) if version >= 1 => {
                let config = &self.shared.config;
                let welcome = Frame::Welcome {
                    version: version.min(PROTOCOL_VERSION),
                    features: 0,
                    max_message: config.max_message,
                    heartbeat_ms: u32::try_from(config.heartbeat.as_millis()).unwrap_or(u32::MAX),
                    server: format!("p2pchat {}", env!("CARGO_PKG_VERSION")),
                };
                self.phase = Phase::Nick;
                self.reply(&welcome).await
            }
            (Phase::Hello, Frame::Hello { version, .. }) => Err(self.refuse(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version} is not supported; this server speaks 1"),
            )),
            (Phase::Hello, _) => Err(self.refuse(
                ErrorCode::HelloRequired,
                "the first frame must be Hello (is this a p2pchat client?)".into(),
            )),
            (_, Frame::Ping(token)) => self.reply(&Frame::Pong(token)).await,
            (_, Frame::Pong(_)) => Ok(()),
            (_, Frame::Bye) => Err(End::Quit),
            (Phase::Nick, Frame::Nick(nick)) => self.claim_nick(nick).await,
            (Phase::Nick, Frame::Message(_)) => {
                self.reply_error(
                    ErrorCode::NotLoggedIn,
                    "choose a nickname before sending messages".into(),
                )
                .await
            }
            (_, Frame::Nick(_)) => {
                self.reply_error(
                    ErrorCode::UnexpectedFrame,
                    "you already have a nickname".into(),
                )
                .await
            }
            (_, other) => {
                let kind = other.frame_type();
                warn!("⚠️ {} sent an unexpected {kind:?} frame", self.who);
                self.reply_error(
                    ErrorCode::UnexpectedFrame,
                    format!("a client does not send {kind:?} frames"),
                )
                .await
            }
        }
    }

    async fn claim_nick(&mut self, nick: String) -> Result<(), End> {
        match self.shared.hub.join(self.id, &nick, self.link.clone()) {
            Ok(joined) => {
                info!("👤 {} nickname: {nick}", Who::new(self.id));
                match joined {
                    Joined::Paired { companion } => log_pairing(&companion, &nick),
                    Joined::Waiting => info!("⏳ {nick} is waiting for a companion"),
                }
                self.drain_notes().await
            }
            Err(err) => {
                info!("🚫 {} nickname {nick:?} rejected: {err}", self.who);
                let code = match err {
                    NickError::Taken(_) => ErrorCode::NickTaken,
                    _ => ErrorCode::NickInvalid,
                };
                self.reply_error(code, err.to_string()).await
            }
        }
    }

    async fn reply(&self, frame: &Frame) -> Result<(), End> {
        self.link
            .outbox
            .push(encode_frame(frame))
            .await
            .map_err(|_| End::WriterGone)
    }

    async fn reply_error(&self, code: ErrorCode, text: String) -> Result<(), End> {
        let fatal = false;
        self.reply(&Frame::Error { code, fatal, text }).await
    }

    /// Queues a fatal error for the client and returns how the session ends.
    fn refuse(&self, code: ErrorCode, text: String) -> End {
        warn!("⚠️ {} refused: {text}", self.who);
        self.link.outbox.push_note(encode_frame(&Frame::Error {
            code,
            fatal: true,
            text: text.clone(),
        }));
        End::Refused(text)
    }

    /// The byte stream cannot be trusted past this error.
    fn refuse_stream(&self, err: DecodeError) -> End {
        let code = match self.phase {
            Phase::Hello => ErrorCode::HelloRequired,
            _ => err.error_code(),
        };
        self.refuse(code, format!("malformed frame: {err}"))
    }
}

/// Makes room for the rest of a partly received frame (up to `max_frame`), or for a fresh read.
fn reserve_for_next_frame(buf: &mut BytesMut, max_frame: usize) {
    let wanted = match peek_header(buf, max_frame) {
        Ok(Some(header)) => header.frame_len().saturating_sub(buf.len()),
        _ => 0,
    };
    buf.reserve(wanted.max(READ_CHUNK / 2));
}

impl End {
    fn left_reason(&self) -> LeftReason {
        match self {
            End::Quit | End::Shutdown => LeftReason::Quit,
            End::TimedOut | End::LoginTimeout => LeftReason::TimedOut,
            End::Refused(_) => LeftReason::Dropped,
            End::Closed | End::MidFrame | End::Reset(_) | End::WriterGone => {
                LeftReason::ConnectionLost
            }
        }
    }
}
