//! One client connection, served by one task that both reads and writes its socket.
//!
//! One task rather than a reader and a writer keeps an idle connection cheap (one task, no
//! channels, no read buffer while nothing is arriving) and removes a hand-off per message. The
//! task never waits on anything but its own select: a run of messages the companion has no room
//! for is parked in `blocked` and reading pauses, while writing to this client goes on, so two
//! busy companions can never wait on each other.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use p2pchat_proto::{peek_header, ErrorCode, Frame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::held::Held;
use crate::hub::{Note, SessionId};
use crate::mailbox::{Link, Mailbox, Queued};
use crate::report::{log_end, log_pairing, End, Who};
use crate::Shared;

/// Bytes asked of the kernel per read. Large reads are what let one read hand on a long run of
/// messages at once.
const READ_SIZE: usize = 64 * 1024;
/// How long the last frames (a `Shutdown`, a fatal `Error`) may take to go out at the end.
const FINAL_FLUSH: Duration = Duration::from_secs(1);
/// Most buffers handed to one vectored write.
const MAX_IOV: usize = 64;

pub(crate) enum Phase {
    /// Nothing received yet: the first frame must be `Hello`.
    Hello,
    /// Handshake done, no nickname yet.
    Nick,
    /// Named; chatting with `companion`, or waiting when it is `None`.
    Joined { companion: Option<Link> },
}

pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) who: Who,
    pub(crate) shared: Arc<Shared>,
    pub(crate) mailbox: Link,
    pub(crate) phase: Phase,
    pub(crate) held: Held,
    /// A companion asked for with `ChatWith` before the nickname.
    pub(crate) wants: Option<String>,
    /// Runs for the companion that did not fit in its mailbox yet, oldest first.
    pub(crate) blocked: VecDeque<Bytes>,
    /// Bytes read but not yet acted on (a partial frame); empty and unallocated when idle.
    pub(crate) rbuf: BytesMut,
    /// Frames being written to the client; the first may be partly written (`out_offset`).
    out: VecDeque<Queued>,
    out_offset: usize,
    /// Bytes in `out` that are not companion data: this session's own replies and hub notes.
    /// Reading pauses while they pile up (a client that floods pings and never reads).
    out_reply_bytes: usize,
    notes: VecDeque<Note<Link>>,
    last_read: Instant,
    /// Last time writing made progress or had nothing to do.
    write_progress: Instant,
}

enum Step {
    Shutdown,
    Woken,
    Writable(std::io::Result<()>),
    Room,
    Readable(std::io::Result<()>),
    Deadline,
}

/// Serves one accepted connection until it ends, then tells the hub and logs why.
pub async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    number: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    // Chat frames are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let now = Instant::now();
    let mut session = Session {
        id: number,
        who: Who::new(number),
        mailbox: Mailbox::new(shared.config.outbox_bytes()),
        phase: Phase::Hello,
        held: Held::new(shared.config.max_held as usize),
        wants: None,
        blocked: VecDeque::new(),
        rbuf: BytesMut::new(),
        out: VecDeque::new(),
        out_offset: 0,
        out_reply_bytes: 0,
        notes: VecDeque::new(),
        last_read: now,
        write_progress: now,
        shared: shared.clone(),
    };
    debug!("client {number} at {addr}: session started");
    let end = session.run(&stream, &shutdown).await;
    if matches!(end, End::Shutdown) {
        shared.hub.close();
        session.reply(&Frame::Shutdown("stopped by its operator".into()));
    }
    let departure = shared.hub.leave(session.id, end.left_reason());
    log_end(&session.who, &end, &shared.config);
    if let Some((a, b)) = departure.and_then(|d| d.repaired) {
        log_pairing(&a, &b);
    }
    let unsent = session.held.count() + session.blocked.len();
    if unsent > 0 {
        info!(
            "📭 {unsent} message run(s) from {} were never delivered",
            session.who
        );
    }
    if !matches!(end, End::Reset(_) | End::WriterGone) {
        let _ = tokio::time::timeout(FINAL_FLUSH, session.flush(&mut stream)).await;
    }
    session.mailbox.close();
}

impl Session {
    async fn run(&mut self, stream: &TcpStream, shutdown: &CancellationToken) -> End {
        let mailbox = self.mailbox.clone();
        let login_deadline = Instant::now() + self.shared.config.login_timeout;
        let sleep = sleep_until(login_deadline);
        tokio::pin!(sleep);
        loop {
            if let Err(end) = self.absorb_mailbox() {
                return end;
            }
            // The timer is moved later lazily (when it fires), but earlier at once: joining
            // swaps the login deadline for the heartbeat, and a stalled write starts its clock.
            let deadline = self.next_deadline(login_deadline);
            if deadline < sleep.deadline() {
                sleep.as_mut().reset(deadline);
            }
            let writing = !self.out.is_empty();
            let reading = self.blocked.is_empty() && self.out_reply_bytes < self.shared.max_backlog;
            let waiting_room = match (&self.phase, self.blocked.is_empty()) {
                (Phase::Joined { companion: Some(c) }, false) => Some(c.clone()),
                _ => None,
            };
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Step::Shutdown,
                ready = stream.writable(), if writing => Step::Writable(ready),
                _ = room(&waiting_room), if waiting_room.is_some() => Step::Room,
                ready = stream.readable(), if reading => Step::Readable(ready),
                // The mailbox is emptied at the top of every turn anyway; this only wakes an
                // otherwise idle session, so it comes after the socket to never starve it.
                _ = mailbox.woken() => Step::Woken,
                _ = &mut sleep => Step::Deadline,
            };
            let result = match step {
                Step::Shutdown => return End::Shutdown,
                Step::Woken => Ok(()),
                Step::Writable(Ok(())) => self.write_some(stream),
                Step::Room => {
                    self.flush_blocked();
                    Ok(())
                }
                Step::Readable(Ok(())) => self.read_some(stream),
                Step::Writable(Err(err)) | Step::Readable(Err(err)) => Err(End::Reset(err)),
                Step::Deadline => match self.expired(login_deadline) {
                    Some(end) => return end,
                    None => {
                        sleep.as_mut().reset(self.next_deadline(login_deadline));
                        Ok(())
                    }
                },
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Takes what others queued for this session: frames to write, notes to act on (together,
    /// because a note's frame and the data queued around it must keep their order).
    pub(crate) fn absorb_mailbox(&mut self) -> Result<(), End> {
        let before = self.out.len();
        self.mailbox.take(&mut self.out, &mut self.notes);
        if before == 0 && !self.out.is_empty() {
            self.write_progress = Instant::now();
        }
        for (bytes, is_data) in self.out.range(before..) {
            if !is_data {
                self.out_reply_bytes += bytes.len();
            }
        }
        while let Some(note) = self.notes.pop_front() {
            self.on_note(note)?;
        }
        self.notes = VecDeque::new();
        Ok(())
    }

    /// Queues a frame of this session's own for the client (answers, errors, shutdown). Not
    /// counted against the companion's data limit; reading pauses instead while `out` is long.
    pub(crate) fn reply(&mut self, frame: &Frame) {
        let bytes = p2pchat_proto::encode_to_bytes(frame);
        if self.out.is_empty() {
            // The stall clock runs from when there is something to write.
            self.write_progress = Instant::now();
        }
        self.out_reply_bytes += bytes.len();
        self.out.push_back((bytes, false));
    }

    /// Writes as much of `out` as the socket takes now.
    fn write_some(&mut self, stream: &TcpStream) -> Result<(), End> {
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for (i, (bytes, _)) in self.out.iter().take(MAX_IOV).enumerate() {
                let skip = if i == 0 { self.out_offset } else { 0 };
                slices[i] = IoSlice::new(&bytes[skip..]);
                count += 1;
            }
            match stream.try_write_vectored(&slices[..count]) {
                Ok(0) => return Err(End::WriterGone),
                Ok(written) => self.advance_out(written),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => return Err(End::Reset(err)),
            }
        }
        Ok(())
    }

    fn advance_out(&mut self, mut written: usize) {
        self.write_progress = Instant::now();
        let mut counted = 0;
        while written > 0 {
            let Some((front, is_data)) = self.out.front() else {
                break;
            };
            let left = front.len() - self.out_offset;
            let step = left.min(written);
            if *is_data {
                counted += step;
            } else {
                self.out_reply_bytes -= step;
            }
            written -= step;
            if step == left {
                self.out.pop_front();
                self.out_offset = 0;
                if self.out.is_empty() {
                    // Nothing left to write: free the queue rather than keep it for an idle client.
                    self.out = VecDeque::new();
                }
            } else {
                self.out_offset += step;
            }
        }
        if counted > 0 {
            self.mailbox.written(counted);
        }
    }

    /// Reads once and acts on every complete frame.
    fn read_some(&mut self, stream: &TcpStream) -> Result<(), End> {
        let wanted = match peek_header(&self.rbuf, self.shared.max_frame) {
            Ok(Some(header)) => header.frame_len().saturating_sub(self.rbuf.len()),
            _ => 0,
        };
        self.rbuf.reserve(wanted.max(READ_SIZE));
        match stream.try_read_buf(&mut self.rbuf) {
            Ok(0) if self.rbuf.is_empty() => Err(End::Closed),
            Ok(0) => Err(End::MidFrame),
            Ok(_) => {
                self.last_read = Instant::now();
                self.on_readable()?;
                if self.rbuf.is_empty() {
                    // Give the buffer back while the client is quiet.
                    self.rbuf = BytesMut::new();
                }
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                // Readiness can be spurious (a fresh socket often reports it): don't keep a
                // read buffer for a connection that has nothing to say.
                if self.rbuf.is_empty() {
                    self.rbuf = BytesMut::new();
                }
                Ok(())
            }
            Err(err) => Err(End::Reset(err)),
        }
    }

    /// Which deadline passed, if any: login, silence, or a write that stopped moving.
    fn expired(&mut self, login_deadline: Instant) -> Option<End> {
        let now = Instant::now();
        let heartbeat = self.shared.config.heartbeat;
        if !self.out.is_empty() && self.write_progress + heartbeat <= now {
            return Some(End::WriterGone);
        }
        match self.phase {
            Phase::Joined { .. } => {
                // While the companion's mailbox is full this session is not reading, so the
                // client's silence is ours, not theirs.
                (self.blocked.is_empty() && self.last_read + heartbeat <= now).then(|| {
                    self.reply_fatal_timeout("no heartbeat from you within the heartbeat interval");
                    End::TimedOut
                })
            }
            _ => (login_deadline <= now).then(|| {
                self.reply_fatal_timeout("no nickname within the login timeout");
                End::LoginTimeout
            }),
        }
    }

    fn next_deadline(&self, login_deadline: Instant) -> Instant {
        let heartbeat = self.shared.config.heartbeat;
        let mut deadline = match self.phase {
            Phase::Joined { .. } if self.blocked.is_empty() => self.last_read + heartbeat,
            Phase::Joined { .. } => Instant::now() + heartbeat,
            _ => login_deadline,
        };
        if !self.out.is_empty() {
            deadline = deadline.min(self.write_progress + heartbeat);
        }
        deadline
    }

    fn reply_fatal_timeout(&mut self, why: &str) {
        self.reply(&Frame::Error {
            code: ErrorCode::Timeout,
            fatal: true,
            text: format!("timed out: {why}"),
        });
    }

    /// Writes what is left (at the end of the session), then closes the sending side.
    async fn flush(&mut self, stream: &mut TcpStream) {
        let _ = self.absorb_mailbox();
        while !self.out.is_empty() {
            if stream.writable().await.is_err() || self.write_some(stream).is_err() {
                return;
            }
        }
        let _ = stream.shutdown().await;
    }

    /// Hands `chunk` (complete message frames) to the companion, parks it if the companion has
    /// no room, or holds it while there is no companion.
    pub(crate) fn deliver(&mut self, chunk: Bytes) {
        if !matches!(self.phase, Phase::Joined { companion: Some(_) }) {
            return self.hold(chunk);
        }
        // Queued behind any parked runs, so order is kept whatever the companion's room.
        self.blocked.push_back(chunk);
        self.flush_blocked();
    }

    /// Pushes parked runs to the companion while it has room. A companion gone before its
    /// `Left` note reached us leaves them to the next one, as if they had arrived a moment later.
    fn flush_blocked(&mut self) {
        let Phase::Joined {
            companion: Some(companion),
        } = &self.phase
        else {
            return;
        };
        let companion = companion.clone();
        while let Some(chunk) = self.blocked.pop_front() {
            match companion.push_data(chunk) {
                Ok(()) => {}
                Err(crate::mailbox::Refused::Full(chunk)) => {
                    self.blocked.push_front(chunk);
                    return;
                }
                Err(crate::mailbox::Refused::Closed(chunk)) => {
                    self.blocked.push_front(chunk);
                    self.hold_blocked();
                    return;
                }
            }
        }
        // Reading resumes; the client's silence while paused was our doing.
        self.last_read = Instant::now();
    }

    /// Moves parked runs back to the held store (their companion went away).
    pub(crate) fn hold_blocked(&mut self) {
        let blocked = std::mem::take(&mut self.blocked);
        for chunk in blocked {
            self.hold(chunk);
        }
        self.last_read = Instant::now();
    }

    fn hold(&mut self, chunk: Bytes) {
        let refused = self.held.push_run(chunk, self.shared.max_frame);
        if refused > 0 {
            let text = format!(
                "{refused} message(s) not kept: the {} byte allowance for messages waiting for a companion is used up",
                self.held.limit()
            );
            self.reply_error(ErrorCode::HeldFull, text);
        }
    }

    fn on_note(&mut self, note: Note<Link>) -> Result<(), End> {
        match note {
            Note::NickAccepted(nick) => {
                self.who.name(&nick);
                self.phase = Phase::Joined { companion: None };
            }
            Note::Waiting | Note::WaitingFor(_) => {
                // After `chat_with` the old companion's parked runs go to the next one, as when
                // a companion leaves.
                self.phase = Phase::Joined { companion: None };
                self.hold_blocked();
            }
            Note::CompanionLeft { .. } => {
                self.phase = Phase::Joined { companion: None };
                self.hold_blocked();
            }
            Note::Paired { companion, .. } => {
                self.blocked.extend(self.held.take());
                self.phase = Phase::Joined {
                    companion: Some(companion),
                };
                self.flush_blocked();
            }
        }
        Ok(())
    }

    pub(crate) fn reply_error(&mut self, code: ErrorCode, text: String) {
        self.reply(&Frame::Error {
            code,
            fatal: false,
            text,
        });
    }
}

async fn room(link: &Option<Link>) {
    if let Some(link) = link {
        link.room().await;
    }
}
