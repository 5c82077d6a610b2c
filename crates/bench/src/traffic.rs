//! The task plumbing scenarios share: senders that write big pre-encoded batches (of frames
//! holding one message each, or envelopes of several in end-to-end mode), receivers that
//! verify every message, Redis reply counters, the p2pchat keepalive, and supervision that
//! fails a scenario on the first error anywhere.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use p2pchat_proto::{encode_to_vec, Frame};
use tokio::task::JoinSet;

use crate::args::Target;
use crate::conn::{Event, Reader, Writer};
use crate::e2e::{Codec, Verifier};
use crate::ledger::Latencies;
use crate::report::Progress;
use crate::targets::{Conversation, Ctx};

/// Bytes of messages written per write call.
pub const BATCH: usize = 64 * 1024;

/// What a finished main task reports.
pub enum Outcome {
    /// Nothing to report.
    Done,
    /// The last expected message arrived at this instant.
    Received(Instant),
    /// Round-trip times, in nanoseconds.
    Rtts(Vec<u64>),
    /// A fanout receiver got every message, the last at `at`; `waits` holds, for the messages
    /// it was the last member to receive, the time from sending to that receipt.
    LastReceipts { at: Instant, waits: Latencies },
    /// Every message of a sender was acknowledged, the last at `last`; how long each waited,
    /// and how many frames carried them.
    Acked {
        last: Instant,
        latencies: Latencies,
        frames: u64,
    },
}

/// Tasks of a scenario: `main` ones must all finish; `background` ones (drains, keepalive,
/// samplers) run until the scenario ends, and one ending early fails it. Dropping this aborts
/// every task (and so closes every connection they hold).
#[derive(Default)]
pub struct Tasks {
    pub main: JoinSet<Result<Outcome>>,
    pub background: JoinSet<Result<()>>,
}

impl Tasks {
    /// Waits for every main task; returns the first error of any task.
    pub async fn wait(&mut self) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::new();
        loop {
            tokio::select! {
                joined = self.main.join_next() => match joined {
                    None => return Ok(outcomes),
                    Some(joined) => outcomes.push(joined.context("a bench task panicked")??),
                },
                Some(joined) = self.background.join_next() => {
                    joined.context("a bench task panicked")??;
                    bail!("a background connection task ended early");
                }
            }
        }
    }
}

/// Pings every connection in `writers` every third of the relay's heartbeat (p2pchat only), so
/// that receivers that never send are not dropped as silent. A writer busy sending is skipped.
pub fn keepalive(ctx: &Arc<Ctx>, tasks: &mut Tasks, writers: Arc<Mutex<Vec<Writer>>>) {
    if ctx.target != Target::P2pchat {
        return;
    }
    let ctx = ctx.clone();
    let ping = encode_to_vec(&Frame::Ping(0));
    tasks.background.spawn(async move {
        let mut last = Instant::now();
        loop {
            // Checked often: the heartbeat is only known once the first client is logged in.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let beat = ctx.heartbeat_ms().unwrap_or(30_000);
            if last.elapsed() < Duration::from_millis(u64::from(beat) / 3) {
                continue;
            }
            last = Instant::now();
            let snapshot = writers.lock().map(|w| w.clone()).unwrap_or_default();
            for writer in snapshot {
                // A stalled write must not hold up everyone else's ping.
                let _ = tokio::time::timeout(Duration::from_secs(1), writer.try_send(&ping)).await;
            }
        }
    });
}

/// Writes messages `range` of conversation `conv` in batches of about `BATCH` bytes (whole
/// envelopes of `codec.per_frame()` messages in end-to-end mode).
async fn send(writer: Writer, codec: Codec, conv: u32, range: Range<u64>) -> Result<Outcome> {
    let mut buf = Vec::with_capacity(2 * BATCH);
    let step = codec.per_frame();
    let mut index = range.start;
    while index < range.end {
        let end = range.end.min(index + step);
        codec.encode(&mut buf, conv, index..end)?;
        index = end;
        if buf.len() >= BATCH {
            writer.send(&buf).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        writer.send(&buf).await?;
    }
    Ok(Outcome::Done)
}

/// Receives and verifies `total` messages of conversation `conv`, with `codec` (opening the
/// envelopes in end-to-end mode).
pub async fn receive(
    mut reader: Reader,
    codec: Codec,
    conv: u32,
    total: u64,
    progress: Arc<Progress>,
) -> Result<Outcome> {
    let mut verifier: Verifier = codec.verifier(conv, total);
    const STEP: u64 = 1024;
    let mut counted = 0;
    if total > 0 {
        reader
            .next(|event| match event {
                Event::Message { id, body } => {
                    verifier.check(&id, body)?;
                    let received = verifier.received();
                    if received - counted >= STEP {
                        progress.add(received - counted);
                        counted = received;
                    }
                    Ok(verifier.is_done().then_some(()))
                }
                other => bail!("unexpected {other:?} while receiving messages"),
            })
            .await
            .with_context(|| {
                format!(
                    "conversation {conv}: {} of {total} messages received",
                    verifier.received()
                )
            })?;
    }
    progress.add(total - counted);
    Ok(Outcome::Received(Instant::now()))
}

/// Counts Redis `PUBLISH` replies until `total`; each must report at least one receiver.
pub async fn count_acks(mut reader: Reader, total: u64) -> Result<Outcome> {
    let mut seen = 0;
    if total > 0 {
        reader
            .next(|event| match event {
                Event::Ack(n) if n >= 1 => {
                    seen += 1;
                    Ok((seen == total).then_some(()))
                }
                Event::Ack(_) => bail!(
                    "PUBLISH reached no subscriber: Redis dropped the subscriber (for falling \
                     behind its client-output-buffer-limit for pubsub, 32 MB by default?)"
                ),
                other => bail!("unexpected {other:?} in reply to PUBLISH"),
            })
            .await
            .context("reading PUBLISH replies")?;
    }
    Ok(Outcome::Done)
}

/// Starts one-way traffic: `b` receives what `a` sends; the rest of each side is drained.
pub fn one_way(
    conv: Conversation,
    count: u64,
    tasks: &mut Tasks,
    progress: &Arc<Progress>,
) -> Result<()> {
    let Conversation { id, a, b } = conv;
    if let Some(inbox) = a.inbox {
        tasks
            .background
            .spawn(inbox.drain("the sender's connection"));
    }
    if let Some(acks) = a.acks {
        tasks.main.spawn(count_acks(acks, count));
    }
    let inbox = b.inbox.context("the receiving side has no inbox")?;
    let writer = a.writer.context("the sending side has no writer")?;
    tasks
        .main
        .spawn(receive(inbox, b.codec, id, count, progress.clone()));
    tasks.main.spawn(send(writer, a.codec, id, 0..count));
    Ok(())
}

/// The writers of both sides, for the keepalive.
pub fn writers_of(convs: &[Conversation]) -> Arc<Mutex<Vec<Writer>>> {
    let writers = convs
        .iter()
        .flat_map(|c| [c.a.writer.clone(), c.b.writer.clone()])
        .flatten()
        .collect();
    Arc::new(Mutex::new(writers))
}

/// A handle on every connection of `convs`: while it is held, no connection is closed, even
/// when the task using it is done (a finished receiver closing its connection would make the
/// relay close its companion's, which another task may still be reading).
pub fn hold_open(convs: &[Conversation]) -> Vec<Writer> {
    convs
        .iter()
        .flat_map(|c| [&c.a, &c.b])
        .flat_map(|side| {
            let readers = [&side.inbox, &side.acks];
            let from_readers = readers.into_iter().flatten().map(|r| r.writer());
            side.writer.clone().into_iter().chain(from_readers)
        })
        .collect()
}

/// The instant the last receiver finished.
pub fn last_received(outcomes: Vec<Outcome>) -> Option<Instant> {
    outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Received(at) => Some(at),
            _ => None,
        })
        .max()
}
