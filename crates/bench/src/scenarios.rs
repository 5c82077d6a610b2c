//! The throughput, latency and pairs scenarios.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::args::BenchArgs;
use crate::conn::Event;
use crate::report::{Meter, Progress, Report};
use crate::sys;
use crate::targets::{build, Conversation, Ctx};
use crate::traffic::{
    count_acks, hold_open, keepalive, last_received, one_way, writers_of, Outcome, Tasks,
};

/// One conversation, `--messages` one way, as fast as possible.
pub async fn throughput(
    ctx: Arc<Ctx>,
    args: &BenchArgs,
    progress: Arc<Progress>,
) -> Result<Report> {
    let (n, size) = (args.messages, ctx.size);
    progress.phase("waiting for the conversation to connect", 2);
    let convs = build(&ctx, 't', 1, false, &progress).await?;
    let frames = frames_of(&convs, n);
    let _open = hold_open(&convs);
    let mut tasks = Tasks::default();
    keepalive(&ctx, &mut tasks, writers_of(&convs));
    progress.phase(format!("waiting for {n} messages to arrive"), n);
    let meter = Meter::start(args.server_pid);
    let start = Instant::now();
    for conv in convs {
        one_way(conv, n, &mut tasks, &progress)?;
    }
    let end = last_received(tasks.wait().await?).unwrap_or(start);
    let cpu = meter.stop();
    let seconds = (end - start).as_secs_f64().max(1e-9);
    let mut report = Report::new("throughput", &ctx);
    report
        .int("messages", "messages", n)
        .frames(frames, seconds)
        .int("size", "payload bytes", size as u64)
        .real("seconds", "seconds", seconds, 3)
        .real("msgs_per_sec", "messages/s", n as f64 / seconds, 0)
        .real(
            "mb_per_sec",
            "MB/s (payload)",
            (n * size as u64) as f64 / seconds / 1e6,
            2,
        )
        .cpu(cpu);
    Ok(report)
}

/// One conversation, ping-pong: the first side sends, the second echoes, `--trips` times.
pub async fn latency(ctx: Arc<Ctx>, args: &BenchArgs, progress: Arc<Progress>) -> Result<Report> {
    let (trips, size) = (args.trips, ctx.size);
    progress.phase("waiting for the conversation to connect", 2);
    let mut convs = build(&ctx, 'l', 1, true, &progress).await?;
    let _open = hold_open(&convs);
    let mut tasks = Tasks::default();
    keepalive(&ctx, &mut tasks, writers_of(&convs));
    let Conversation { id, a, b } = convs.pop().context("no conversation was made")?;
    for acks in [a.acks, b.acks].into_iter().flatten() {
        tasks.main.spawn(count_acks(acks, trips));
    }
    let (a_writer, mut a_inbox) = (a.writer.context("no writer")?, a.inbox.context("no inbox")?);
    let (b_writer, mut b_inbox) = (b.writer.context("no writer")?, b.inbox.context("no inbox")?);
    tasks.main.spawn(async move {
        let mut verifier = b.codec.verifier(id, trips);
        let mut out = Vec::with_capacity(size + 256);
        for _ in 0..trips {
            out.clear();
            let got = b_inbox
                .next(|event| match event {
                    Event::Message { id, body } => Ok(Some(verifier.check(&id, body)?)),
                    other => bail!("unexpected {other:?} while echoing"),
                })
                .await
                .context("echo side")?;
            // The message checked out, so sending the same index again echoes it exactly
            // (sealed anew to the other side in end-to-end mode).
            b.codec.encode(&mut out, id, got)?;
            b_writer.send(&out).await?;
        }
        Ok(Outcome::Done)
    });
    progress.phase(format!("waiting for {trips} round trips"), trips);
    let meter = Meter::start(args.server_pid);
    let task_progress = progress.clone();
    tasks.main.spawn(async move {
        let mut verifier = a.codec.verifier(id, trips);
        let mut rtts = Vec::with_capacity(trips as usize);
        let mut out = Vec::with_capacity(size + 256);
        for index in 0..trips {
            out.clear();
            a.codec.encode(&mut out, id, index..index + 1)?;
            let sent = Instant::now();
            a_writer.send(&out).await?;
            a_inbox
                .next(|event| match event {
                    Event::Message { id, body } => Ok(Some(verifier.check(&id, body)?)),
                    other => bail!("unexpected {other:?} while waiting for the echo"),
                })
                .await
                .with_context(|| format!("waiting for the echo of message {index}"))?;
            rtts.push(sent.elapsed().as_nanos() as u64);
            task_progress.add(1);
        }
        Ok(Outcome::Rtts(rtts))
    });
    let outcomes = tasks.wait().await?;
    let cpu = meter.stop();
    let mut rtts = outcomes
        .into_iter()
        .find_map(|o| match o {
            Outcome::Rtts(rtts) => Some(rtts),
            _ => None,
        })
        .unwrap_or_default();
    rtts.sort_unstable();
    let pct = |q: f64| -> f64 {
        let rank = ((q * rtts.len() as f64).ceil() as usize).clamp(1, rtts.len().max(1));
        rtts.get(rank - 1).map_or(0.0, |&ns| ns as f64 / 1000.0)
    };
    let mean = rtts.iter().sum::<u64>() as f64 / rtts.len().max(1) as f64 / 1000.0;
    let mut report = Report::new("latency", &ctx);
    report
        .int("trips", "round trips", trips)
        .int("size", "payload bytes", size as u64)
        .real("mean_us", "mean µs", mean, 1)
        .real("p50_us", "p50 µs", pct(0.50), 1)
        .real("p90_us", "p90 µs", pct(0.90), 1)
        .real("p99_us", "p99 µs", pct(0.99), 1)
        .real("max_us", "max µs", pct(1.0), 1)
        .cpu(cpu);
    Ok(report)
}

/// `--pairs` conversations at once, `--per-pair` messages each, all one way.
pub async fn pairs(ctx: Arc<Ctx>, args: &BenchArgs, progress: Arc<Progress>) -> Result<Report> {
    let (pairs, per_pair, size) = (args.pairs, args.per_pair, ctx.size);
    progress.phase(
        format!("waiting for {pairs} conversations to connect"),
        2 * pairs as u64,
    );
    let connecting = Instant::now();
    let convs = build(&ctx, 'p', pairs, false, &progress).await?;
    let frames = frames_of(&convs, per_pair);
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let pid = args.server_pid;
    let rss_connected = pid.and_then(sys::rss_kb);
    let _open = hold_open(&convs);
    let mut tasks = Tasks::default();
    keepalive(&ctx, &mut tasks, writers_of(&convs));
    let peak = Arc::new(AtomicU64::new(rss_connected.unwrap_or(0)));
    if let Some(pid) = pid {
        let peak = peak.clone();
        tasks.background.spawn(async move {
            loop {
                peak.fetch_max(sys::rss_kb(pid).unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    let total = pairs as u64 * per_pair;
    progress.phase(format!("waiting for {total} messages to arrive"), total);
    let meter = Meter::start(pid);
    let start = Instant::now();
    for conv in convs {
        one_way(conv, per_pair, &mut tasks, &progress)?;
    }
    let end = last_received(tasks.wait().await?).unwrap_or(start);
    let cpu = meter.stop();
    if let Some(pid) = pid {
        peak.fetch_max(sys::rss_kb(pid).unwrap_or(0), Ordering::Relaxed);
    }
    let seconds = (end - start).as_secs_f64().max(1e-9);
    let mut report = Report::new("pairs", &ctx);
    report
        .int("pairs", "conversations", pairs as u64)
        .int("per_pair", "messages each (one way)", per_pair)
        .int("size", "payload bytes", size as u64)
        .real(
            "connect_seconds",
            "seconds to connect all",
            connect_seconds,
            3,
        )
        .real("seconds", "seconds sending", seconds, 3)
        .frames(frames, seconds)
        .real(
            "msgs_per_sec",
            "messages/s (all)",
            total as f64 / seconds,
            0,
        )
        .real(
            "mb_per_sec",
            "MB/s (payload)",
            (total * size as u64) as f64 / seconds / 1e6,
            2,
        )
        .maybe("server_rss_kb", "server RSS connected KiB", rss_connected)
        .maybe(
            "server_peak_rss_kb",
            "server RSS peak KiB",
            pid.map(|_| peak.load(Ordering::Relaxed)),
        )
        .cpu(cpu);
    Ok(report)
}

/// Frames all the senders of `convs` write for `each` messages apiece.
fn frames_of(convs: &[Conversation], each: u64) -> u64 {
    convs.iter().map(|c| c.a.codec.frames_for(each)).sum()
}
