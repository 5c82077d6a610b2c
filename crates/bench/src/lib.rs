//! `p2pchat bench`: a load generator for the p2pchat relay and the servers it is compared with
//! (a pure byte relay, Redis pub/sub, NATS, and a direct connection as the floor), and
//! `p2pchat bench-splice`, that pure byte relay.
//!
//! Against p2pchat the bench speaks as the client does by default: TLS to the relay and
//! end-to-end encrypted message bodies, batched; `--plaintext` for a relay started with
//! `--plaintext`.
//!
//! Modules: `args` (command line), `payload` (self-verifying message text), `wire` (pure
//! parsers and encoders), `e2e` (sealing, batching and checking messages in either mode),
//! `security` (TLS and per-client identities), `conn` (a connection's reader and writer), `p2p`
//! (relay login), `targets` (making conversations on each server), `traffic` (senders, receivers, supervision),
//! `scenarios`, `durable`, `connections` and `fanout` (the load; `room` joins a p2pchat room),
//! `ledger` (pure ack accounting and pacing), `receipts` (pure fanout bookkeeping),
//! `report` (tables and JSON), `sys` (CPU, memory, limits), `splice` (the baseline relay).

mod args;
mod conn;
mod connections;
mod durable;
mod e2e;
mod fanout;
mod ledger;
mod p2p;
mod payload;
mod receipts;
mod report;
mod room;
mod scenarios;
mod security;
mod splice;
mod sys;
mod targets;
mod traffic;
mod wire;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::net::TcpListener;

pub use args::{BenchArgs, Scenario, Security, Target};
pub use splice::{run_splice, SpliceArgs};

use report::{Progress, Report};
use security::RunSecurity;
use targets::Ctx;

/// Connections per source address when `--source-ips` is not given. The ephemeral port range
/// is about 28,000 ports, but connect() slows down well before it is full: 18,000 connections
/// from one address took 3.1 s against 1.4 s from three.
const PER_SOURCE_IP: usize = 10_000;

/// Runs the scenarios `args` asks for, printing a report after each; builds its own runtime.
pub fn run(args: BenchArgs) -> Result<()> {
    args.validate()?;
    let plan = args.plan()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_plan(&args, &plan))
}

async fn run_plan(args: &BenchArgs, plan: &[Scenario]) -> Result<()> {
    let server = match args.port {
        Some(port) if args.target != Target::Direct => Some(resolve(&args.host, port).await?),
        _ => None,
    };
    let security = RunSecurity::new(args.security(), &args.host, args.port.unwrap_or(0))?;
    let security = Arc::new(security);
    // The fanout scenario runs once per room size; every other scenario once.
    let runs = plan.iter().flat_map(|&scenario| match scenario {
        Scenario::Fanout => args.members.iter().map(|&r| (scenario, r)).collect(),
        _ => vec![(scenario, 0)],
    });
    for (i, (scenario, members)) in runs.enumerate() {
        if i > 0 {
            // Let the server finish closing the previous scenario's connections.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let ctx = Arc::new(make_ctx(args, scenario, server, &security).await?);
        let size = match scenario {
            Scenario::Fanout => format!(", {members} members"),
            _ => String::new(),
        };
        eprintln!(
            "bench: {}{size} against {} at {} ({})",
            scenario.name(),
            args.target.name(),
            ctx.addr,
            security.mode.name()
        );
        let report = run_one(ctx, args, scenario, members).await?;
        let mut stdout = std::io::stdout().lock();
        if args.json {
            writeln!(stdout, "{}", report.to_json())?;
            eprint!("{}", report.to_table());
        } else {
            writeln!(stdout, "{}", report.to_table())?;
        }
        stdout.flush()?;
    }
    Ok(())
}

/// Runs `scenario` (with a room of `members` for fanout) within `--timeout`.
async fn run_one(
    ctx: Arc<Ctx>,
    args: &BenchArgs,
    scenario: Scenario,
    members: usize,
) -> Result<Report> {
    let progress = Arc::new(Progress::default());
    let mut limit = Duration::from_secs(args.timeout);
    let work = {
        let (ctx, progress) = (ctx.clone(), progress.clone());
        async move {
            match scenario {
                Scenario::Throughput => scenarios::throughput(ctx, args, progress).await,
                Scenario::Latency => scenarios::latency(ctx, args, progress).await,
                Scenario::Pairs => scenarios::pairs(ctx, args, progress).await,
                Scenario::Durable => durable::durable(ctx, args, progress).await,
                Scenario::Connections => connections::connections(ctx, args, progress).await,
                Scenario::Fanout => fanout::fanout(ctx, args, members, progress).await,
                Scenario::All => bail!("'all' is expanded before running"),
            }
        }
    };
    if scenario == Scenario::Connections {
        limit += Duration::from_secs(args.idle);
    }
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result
            .with_context(|| format!("{} against {} failed", scenario.name(), ctx.target.name())),
        Err(_) => bail!(
            "{} against {} timed out after {}s while {}",
            scenario.name(),
            ctx.target.name(),
            limit.as_secs(),
            progress.describe()
        ),
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))
}

async fn make_ctx(
    args: &BenchArgs,
    scenario: Scenario,
    server: Option<SocketAddr>,
    security: &Arc<RunSecurity>,
) -> Result<Ctx> {
    let (addr, direct) = match server {
        Some(addr) => (addr, None),
        None => {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("listening for direct connections")?;
            (listener.local_addr()?, Some(listener))
        }
    };
    let sources = if scenario == Scenario::Connections {
        source_ips(args, addr)?
    } else {
        Vec::new()
    };
    Ok(Ctx {
        target: args.target,
        addr,
        size: args.size,
        run_id: security.run_id(),
        security: security.clone(),
        batch: args.batch,
        sources,
        concurrency: args.concurrency.max(1),
        direct,
        heartbeat_ms: AtomicU32::new(u32::MAX),
    })
}

/// 127.0.0.1..127.0.0.N for the connections scenario; empty when one address will do.
fn source_ips(args: &BenchArgs, server: SocketAddr) -> Result<Vec<IpAddr>> {
    let count = match args.source_ips {
        Some(n) => usize::from(n),
        None => args.connections.div_ceil(PER_SOURCE_IP).max(1),
    };
    if count <= 1 {
        return Ok(Vec::new());
    }
    if !server.ip().is_loopback() || !server.is_ipv4() {
        bail!("spreading over {count} source addresses needs an IPv4 loopback server address");
    }
    if count > 254 {
        bail!("at most 254 source addresses");
    }
    Ok((1..=count as u8)
        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .collect())
}
