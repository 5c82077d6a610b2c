//! One client connection, served by one task that both reads and writes its socket.
//!
//! One task rather than a reader and a writer keeps an idle connection cheap (one task, no
//! channels, no read buffer while nothing is arriving) and removes a hand-off per message. The
//! task never waits on anything but its own select: a run of messages the companion (or the
//! store) has no room for waits in `outbound` (or `parked`) and reading pauses, while writing to
//! this client goes on, so two busy companions can never wait on each other. Where messages go
//! is `relay`'s business. How bytes move on the socket (plain or TLS, and the message rate
//! limit) is `wire`'s and `transport`'s.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use p2pchat_proto::{ErrorCode, Frame};
use tokio::net::TcpStream;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backlog::Backlog;
use crate::hub::{Note, SessionId};
use crate::limits::Throttle;
use crate::mailbox::{Link, Mailbox, Queued};
use crate::relay::{Job, Route};
use crate::report::{log_end, log_pairing, End, Who};
use crate::transport::Transport;
use crate::Shared;

/// How long the last frames (a `Shutdown`, a fatal `Error`) may take to go out at the end.
const FINAL_FLUSH: Duration = Duration::from_secs(1);
/// Store reads and loads one session may have in progress; reading from the client pauses at
/// this many (a client flooding `ChatWith` cannot queue work without limit).
const MAX_JOBS: usize = 8;

pub(crate) enum Phase {
    /// Nothing received yet: the first frame must be `Hello`.
    Hello,
    /// Handshake done, no nickname yet.
    Nick,
    /// Named; `Session::route` says where messages go.
    Joined,
}

pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) who: Who,
    pub(crate) shared: Arc<Shared>,
    pub(crate) mailbox: Link,
    pub(crate) phase: Phase,
    /// A companion asked for with `ChatWith` before the nickname.
    pub(crate) wants: Option<String>,
    /// A room asked for with `Join` before the nickname.
    pub(crate) room_wanted: Option<String>,
    /// The member's folded nickname, once it has one.
    pub(crate) me: Option<std::sync::Arc<str>>,
    /// Sent in `Welcome`; the login proof is a signature over it (all zero before `Hello`).
    pub(crate) challenge: p2pchat_proto::Challenge,
    /// The identity key the client logged in with (all zero before).
    pub(crate) key: p2pchat_proto::PublicKey,
    /// Where the client's messages go now.
    pub(crate) route: Route,
    /// Counts route changes; a job started for an older route is ignored when it finishes.
    pub(crate) generation: u64,
    /// What waits for something (the store, the companion, a replay): allocated only while
    /// anything does, so an idle connection does not carry its queues.
    pub(crate) backlog: Option<Box<Backlog>>,
    /// Bytes read but not yet acted on (a partial frame); empty and unallocated when idle.
    pub(crate) rbuf: BytesMut,
    /// Frames being written to the client; the first may be partly written (`out_offset`).
    pub(crate) out: VecDeque<Queued>,
    pub(crate) out_offset: usize,
    /// Bytes in `out` that are not companion data: this session's own replies and hub notes.
    /// Reading pauses while they pile up (a client that floods pings and never reads).
    pub(crate) out_reply_bytes: usize,
    notes: VecDeque<Note<Link>>,
    pub(crate) last_read: Instant,
    /// Last time writing made progress or had nothing to do.
    pub(crate) write_progress: Instant,
    /// Plain TCP or TLS.
    pub(crate) transport: Transport,
    /// `Message` frames acted on since the last read was charged to `throttle`.
    pub(crate) messages_read: u32,
    /// The `max_rate` allowance; reading pauses while it is used up.
    pub(crate) throttle: Throttle,
}

enum Step {
    Shutdown,
    Woken,
    Writable(std::io::Result<()>),
    Room,
    StoreRoom,
    Job(Result<Job, JoinError>),
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
    let transport = match Transport::new(shared.config.tls.as_ref()) {
        Ok(transport) => transport,
        Err(err) => {
            warn!("⚠️ Client {number}: TLS could not start: {err}");
            return;
        }
    };
    let now = Instant::now();
    let mut session = Session {
        id: number,
        who: Who::new(number),
        mailbox: Mailbox::new(shared.config.outbox_bytes()),
        phase: Phase::Hello,
        wants: None,
        room_wanted: None,
        me: None,
        route: Route::Anyone { last: None },
        generation: 0,
        backlog: None,
        rbuf: BytesMut::new(),
        out: VecDeque::new(),
        out_offset: 0,
        out_reply_bytes: 0,
        notes: VecDeque::new(),
        last_read: now,
        write_progress: now,
        challenge: [0; 32],
        key: [0; 32],
        transport,
        messages_read: 0,
        throttle: Throttle::default(),
        shared: shared.clone(),
    };
    debug!("client {number} at {addr}: session started");
    let end = session.run(&stream, &shutdown).await;
    if matches!(end, End::Shutdown) {
        shared.hub.close();
        session.reply(&Frame::Shutdown("stopped by its operator".into()));
    }
    session.leave_route();
    let departure = shared.hub.leave(session.id, end.left_reason());
    log_end(&session.who, &end, &shared.config);
    if let Some((a, b)) = departure.and_then(|d| d.repaired) {
        log_pairing(&a, &b);
    }
    let parked = session.backlog.as_ref().map_or(0, |b| b.parked.len());
    let held = session.backlog.as_ref().map_or(0, |b| b.held.count());
    let unsent = held + parked;
    if unsent > 0 {
        info!(
            "📭 {unsent} message run(s) from {} were never delivered",
            session.who
        );
    }
    if let Some(jobs) = session.backlog.as_mut().and_then(|b| b.jobs.as_mut()) {
        jobs.abort_all();
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
            self.next_replay_page();
            let writing = self.writing();
            let busy = self
                .backlog
                .as_ref()
                .and_then(|b| b.jobs.as_ref())
                .is_some_and(|jobs| jobs.len() >= MAX_JOBS);
            let reading = !self.paused()
                && !busy
                && self.out_reply_bytes < self.shared.max_backlog
                && self.throttle.paused_until().is_none()
                && self.transport.wants_read();
            if self.backlog.as_ref().is_some_and(|b| b.is_idle()) {
                // Give the queues back while the session has nothing waiting.
                self.backlog = None;
            }
            let backlog = self.backlog.as_deref();
            let companion_room = backlog.and_then(|b| match b.outbound.is_empty() {
                false => b.outbound_to.clone(),
                true => b.chunk_waits.front().map(|(link, _)| link.clone()),
            });
            let store_room = backlog.is_some_and(|b| !b.parked.is_empty()) && self.route.live();
            let store = match store_room {
                true => self.shared.conversations.store().cloned(),
                false => None,
            };
            let waiting = companion_room.is_some() || store.is_some();
            let has_jobs = backlog
                .and_then(|b| b.jobs.as_ref())
                .is_some_and(|jobs| !jobs.is_empty());
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Step::Shutdown,
                ready = stream.writable(), if writing => Step::Writable(ready),
                step = room(companion_room, store), if waiting => step,
                Some(done) = next_job(&mut self.backlog), if has_jobs => Step::Job(done),
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
                    self.flush_outbound();
                    self.flush_chunk_waits();
                    Ok(())
                }
                Step::StoreRoom => {
                    self.flush_parked();
                    Ok(())
                }
                Step::Job(Ok(job)) => {
                    if let Some(backlog) = self.backlog.as_mut() {
                        if backlog.jobs.as_ref().is_some_and(JoinSet::is_empty) {
                            // Give the set back while the session has nothing in progress.
                            backlog.jobs = None;
                        }
                    }
                    self.on_job(job)
                }
                Step::Job(Err(err)) => Err(End::Refused(format!("internal error: {err}"))),
                Step::Readable(Ok(())) => self.read_some(stream),
                Step::Writable(Err(err)) | Step::Readable(Err(err)) => Err(End::Reset(err)),
                Step::Deadline => match self.expired(login_deadline) {
                    Some(end) => return end,
                    None => {
                        if self.throttle.resume(Instant::now()) {
                            // The client's silence while throttled was our doing.
                            self.resumed();
                        }
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
        if let Some(deferred) = self.backlog.as_mut().and_then(|b| b.deferred.as_mut()) {
            // Missed messages are still going out: what arrives now goes after them.
            self.mailbox.take(deferred, &mut self.notes);
            return self.act_on_notes();
        }
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
        self.act_on_notes()
    }

    /// Moves frames held back during a replay to the client's queue, in order.
    pub(crate) fn release_deferred(&mut self) {
        let Some(deferred) = self.backlog.as_mut().and_then(|b| b.deferred.take()) else {
            return;
        };
        if self.out.is_empty() && !deferred.is_empty() {
            self.write_progress = Instant::now();
        }
        for (bytes, is_data) in deferred {
            if !is_data {
                self.out_reply_bytes += bytes.len();
            }
            self.out.push_back((bytes, is_data));
        }
    }

    fn act_on_notes(&mut self) -> Result<(), End> {
        while let Some(note) = self.notes.pop_front() {
            self.on_note(note)?;
        }
        self.notes = VecDeque::new();
        Ok(())
    }

    /// Queues a frame of this session's own for the client (answers, errors, shutdown). Not
    /// counted against the companion's data limit; reading pauses instead while `out` is long.
    pub(crate) fn reply(&mut self, frame: &Frame) {
        self.reply_bytes(p2pchat_proto::encode_to_bytes(frame));
    }

    /// `reply` for a frame already encoded.
    pub(crate) fn reply_bytes(&mut self, bytes: Bytes) {
        if self.out.is_empty() {
            // The stall clock runs from when there is something to write.
            self.write_progress = Instant::now();
        }
        self.out_reply_bytes += bytes.len();
        self.out.push_back((bytes, false));
    }

    /// Which deadline passed, if any: login, silence, or a write that stopped moving.
    fn expired(&mut self, login_deadline: Instant) -> Option<End> {
        let now = Instant::now();
        let heartbeat = self.shared.config.heartbeat;
        if self.writing() && self.write_progress + heartbeat <= now {
            return Some(End::WriterGone);
        }
        self.give_up_chunk_waits(now, heartbeat);
        match self.phase {
            Phase::Joined => {
                // While this session is not reading (the companion's mailbox or the store is
                // full, or the client is over its message rate), the client's silence is ours,
                // not theirs.
                let throttled = self.throttle.paused_until().is_some();
                (!self.paused() && !throttled && self.last_read + heartbeat <= now).then(|| {
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
            Phase::Joined if !self.paused() => self.last_read + heartbeat,
            Phase::Joined => Instant::now() + heartbeat,
            _ => login_deadline,
        };
        if self.writing() {
            deadline = deadline.min(self.write_progress + heartbeat);
        }
        if let Some(resume_at) = self.throttle.paused_until() {
            deadline = deadline.min(resume_at);
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

    /// Whether reading from the client is paused because its messages cannot move on yet.
    pub(crate) fn paused(&self) -> bool {
        self.backlog.as_ref().is_some_and(|b| {
            !b.parked.is_empty() || !b.outbound.is_empty() || !b.chunk_waits.is_empty()
        })
    }

    /// The backlog, allocated if the session had none.
    pub(crate) fn backlog(&mut self) -> &mut Backlog {
        self.backlog.get_or_insert_with(Default::default)
    }

    /// Whether missed messages are still going out (frames for the client wait behind them).
    pub(crate) fn replaying(&self) -> bool {
        self.backlog.as_ref().is_some_and(|b| !b.replays.is_empty())
    }

    /// Reading resumes; the client's silence while paused was our doing.
    pub(crate) fn resumed(&mut self) {
        self.last_read = Instant::now();
    }

    /// Keeps a run for a companion still to come, refusing (with an error to the client) what
    /// does not fit in the allowance.
    pub(crate) fn hold(&mut self, chunk: Bytes) {
        let limit = self.shared.config.max_held as usize;
        let max_frame = self.shared.max_frame;
        let refused = self.backlog().held.push_run(chunk, limit, max_frame);
        // One error per message: a client counts them against what it sent, newest first (what
        // is kept is always the oldest, see `Held`).
        for _ in 0..refused {
            let text = format!(
                "message not kept: the {limit} byte allowance for messages waiting for a companion is used up"
            );
            self.reply_error(ErrorCode::HeldFull, text);
        }
    }

    fn on_note(&mut self, note: Note<Link>) -> Result<(), End> {
        match note {
            Note::NickAccepted { nick, .. } => {
                self.who.name(&nick);
                self.me = Some(p2pchat_proto::fold_nick(&nick).into());
                self.phase = Phase::Joined;
            }
            Note::Replaced => return Err(End::Replaced),
            Note::TooSlow => {
                self.reply(&Frame::Error {
                    code: ErrorCode::Timeout,
                    fatal: true,
                    text:
                        "you read too slowly for your room, so the relay closed this connection; \
                           reconnect to get what you missed"
                            .into(),
                });
                return Err(End::Refused("too slow for the room".into()));
            }
            Note::RemovedFromRoom => self.removed_from_room(),
            Note::CompanionHere => self.release_held(),
            Note::Waiting => self.wait_for_anyone(),
            Note::WaitingFor(nick) | Note::Paired { nick, .. } => self.enter(nick),
            // The note that follows says where messages go next.
            Note::CompanionLeft { .. } => {}
        }
        Ok(())
    }

    /// Starts a job whose result comes back through `on_job`.
    pub(crate) fn spawn(&mut self, job: impl std::future::Future<Output = Job> + Send + 'static) {
        self.backlog()
            .jobs
            .get_or_insert_with(JoinSet::new)
            .spawn(job);
    }

    /// Logs a store failure and tells the client.
    pub(crate) fn store_failed(&mut self, what: &str, err: &p2pchat_store::StoreError) {
        warn!("⚠️ {} {what}: {err}", self.who);
        self.reply_error(ErrorCode::StoreFailed, format!("{what}: {err}"));
    }

    pub(crate) fn reply_error(&mut self, code: ErrorCode, text: String) {
        self.reply(&Frame::Error {
            code,
            fatal: false,
            text,
        });
    }
}

/// Waits for room where the session's runs wait: in the companion's mailbox first (reading is
/// paused for it), else in the store. One future for both keeps an idle session small: a
/// select holds every branch's future, used or not.
async fn room(
    companion: Option<Link>,
    store: Option<std::sync::Arc<p2pchat_store::Store>>,
) -> Step {
    match (companion, store) {
        (Some(companion), _) => {
            companion.room().await;
            Step::Room
        }
        (None, Some(store)) => {
            store.room().await;
            Step::StoreRoom
        }
        (None, None) => std::future::pending().await,
    }
}

async fn next_job(backlog: &mut Option<Box<Backlog>>) -> Option<Result<Job, JoinError>> {
    backlog.as_mut()?.jobs.as_mut()?.join_next().await
}
