//! The fanout scenario: one sender and a room of R receivers — a p2pchat room, R subscribers of
//! one Redis channel, or R subscriptions to one NATS subject — for each R of `--members`.
//! Measures delivered messages/s (messages × R over the time from the first send to the last
//! receipt) and, per message, the time from sending to the LAST member's receipt.
//!
//! The sender stamps every body with the message's index and send time, and keeps at most
//! `--window` messages that some member has not received yet (pipelined: it never waits
//! for one message to reach everyone before sending the next; see `receipts`). Every receiver
//! checks that it gets every message exactly once, in order, byte for byte.
//!
//! p2pchat in end-to-end mode: bodies are random bytes of the size of the sealed room envelope
//! of one `--size` line (`p2pchat_secure::room::sealed_len`), after the stamp; the relay never
//! looks inside, and the receivers do not open them (a real client opens and verifies one per
//! message). In plaintext (and for Redis and NATS) bodies are `--size` bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use p2pchat_proto::HEADER_LEN;

use crate::args::{BenchArgs, Target};
use crate::conn::{Event, Reader, Writer};
use crate::ledger::Latencies;
use crate::receipts::{Body, Receipts};
use crate::report::{Meter, Progress, Report};
use crate::room::{p2p_room, pubsub_room, Room};
use crate::sys;
use crate::targets::Ctx;
use crate::traffic::{keepalive, Outcome, Tasks, BATCH};
use crate::wire::{Encoder, Proto};

/// Fewest messages a room size sends, however large the room: enough for a p99.
const MIN_MESSAGES: u64 = 100;

/// Numbers the rooms of a process, so no two runs share a room or a nickname.
static ROUND: AtomicUsize = AtomicUsize::new(0);

/// What one room size's run sends.
struct Plan {
    members: usize,
    messages: u64,
    window: u64,
    body: Body,
}

/// Runs the scenario with a room of `members` receivers.
pub async fn fanout(
    ctx: Arc<Ctx>,
    args: &BenchArgs,
    members: usize,
    progress: Arc<Progress>,
) -> Result<Report> {
    let pid = args.server_pid;
    let limit = open_files_for(members, pid)?;
    let plan = Plan {
        members,
        messages: (args.deliveries / members as u64).max(MIN_MESSAGES),
        window: args.window,
        body: make_body(&ctx)?,
    };
    let round = ROUND.fetch_add(1, Ordering::Relaxed);
    progress.phase(
        format!("waiting for {members} members and the sender to join"),
        members as u64 + 1,
    );
    let connecting = Instant::now();
    let room = match ctx.target {
        Target::P2pchat => p2p_room(&ctx, members, round, plan.body.size(), &progress).await?,
        Target::Redis | Target::Nats => pubsub_room(&ctx, members, round, &progress).await?,
        other => bail!(
            "the fanout scenario does not support --target {}",
            other.name()
        ),
    };
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let rss_joined = pid.and_then(sys::rss_kb);
    // Held until the end: a receiver that is done must not close its connection early.
    let writers = room.writers.clone();
    let mut tasks = Tasks::default();
    keepalive(&ctx, &mut tasks, Arc::new(Mutex::new(writers.clone())));
    let deliveries = plan.messages * members as u64;
    progress.phase(format!("waiting for {deliveries} deliveries"), deliveries);
    let meter = Meter::start(pid);
    let epoch = start(&ctx, room, &plan, &mut tasks, &progress);
    let outcomes = tasks.wait().await?;
    let cpu = meter.stop();
    drop(writers);
    let mut report = summarize(&ctx, &plan, epoch, outcomes)?;
    report
        .real("connect_seconds", "seconds to join all", connect_seconds, 3)
        .int("open_files_limit", "bench open-file limit", limit)
        .maybe("server_rss_kb", "server RSS joined KiB", rss_joined)
        .cpu(cpu);
    if ctx.security.e2e() {
        report.note(format!(
            "bodies are random bytes the size of a sealed room envelope of one {}-byte line \
             ({} bytes); the receivers do not open them (a real client opens and verifies one \
             per message)",
            ctx.size,
            plan.body.size()
        ));
    }
    Ok(report)
}

/// Raises this process's open-file limit for a room of `members` and checks the server's;
/// returns the limit in force.
fn open_files_for(members: usize, pid: Option<u32>) -> Result<u64> {
    let want = members as u64 * 2 + 1000;
    let limit = sys::raise_open_files(want, members as u64 + 100)?;
    if let Some(server_limit) = pid.and_then(sys::open_files_limit_of) {
        if server_limit < members as u64 + 20 {
            bail!(
                "the server (pid {}) may open only {server_limit} files, fewer than a room of \
                 {members} needs: start it under `ulimit -n {want}`",
                pid.unwrap_or_default(),
            );
        }
    }
    Ok(limit)
}

/// Starts the receivers, the sender and whatever reads the sender's replies; returns the
/// run's time zero.
fn start(
    ctx: &Ctx,
    room: Room,
    plan: &Plan,
    tasks: &mut Tasks,
    progress: &Arc<Progress>,
) -> Instant {
    let Room {
        sender,
        replies,
        receivers,
        encoder,
        ..
    } = room;
    let receipts = Arc::new(Receipts::new(plan.members as u32, plan.window));
    let epoch = Instant::now();
    let kind = match ctx.target {
        Target::P2pchat => Kind::Said,
        _ => Kind::Message,
    };
    for (k, reader) in receivers.into_iter().enumerate() {
        let receiver = Receiver {
            kind,
            body: plan.body.clone(),
            receipts: receipts.clone(),
            count: plan.messages,
            epoch,
        };
        let progress = progress.clone();
        tasks.main.spawn(async move {
            let received = receiver.run(reader, &progress).await;
            received.with_context(|| format!("member {k}"))
        });
    }
    if ctx.target == Target::Redis {
        let members = plan.members as i64;
        tasks
            .main
            .spawn(count_publishes(replies, plan.messages, members));
    } else {
        tasks
            .background
            .spawn(replies.drain("the sender's connection"));
    }
    let sending = Sender {
        writer: sender,
        encoder,
        body: plan.body.clone(),
        framed: ctx.proto() == Proto::Framed,
        receipts,
        count: plan.messages,
        epoch,
    };
    tasks.main.spawn(sending.run());
    epoch
}

/// The report of a finished run: rates from `epoch` to the last receipt, and the percentiles
/// of every message's wait for its last member.
fn summarize(ctx: &Ctx, plan: &Plan, epoch: Instant, outcomes: Vec<Outcome>) -> Result<Report> {
    let (last, mut waits) = gather(outcomes);
    let messages = plan.messages;
    if waits.count() != messages {
        bail!(
            "{} of {messages} messages reached every member",
            waits.count()
        );
    }
    waits.sort();
    let deliveries = messages * plan.members as u64;
    let seconds = (last.unwrap_or(epoch) - epoch).as_secs_f64().max(1e-9);
    let ms = |q: f64| waits.percentile(q) as f64 / 1e6;
    let mut report = Report::new("fanout", ctx);
    report
        .int("members", "members (receivers)", plan.members as u64)
        .int("messages", "messages sent", messages)
        .int("deliveries", "deliveries (messages × members)", deliveries)
        .int("body_size", "body bytes", plan.body.size() as u64)
        .int("window", "in flight at most (messages)", plan.window)
        .real("seconds", "seconds sending", seconds, 3)
        .real(
            "delivered_per_sec",
            "delivered msgs/s",
            deliveries as f64 / seconds,
            0,
        )
        .real("msgs_per_sec", "sent msgs/s", messages as f64 / seconds, 0)
        .real(
            "last_mean_ms",
            "last receipt mean ms",
            waits.mean() / 1e6,
            3,
        )
        .real("last_p50_ms", "last receipt p50 ms", ms(0.50), 3)
        .real("last_p90_ms", "last receipt p90 ms", ms(0.90), 3)
        .real("last_p99_ms", "last receipt p99 ms", ms(0.99), 3)
        .real("last_max_ms", "last receipt max ms", ms(1.0), 3);
    Ok(report)
}

/// The bodies of the run: random bytes of the sealed size in end-to-end mode, else `--size`.
fn make_body(ctx: &Ctx) -> Result<Body> {
    let size = if ctx.security.e2e() {
        p2pchat_secure::room::sealed_len(std::iter::once(ctx.size))
    } else {
        ctx.size
    };
    let mut filler = vec![0; size];
    getrandom::fill(&mut filler).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
    Ok(Body::new(filler))
}

/// The time of the last receipt and every message's wait, from the receivers' outcomes.
fn gather(outcomes: Vec<Outcome>) -> (Option<Instant>, Latencies) {
    let mut last = None;
    let mut all = Latencies::default();
    for outcome in outcomes {
        if let Outcome::LastReceipts { at, waits } = outcome {
            last = last.max(Some(at));
            all.merge(waits);
        }
    }
    (last, all)
}

/// The sending side: stamps and writes every message, within the window.
struct Sender {
    writer: Writer,
    encoder: Encoder,
    body: Body,
    /// p2pchat frames, whose id the sender fills in.
    framed: bool,
    receipts: Arc<Receipts>,
    count: u64,
    epoch: Instant,
}

impl Sender {
    /// Writes everything the window allows in one write (up to `BATCH` bytes); once the window
    /// is full, waits until an eighth of it (or a batch) is free again rather than writing
    /// one message per receipt.
    async fn run(self) -> Result<Outcome> {
        let frame = self.encoder_len();
        let most = (BATCH / frame).max(1) as u64;
        let refill = (self.receipts.window() / 8).clamp(1, most);
        let mut buf = Vec::with_capacity(BATCH + frame);
        let mut body = Vec::with_capacity(self.body.size());
        let mut sent = 0;
        while sent < self.count {
            let room = self.receipts.room(sent).min(most).min(self.count - sent);
            if room == 0 {
                let want = refill.min(self.count - sent);
                self.receipts.wait_for_room(sent, want).await;
                continue;
            }
            let now = self.epoch.elapsed().as_nanos() as u64;
            buf.clear();
            for index in sent..sent + room {
                body.clear();
                self.body.write(&mut body, index, now);
                let start = buf.len();
                self.encoder.raw(&mut buf, &body);
                if self.framed {
                    // The frame's id: the index, so every message has its own.
                    let id = start + HEADER_LEN + 16;
                    buf[id..id + 8].copy_from_slice(&index.to_be_bytes());
                }
            }
            self.writer.send(&buf).await?;
            sent += room;
        }
        Ok(Outcome::Done)
    }

    fn encoder_len(&self) -> usize {
        let mut one = Vec::new();
        self.encoder.raw(&mut one, &vec![0; self.body.size()]);
        one.len()
    }
}

/// What carries a message to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// p2pchat `Said` frames.
    Said,
    /// Redis and NATS messages.
    Message,
}

/// One member's side: checks every message and reports its receipt.
struct Receiver {
    kind: Kind,
    body: Body,
    receipts: Arc<Receipts>,
    count: u64,
    epoch: Instant,
}

impl Receiver {
    async fn run(self, mut reader: Reader, progress: &Progress) -> Result<Outcome> {
        const STEP: u64 = 1024;
        let (mut next, mut counted) = (0, 0);
        let mut waits = Latencies::default();
        if self.count > 0 {
            reader
                .next(|event| {
                    let body = match (self.kind, event) {
                        (Kind::Said, Event::Said { body }) => body,
                        (Kind::Message, Event::Message { body, .. }) => body,
                        // The room's news, pings answered, NATS INFO updates.
                        (_, Event::Frame(_) | Event::Pong | Event::Info) => return Ok(None),
                        (_, other) => bail!("unexpected {other:?} while receiving"),
                    };
                    let sent_ns = self.body.check(body, next)?;
                    if self.receipts.received(next) {
                        let now = self.epoch.elapsed().as_nanos() as u64;
                        waits.add(now.saturating_sub(sent_ns), 1);
                    }
                    next += 1;
                    if next - counted >= STEP {
                        progress.add(next - counted);
                        counted = next;
                    }
                    Ok((next == self.count).then_some(()))
                })
                .await
                .with_context(|| format!("{next} of {} messages received", self.count))?;
        }
        progress.add(next - counted);
        Ok(Outcome::LastReceipts {
            at: Instant::now(),
            waits,
        })
    }
}

/// Counts Redis `PUBLISH` replies until `total`; each must report every member.
async fn count_publishes(mut reader: Reader, total: u64, members: i64) -> Result<Outcome> {
    let mut seen = 0;
    reader
        .next(|event| match event {
            Event::Ack(n) if n == members => {
                seen += 1;
                Ok((seen == total).then_some(()))
            }
            Event::Ack(n) => bail!(
                "PUBLISH reached {n} subscribers, not {members}: Redis dropped some (for \
                 falling behind its client-output-buffer-limit for pubsub?)"
            ),
            other => bail!("unexpected {other:?} in reply to PUBLISH"),
        })
        .await
        .context("reading PUBLISH replies")?;
    Ok(Outcome::Done)
}
