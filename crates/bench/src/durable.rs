//! The durable scenario: `--pairs` conversations, one sender each, every sender keeping at most
//! its share of `--in-flight` messages unacknowledged (and writing at its share of `--rate`,
//! if given). Measures acknowledged messages/s and how long each message waited for its ack.
//!
//! p2pchat (with history) acknowledges a run of frames once a commit made them durable, with
//! `Ack{count, first_seq}`; the receivers read and verify everything forwarded. In end-to-end
//! mode a frame is an envelope of up to `--batch` messages (a sender seals what its window and
//! pacer let it write at once), and a message counts as acknowledged when its frame is: rates
//! and latencies are per message. Redis Streams
//! answers each `XADD` with the new entry's id (durable only under `appendfsync always`, which
//! is the server's business, not the bench's); nobody reads the streams back.
//!
//! Each conversation's sender is one task that writes while its window and pacer allow and
//! otherwise waits for acknowledgements (or for the next message to fall due); the receivers
//! are tasks of their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use p2pchat_proto::Frame;

use crate::args::{BenchArgs, Target};
use crate::conn::{Event, Reader, Writer};
use crate::e2e::Codec;
use crate::ledger::{AckLedger, Latencies, Pacer};
use crate::report::{Meter, Progress, Report};
use crate::targets::{build, streams, Conversation, Ctx};
use crate::traffic::{hold_open, keepalive, receive, writers_of, Outcome, Tasks, BATCH};
use crate::wire::stream_id;

/// One sender's part of the run.
struct Job {
    conv: u32,
    /// Messages to write.
    count: u64,
    /// Most messages unacknowledged at once.
    window: u64,
    pacer: Pacer,
    size: usize,
    /// Time zero of the run.
    epoch: Instant,
}

impl Job {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// How a target acknowledges.
enum Acks {
    /// p2pchat: the `Conversation` frame (read at login) says where numbering starts, then
    /// `Ack{count, first_seq}` per run of frames.
    P2p { numbered: bool },
    /// Redis: one entry id per `XADD`, growing.
    Stream { last_id: Option<(u64, u64)> },
}

impl Acks {
    /// Applies one event read from the sender's connection at `at_ns`; returns how many
    /// messages it acknowledged.
    fn apply(
        &mut self,
        event: Event<'_>,
        ledger: &mut AckLedger,
        at_ns: u64,
        latencies: &mut Latencies,
    ) -> Result<u64> {
        match (self, event) {
            (Self::P2p { numbered }, Event::Frame(Frame::Conversation(info))) => {
                ledger.number_from(info.last_seq + 1);
                *numbered = true;
                Ok(0)
            }
            (Self::P2p { numbered }, Event::Frame(Frame::Ack { count, first_seq })) => {
                if !*numbered {
                    bail!("an Ack came before the Conversation frame");
                }
                Ok(ledger.ack(u64::from(count), Some(first_seq), at_ns, latencies)?)
            }
            (Self::P2p { .. }, Event::Message { .. }) => bail!("the sender received a message"),
            (Self::P2p { .. }, _) => Ok(0),
            (Self::Stream { last_id }, Event::Bulk(text)) => {
                let id = stream_id(text).with_context(|| {
                    format!(
                        "XADD answered {:?}, not an entry id",
                        String::from_utf8_lossy(text)
                    )
                })?;
                if last_id.is_some_and(|last| id <= last) {
                    bail!("XADD ids went backwards: {id:?} after {last_id:?}");
                }
                *last_id = Some(id);
                Ok(ledger.ack(1, None, at_ns, latencies)?)
            }
            (Self::Stream { .. }, other) => bail!("unexpected {other:?} in reply to XADD"),
        }
    }
}

/// How the load is split over the conversations.
struct Plan {
    pairs: usize,
    per_pair: u64,
    window: u64,
}

impl Plan {
    fn of(args: &BenchArgs) -> Self {
        let pairs = args.pairs.max(1);
        Self {
            pairs,
            per_pair: (args.messages / pairs as u64).max(1),
            window: (args.in_flight / pairs as u64).max(1),
        }
    }
}

/// Runs the durable scenario against p2pchat or Redis Streams.
pub async fn durable(ctx: Arc<Ctx>, args: &BenchArgs, progress: Arc<Progress>) -> Result<Report> {
    let plan = Plan::of(args);
    let pairs = plan.pairs;
    progress.phase(format!("waiting for {pairs} conversations to connect"), 0);
    let convs = match ctx.target {
        Target::P2pchat => build(&ctx, 'd', pairs, false, &progress).await?,
        Target::Redis => streams(&ctx, pairs, &progress).await?,
        other => bail!(
            "the durable scenario does not support --target {}",
            other.name()
        ),
    };
    let _open = hold_open(&convs);
    let mut tasks = Tasks::default();
    keepalive(&ctx, &mut tasks, writers_of(&convs));
    let total = plan.per_pair * pairs as u64;
    progress.phase(
        format!("waiting for {total} messages to be acknowledged (and received)"),
        total,
    );
    let meter = Meter::start(args.server_pid);
    let epoch = Instant::now();
    for (k, conv) in convs.into_iter().enumerate() {
        let job = Job {
            conv: conv.id,
            count: plan.per_pair,
            window: plan.window,
            pacer: Pacer::new(args.rate, pairs as u64, k as u64),
            size: ctx.size,
            epoch,
        };
        start_flow(ctx.target, conv, job, &mut tasks, &progress)?;
    }
    let outcomes = tasks.wait().await?;
    let cpu = meter.stop();
    let mut report = summarize(&ctx, &plan, args.rate, epoch, outcomes)?;
    report.cpu(cpu);
    Ok(report)
}

/// Starts conversation `conv`'s sender (and, for p2pchat, its receiver).
fn start_flow(
    target: Target,
    conv: Conversation,
    job: Job,
    tasks: &mut Tasks,
    progress: &Arc<Progress>,
) -> Result<()> {
    let Conversation { id, a, b } = conv;
    let writer = a.writer.context("the sending side has no writer")?;
    let mut ledger = AckLedger::default();
    let (replies, acks) = match target {
        Target::P2pchat => {
            let inbox = b.inbox.context("the receiving side has no inbox")?;
            // Progress counts acknowledgements; receiving is checked, not counted.
            let quiet = Arc::new(Progress::default());
            tasks
                .main
                .spawn(receive(inbox, b.codec, id, job.count, quiet));
            if let Some(seq) = a.last_seq {
                ledger.number_from(seq + 1);
            }
            let numbered = a.last_seq.is_some();
            (a.inbox, Acks::P2p { numbered })
        }
        _ => (a.acks, Acks::Stream { last_id: None }),
    };
    let replies = replies.context("the sending side reads no replies")?;
    let progress = progress.clone();
    let flow = Flow {
        writer,
        reader: replies,
        codec: a.codec,
        acks,
        ledger,
    };
    tasks.main.spawn(drive(flow, job, progress));
    Ok(())
}

/// The report of a finished run: rates from `epoch` to the last ack (and the last message
/// received), and the ack latency percentiles over every message.
fn summarize(
    ctx: &Ctx,
    plan: &Plan,
    rate: u64,
    epoch: Instant,
    outcomes: Vec<Outcome>,
) -> Result<Report> {
    let total = plan.per_pair * plan.pairs as u64;
    let mut waits = Latencies::default();
    let mut frames = 0;
    let (mut last_ack, mut last_received) = (epoch, None::<Instant>);
    for outcome in outcomes {
        match outcome {
            Outcome::Acked {
                last,
                latencies,
                frames: acked,
            } => {
                last_ack = last_ack.max(last);
                waits.merge(latencies);
                frames += acked;
            }
            Outcome::Received(at) => last_received = last_received.max(Some(at)),
            _ => {}
        }
    }
    if waits.count() != total {
        bail!("{} of {total} messages were acknowledged", waits.count());
    }
    waits.sort();
    let per_sec = |end: Instant| total as f64 / (end - epoch).as_secs_f64().max(1e-9);
    let us = |q: f64| waits.percentile(q) as f64 / 1000.0;
    let seconds = (last_ack - epoch).as_secs_f64();
    let mut report = Report::new("durable", ctx);
    report
        .int("pairs", "conversations", plan.pairs as u64)
        .int("messages", "messages (all)", total)
        .frames(frames, seconds)
        .int("size", "payload bytes", ctx.size as u64)
        .int("in_flight", "unacknowledged at most, each", plan.window)
        .int("rate", "rate asked, msgs/s (0: unlimited)", rate)
        .real("seconds", "seconds to the last ack", seconds, 3)
        .real(
            "msgs_per_sec",
            "acknowledged messages/s",
            per_sec(last_ack),
            0,
        );
    if let Some(at) = last_received {
        report.real("recv_per_sec", "received messages/s", per_sec(at), 0);
    }
    report
        .real("ack_mean_us", "ack mean µs", waits.mean() / 1000.0, 1)
        .real("ack_p50_us", "ack p50 µs", us(0.50), 1)
        .real("ack_p90_us", "ack p90 µs", us(0.90), 1)
        .real("ack_p99_us", "ack p99 µs", us(0.99), 1)
        .real("ack_max_us", "ack max µs", us(1.0), 1);
    Ok(report)
}

/// A sender's connection and what it keeps track of.
struct Flow {
    writer: Writer,
    reader: Reader,
    codec: Codec,
    acks: Acks,
    ledger: AckLedger,
}

/// Writes `job.count` messages, never more than `job.window` unacknowledged, none before the
/// pacer says it is due; everything due and allowed goes out in one write (up to `BATCH`
/// bytes; in end-to-end mode sealed `codec.per_frame()` to an envelope). Returns once every
/// message is acknowledged, each exactly once and in order.
async fn drive(flow: Flow, job: Job, progress: Arc<Progress>) -> Result<Outcome> {
    let Flow {
        writer,
        mut reader,
        codec,
        mut acks,
        mut ledger,
    } = flow;
    reader.keep_bookkeeping(true);
    let most = (BATCH / (job.size + 64)).max(1) as u64;
    let mut buf = Vec::with_capacity(2 * BATCH);
    let mut latencies = Latencies::default();
    let mut sent = 0;
    while ledger.acked() < job.count {
        let now = job.now_ns();
        let free = job.window - ledger.outstanding();
        let due = job.pacer.due(now).min(job.count);
        let batch = free.min(due.saturating_sub(sent)).min(most);
        if batch > 0 {
            buf.clear();
            codec.encode(&mut buf, job.conv, sent..sent + batch)?;
            ledger.written(batch, codec.per_frame(), now);
            writer.send(&buf).await?;
            sent += batch;
            continue;
        }
        // Wait for an acknowledgement, or for the next message to fall due if there is room.
        let read = reader.next(|event| {
            let count = acks.apply(event, &mut ledger, job.now_ns(), &mut latencies)?;
            progress.add(count);
            Ok((count > 0).then_some(()))
        });
        if job.pacer.is_limited() && sent < job.count && free > 0 {
            let due_at = job.epoch + Duration::from_nanos(job.pacer.due_at(sent));
            tokio::select! {
                read = read => read,
                () = tokio::time::sleep_until(due_at.into()) => Ok(()),
            }
        } else {
            read.await
        }
        .with_context(|| {
            format!(
                "conversation {}: {} of {} messages acknowledged",
                job.conv,
                ledger.acked(),
                job.count
            )
        })?;
    }
    Ok(Outcome::Acked {
        last: Instant::now(),
        latencies,
        frames: ledger.acked_frames(),
    })
}
