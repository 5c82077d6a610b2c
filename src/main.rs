//! The `p2pchat` binary: parses the command line, sets up logging and signals, and hands over to
//! the server or client library. Nothing else lives here.

mod logging;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Terminal chat through a relay server.
///
/// Start a relay with `p2pchat server HOST PORT`, then run `p2pchat client HOST PORT` in two
/// terminals: the relay pairs clients in arrival order and forwards their messages.
#[derive(Parser)]
#[command(name = "p2pchat", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay server.
    #[command(after_help = "Examples:\n  \
        p2pchat server localhost 8888     listen on localhost, port 8888\n  \
        p2pchat server 0.0.0.0 0          all interfaces, any free port (logged)\n  \
        RUST_LOG=debug p2pchat server ::1 8888")]
    Server(ServerArgs),
    /// Connect to a relay and chat.
    #[command(
        after_help = "Type a line and press Enter to send it; /help lists commands (/who, \
        /chat NAME, /history [N]), /exit (or Ctrl+C, Ctrl+D) quits.\n\n\
        Receipts: ✓ means the server stored your messages (a line is printed while your \
        companion is away), ✓✓ that your companion received them. If the connection \
        drops, the client reconnects by itself (for --retry-for), takes its nickname back and \
        sends again whatever the server had not confirmed; keep typing meanwhile.\n\n\
        When standard input is not a terminal the client runs in scripting mode: no prompts or \
        colours, one line per event on stdout; the first input line is the nickname (unless \
        --nick), every further line a message, and end of input leaves once the server has \
        confirmed everything typed (waiting at most 2 seconds). Exit status: 0 when you leave, \
        1 when the server is unreachable, refuses you, or stays away longer than --retry-for.\n\n\
        Examples:\n  \
        p2pchat client localhost 8888\n  \
        p2pchat client --nick Nick1 --to Nick2 --history 50 localhost 8888\n  \
        printf 'Nick1\\nhello\\n/exit\\n' | p2pchat client 127.0.0.1 8888"
    )]
    Client(ClientArgs),
    /// Measure a running relay (or Redis, NATS, the byte-relay baseline) over real sockets.
    #[command(
        after_help = "Scenarios: throughput, latency, pairs, connections, all. \
        See docs/PERFORMANCE.md and bench/compare.sh.\n\n\
        Examples:\n  \
        p2pchat bench --port 8888 throughput\n  \
        p2pchat bench --port 8888 --server-pid $(pgrep -f 'p2pchat server') --json all"
    )]
    Bench(p2pchat_bench::BenchArgs),
    /// Run the baseline a relay is measured against: pairs connections in arrival order and
    /// copies bytes between them (tokio's copy_bidirectional), nothing else.
    BenchSplice(p2pchat_bench::SpliceArgs),
}

/// Logging switches shared by both subcommands.
#[derive(Args, Clone, Copy)]
struct Verbosity {
    /// More log detail (-v debug, -vv trace); the client logs to stderr only with -v.
    /// RUST_LOG overrides both flags.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log detail (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
}

#[derive(Args)]
struct ServerArgs {
    /// Address to listen on, e.g. localhost, 127.0.0.1, ::1 or 0.0.0.0.
    host: String,
    /// Port to listen on; 0 picks a free one (the log says which).
    port: u16,
    /// Longest chat message accepted, in bytes of UTF-8.
    #[arg(long, value_name = "BYTES", default_value_t = p2pchat_proto::DEFAULT_MAX_MESSAGE)]
    max_message: u32,
    /// Drop a connection that has sent nothing for this long (clients ping well within it).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Time a new connection has to pick a nickname.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    login_timeout: Duration,
    /// Bytes of messages held for a client still waiting for a companion.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    max_held: u32,
    /// Connections served at once; newcomers beyond it are told the server is full
    /// [default: the open-files limit less a reserve]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Where conversations are stored (created owner-only if missing)
    /// [default: the platform's data directory, e.g. ~/.local/share/p2pchat]
    #[arg(long, value_name = "DIR", conflicts_with = "no_history")]
    data_dir: Option<std::path::PathBuf>,
    /// Keep nothing on disk: messages are only relayed live (held in memory for a companion still
    /// to come, up to --max-held; gone if the relay stops).
    #[arg(long)]
    no_history: bool,
    /// Delete stored messages older than this, e.g. 30d or 12h [default: keep everything]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "no_history")]
    retention: Option<Duration>,
    /// Log format: `text` (the design's timestamped lines) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
    #[command(flatten)]
    verbosity: Verbosity,
}

#[derive(Args)]
struct ClientArgs {
    /// Relay host name or address.
    host: String,
    /// Relay port.
    port: u16,
    /// Nickname to use instead of being asked.
    #[arg(long, value_name = "NAME")]
    nick: Option<String>,
    /// Chat with this person in particular (waits until they are online and free) instead of
    /// whoever comes next.
    #[arg(long, value_name = "NAME")]
    to: Option<String>,
    /// Earlier messages to show when a conversation starts (0: none; /history shows more).
    #[arg(long, value_name = "N", default_value_t = 20)]
    history: u32,
    /// After losing the connection, keep trying to reconnect for this long (0: exit at once
    /// with status 1 instead).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    retry_for: Duration,
    /// Write the client's diagnostic log to this file (the chat view stays clean).
    #[arg(long, value_name = "FILE")]
    log_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    verbosity: Verbosity,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("❌ Could not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Server(args) => runtime.block_on(serve(args)).map(|()| 0),
        Command::Client(args) => runtime.block_on(chat(args)),
        // The bench tools build runtimes of their own.
        Command::Bench(args) => p2pchat_bench::run(args).map(|()| 0),
        Command::BenchSplice(args) => p2pchat_bench::run_splice(args).map(|()| 0),
    };
    let code = match code {
        Ok(code) => code,
        Err(err) => {
            eprintln!("❌ {err:#}");
            1
        }
    };
    // The client's input thread may be blocked reading the terminal; don't wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    logging::init_server(args.verbosity.level(), args.log_format);
    let (files, max_connections) = open_files_budget(args.max_connections);
    let config = p2pchat_server::Config {
        max_message: args.max_message,
        heartbeat: args.heartbeat,
        login_timeout: args.login_timeout,
        max_held: args.max_held,
        max_connections,
        retention: args.retention,
    };
    anyhow::ensure!(config.max_message > 0, "--max-message must be at least 1");
    anyhow::ensure!(
        config.heartbeat >= Duration::from_millis(100),
        "--heartbeat must be at least 100ms"
    );
    anyhow::ensure!(
        !config.login_timeout.is_zero(),
        "--login-timeout must be more than 0"
    );
    if let Some(retention) = config.retention {
        anyhow::ensure!(
            retention >= Duration::from_secs(1),
            "--retention must be at least 1s"
        );
    }
    let store = open_store(&args).await?;
    let display = p2pchat_client::host_port(&args.host, args.port);
    let listener = p2pchat_server::bind(&args.host, args.port)
        .await
        .with_context(|| format!("Could not start the chat server on {display}"))?;
    let bound = listener.local_addr()?;
    info!(
        "🚀 Chat server started on {}",
        p2pchat_client::host_port(&args.host, bound.port())
    );
    log_budget(files, max_connections);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    p2pchat_server::run(listener, config, store, shutdown).await;
    Ok(())
}

/// Opens the history store the options ask for (none with `--no-history`).
async fn open_store(args: &ServerArgs) -> anyhow::Result<Option<p2pchat_store::Store>> {
    if args.no_history {
        info!("🗄️ History is off (--no-history): messages are only relayed live");
        return Ok(None);
    }
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => dirs::data_dir().map(|dir| dir.join("p2pchat")).context(
            "Could not find a data directory for the history; pass --data-dir DIR or --no-history",
        )?,
    };
    let opening = dir.clone();
    let store = tokio::task::spawn_blocking(move || p2pchat_store::Store::open(&opening))
        .await?
        .with_context(|| {
            format!(
                "Could not open the history in {} (use --data-dir for another place, or --no-history)",
                dir.display()
            )
        })?;
    let kept = match args.retention {
        Some(retention) => format!(
            "messages older than {} are deleted",
            humantime::format_duration(retention)
        ),
        None => "kept until deleted".to_owned(),
    };
    info!("🗄️ History in {} ({kept})", store.path().display());
    Ok(Some(store))
}

/// File descriptors kept for the listener, logs and the runtime itself.
const RESERVED_FILES: u64 = 64;

/// The open-files limit (raised as far as allowed) and the connection limit: the one asked
/// for, or as many as the open-files limit allows.
fn open_files_budget(asked: Option<usize>) -> (u64, usize) {
    let files = match p2pchat_server::raise_open_files_limit() {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!("⚠️ Could not read the open-files limit: {err}");
            1024
        }
    };
    let room = usize::try_from(files.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX);
    (files, asked.unwrap_or(room))
}

fn log_budget(files: u64, max: usize) {
    info!("📂 Open-files limit {files}: serving up to {max} connections at once");
    let room = files.saturating_sub(RESERVED_FILES);
    if max as u64 > room {
        tracing::warn!(
            "⚠️ --max-connections {max} is above what the open-files limit allows ({room}); raise it with ulimit -n"
        );
    }
}

/// Cancels `token` on Ctrl+C or SIGTERM.
async fn cancel_on_signal(token: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    info!("🛑 Signal received: shutting down");
    token.cancel();
}

async fn chat(args: ClientArgs) -> anyhow::Result<i32> {
    logging::init_client(args.verbosity.level(), args.log_file.as_deref())?;
    let options = p2pchat_client::Options {
        host: args.host,
        port: args.port,
        nick: args.nick,
        to: args.to,
        history: args.history,
        retry_for: args.retry_for,
    };
    Ok(p2pchat_client::run(options).await)
}

impl Verbosity {
    /// The level the flags ask for, relative to the default of `info`.
    fn level(self) -> tracing::Level {
        use tracing::Level;
        match (self.verbose, self.quiet) {
            (0, 0) => Level::INFO,
            (1, _) => Level::DEBUG,
            (v, _) if v >= 2 => Level::TRACE,
            (_, 1) => Level::WARN,
            _ => Level::ERROR,
        }
    }
}
