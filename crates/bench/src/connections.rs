//! The connections scenario (p2pchat only): many idle logged-in clients, the relay's memory per
//! connection, and proof they still work (one message through each of a sample of pairs,
//! sealed end to end unless the run is in plaintext).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::args::BenchArgs;
use crate::conn::Event;
use crate::e2e::Codec;
use crate::p2p::{logins, match_pairs, Login};
use crate::report::{Meter, Progress, Report};
use crate::sys;
use crate::targets::Ctx;
use crate::traffic::{keepalive, Tasks};

/// How long one sample pair may take to pass its message.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before reading the relay's memory once everyone is in.
const SETTLE: Duration = Duration::from_millis(500);

/// Opens `--connections` clients, keeps them alive, measures the relay, checks a sample.
pub async fn connections(
    ctx: Arc<Ctx>,
    args: &BenchArgs,
    progress: Arc<Progress>,
) -> Result<Report> {
    let count = args.connections;
    if count < 2 || !count.is_multiple_of(2) {
        bail!("--connections must be an even number of at least 2 (clients are paired)");
    }
    let pid = args.server_pid;
    let want = count as u64 * 2 + 1000;
    let limit = sys::raise_open_files(want, count as u64 + 100)?;
    if let Some(server_limit) = pid.and_then(sys::open_files_limit_of) {
        if server_limit < count as u64 + 20 {
            bail!(
                "the server (pid {}) may open only {server_limit} files, fewer than {count} \
                 connections need: start it under `ulimit -n {want}` or raise it with \
                 `prlimit --pid {} --nofile={want}`",
                pid.unwrap_or_default(),
                pid.unwrap_or_default()
            );
        }
    }
    let rss_before = pid.and_then(sys::rss_kb);
    let mut tasks = Tasks::default();
    let writers = Arc::new(Mutex::new(Vec::with_capacity(count)));
    keepalive(&ctx, &mut tasks, writers.clone());
    progress.phase(
        format!("waiting for {count} clients to log in and be paired"),
        count as u64,
    );
    let meter = Meter::start(pid);
    let start = Instant::now();
    let on_each = |login: &Login| {
        if let Ok(mut writers) = writers.lock() {
            writers.push(login.writer.clone());
        }
    };
    let logins = tokio::select! {
        logins = logins(&ctx, 'c', count, &progress, on_each) => logins?,
        Some(joined) = tasks.background.join_next() => {
            joined.context("the keepalive task panicked")??;
            bail!("the keepalive task ended early");
        }
    };
    let connect_seconds = start.elapsed().as_secs_f64();
    let cpu = meter.stop();
    let mut pairs = match_pairs(logins)?;
    tokio::time::sleep(SETTLE).await;
    let rss_after = pid.and_then(sys::rss_kb);
    if args.idle > 0 {
        progress.phase(
            format!("keeping {count} clients idle for {}s", args.idle),
            0,
        );
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.idle)) => {}
            Some(joined) = tasks.background.join_next() => {
                joined.context("the keepalive task panicked")??;
                bail!("the keepalive task ended early");
            }
        }
    }
    let sample = args.sample.min(pairs.len());
    progress.phase(
        format!("passing a message through {sample} sample pairs"),
        sample as u64,
    );
    let (ok, first_error) = check_sample(&ctx, &mut pairs, sample, &progress).await;
    let rss_end = pid.and_then(sys::rss_kb);
    let per_connection = match (rss_before, rss_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) * 1024 / count as u64),
        _ => None,
    };
    let reused = matches!((rss_before, rss_after), (Some(before), Some(after)) if after <= before);
    let mut report = Report::new("connections", &ctx);
    report
        .int("connections", "connections", count as u64)
        .int(
            "source_ips",
            "source addresses",
            ctx.sources.len().max(1) as u64,
        )
        .int("open_files_limit", "bench open-file limit", limit)
        .real(
            "connect_seconds",
            "seconds to connect all",
            connect_seconds,
            3,
        )
        .real(
            "connects_per_sec",
            "logins/s",
            count as f64 / connect_seconds.max(1e-9),
            0,
        )
        .maybe("rss_before_kb", "server RSS before KiB", rss_before)
        .maybe("rss_after_kb", "server RSS after KiB", rss_after)
        .maybe("rss_end_kb", "server RSS after sample KiB", rss_end)
        .maybe(
            "bytes_per_connection",
            "server bytes/connection",
            per_connection,
        )
        .maybe(
            "bench_rss_kb",
            "bench RSS KiB",
            sys::rss_kb(std::process::id()),
        )
        .int("idle_seconds", "idle seconds", args.idle)
        .int("sample", "sample pairs", sample as u64)
        .int("sample_ok", "sample pairs OK", ok as u64)
        .cpu(cpu);
    if reused {
        report.note(
            "the server's RSS did not grow: it reused memory freed by earlier connections; \
             measure on a freshly started server",
        );
    }
    if let Some(err) = first_error {
        eprint!("{}", report.to_table());
        return Err(err.context(format!(
            "only {ok} of {sample} sample pairs passed a message"
        )));
    }
    drop(pairs);
    Ok(report)
}

/// Sends one message through `sample` pairs spread evenly over `pairs` (all sent first, then
/// each checked); returns how many arrived intact and the first failure.
async fn check_sample(
    ctx: &Ctx,
    pairs: &mut [(Login, Login)],
    sample: usize,
    progress: &Progress,
) -> (usize, Option<anyhow::Error>) {
    let chosen: Vec<usize> = (0..sample).map(|j| j * pairs.len() / sample).collect();
    let mut sent = Vec::with_capacity(sample);
    for (conv, &index) in chosen.iter().enumerate() {
        let (a, b) = &pairs[index];
        sent.push(send_one(ctx, a, b, conv as u32).await);
    }
    let mut ok = 0;
    let mut first_error = None;
    for ((conv, &index), sent) in chosen.iter().enumerate().zip(sent) {
        let (a, b) = &mut pairs[index];
        let result = match sent {
            Ok(codec) => receive_one(b, &codec, conv as u32).await,
            Err(err) => Err(err.context("sending failed")),
        };
        match result {
            Ok(()) => {
                ok += 1;
                progress.add(1);
            }
            Err(err) => {
                let what = format!("sample pair {conv} ({} to {})", a.nick, b.nick);
                first_error.get_or_insert(err.context(what));
            }
        }
    }
    (ok, first_error)
}

/// Sends message 0 of conversation `conv` from `a` to `b`; returns the codec `b` checks it with.
async fn send_one(ctx: &Ctx, a: &Login, b: &Login, conv: u32) -> Result<Codec> {
    let mut message = Vec::with_capacity(ctx.size + 256);
    ctx.codec_of(a)?.encode(&mut message, conv, 0..1)?;
    a.writer.send(&message).await?;
    ctx.codec_of(b)
}

async fn receive_one(b: &mut Login, codec: &Codec, conv: u32) -> Result<()> {
    let mut verifier = codec.verifier(conv, 1);
    let next = b.reader.next(|event| match event {
        Event::Message { id, body } => Ok(Some(verifier.check(&id, body)?)),
        other => bail!("unexpected {other:?} instead of the sample message"),
    });
    match tokio::time::timeout(SAMPLE_TIMEOUT, next).await {
        Ok(result) => result.map(drop),
        Err(_) => bail!("nothing arrived within {SAMPLE_TIMEOUT:?}"),
    }
}
