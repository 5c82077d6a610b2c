//! The `p2pchat` binary: parses the command line, sets up logging and signals, and hands over to
//! the server or client library. Nothing else lives here.

mod logging;
mod serve;

use std::process::ExitCode;
use std::time::Duration;

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
    Server(serve::ServerArgs),
    /// Connect to a relay and chat.
    #[command(
        after_help = "Type a line and press Enter to send it; /help lists commands (/who, \
        /chat NAME, /history [N], /verify, /release), /exit (or Ctrl+C, Ctrl+D) quits.\n\n\
        Receipts: ✓ means the server stored your messages (a line is printed while your \
        companion is away), ✓✓ that your companion received them. If the connection \
        drops, the client reconnects by itself (for --retry-for), takes its nickname back and \
        sends again whatever the server had not confirmed; keep typing meanwhile.\n\n\
        Security: the connection to the relay uses TLS (the relay's certificate is trusted on \
        first use and remembered in --known-hosts, or checked against --ca), and every message \
        is end-to-end encrypted to your companion's identity key, so the relay cannot read it. \
        Your own key lives in --identity and owns your nickname on each relay; /verify shows \
        the safety number to compare with your companion, /release gives a nickname up.\n\n\
        Rooms: --room NAME (or /join NAME) goes into a room of any number of people: everyone         sees every message in the same order, and whoever is away gets what was said when         back. The creator owns it: /invite, /kick, /ban NAME and /invite-only on|off.         /rooms lists rooms, /members who is in yours, /leave leaves it for good.\n\n\
        Files: /send PATH… offers files (a directory: the files in it) to your companion (who \
        must be online); they /accept (saved in --downloads) or /decline each one (or all), and \
        /cancel stops transfers. Files are \
        end-to-end encrypted like messages, go through the relay without being stored, and \
        are saved only once their SHA-256 matches, never over an existing file.\n\n\
        When standard input is not a terminal the client runs in scripting mode: no prompts or \
        colours, one line per event on stdout; the first input line is the nickname (unless \
        --nick), every further line a message, and end of input leaves once the server has \
        confirmed everything typed (waiting at most 2 seconds). Exit status: 0 when you leave, \
        1 when the server is unreachable, refuses you, or stays away longer than --retry-for.\n\n\
        Examples:\n  \
        p2pchat client localhost 8888\n  \
        p2pchat client --nick Nick1 --to Nick2 --history 50 localhost 8888\n  \
        p2pchat client --nick Nick1 --room lobby localhost 8888\n  \
        p2pchat client --ca relay-ca.pem chat.example.org 8888\n  \
        p2pchat client --show-identity\n  \
        p2pchat client --nick Nick1 --to Nick2 --send report.pdf localhost 8888 < /dev/null\n  \
        p2pchat client --nick Nick2 --to Nick1 --auto-accept ./incoming localhost 8888\n  \
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
pub(crate) struct Verbosity {
    /// More log detail (-v debug, -vv trace); the client logs to stderr only with -v.
    /// RUST_LOG overrides both flags.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log detail (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
}

#[derive(Args)]
struct ClientArgs {
    /// Relay host name or address.
    #[arg(required_unless_present = "show_identity")]
    host: Option<String>,
    /// Relay port.
    #[arg(required_unless_present = "show_identity")]
    port: Option<u16>,
    /// Nickname to use instead of being asked.
    #[arg(long, value_name = "NAME")]
    nick: Option<String>,
    /// Chat with this person in particular (waits until they are online and free) instead of
    /// whoever comes next.
    #[arg(long, value_name = "NAME")]
    to: Option<String>,
    /// Go into this room (created if new, owned by you) instead of chatting with one person;
    /// /join, /leave, /rooms and /members work inside the client too.
    #[arg(long, value_name = "ROOM", conflicts_with = "to")]
    room: Option<String>,
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
    /// Connect over plain TCP instead of TLS (for a relay started with --plaintext). Messages
    /// stay end-to-end encrypted, but anyone on the network path sees who talks to whom.
    #[arg(long, conflicts_with = "ca")]
    plaintext: bool,
    /// Trust only relay certificates issued by the CA in this PEM file (with the usual host
    /// name checks) instead of trusting a relay's certificate on first use.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Where relays' certificate fingerprints are remembered on first use (companions' keys
    /// are remembered in `companions` in the same directory)
    /// [default: $XDG_CONFIG_HOME/p2pchat/known_hosts]
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<std::path::PathBuf>,
    /// Your identity key file, created on first use; it owns your nicknames and opens your
    /// messages [default: $XDG_CONFIG_HOME/p2pchat/identity]
    #[arg(long, value_name = "FILE")]
    identity: Option<std::path::PathBuf>,
    /// Save received files here [default: your Downloads directory, else the current one]
    #[arg(long, value_name = "DIR")]
    downloads: Option<std::path::PathBuf>,
    /// Accept every file offered to you, saving it in DIR, without asking (scripting mode).
    #[arg(long, value_name = "DIR", conflicts_with = "downloads")]
    auto_accept: Option<std::path::PathBuf>,
    /// Offer the file at PATH (a directory: the files in it; repeat --send for more) to your
    /// companion once one is connected, and exit once every one was received (status 0), or
    /// once all are over and any was declined or failed (status 1).
    #[arg(long, value_name = "PATH")]
    send: Vec<std::path::PathBuf>,
    /// Print your identity's public key, its fingerprint and the file, then exit.
    #[arg(long)]
    show_identity: bool,
    #[command(flatten)]
    verbosity: Verbosity,
}

/// Bytes of freed memory the allocator may keep at the top of each heap instead of returning
/// them to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const KEEP_FREED: libc::c_int = 8 << 20;

/// Files move in 64 KiB chunks that the clients and the relay allocate and free on several
/// threads. By default glibc hands the freed top of a heap back to the system almost at once,
/// so every chunk faulted freshly zeroed pages in again (page faults were a sixth of the CPU
/// time of a transfer). Keeping up to `KEEP_FREED` bytes per heap ends that; memory in use is
/// unchanged, and what is kept is bounded by it.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter of glibc's allocator; it may be called at
    // any time, from any thread, with any value (one it refuses is ignored).
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREED);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
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
        Command::Server(args) => runtime.block_on(serve::serve(args)).map(|()| 0),
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

/// Cancels `token` on Ctrl+C or SIGTERM.
pub(crate) async fn cancel_on_signal(token: CancellationToken) {
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
    if args.show_identity {
        return Ok(p2pchat_client::show_identity(args.identity));
    }
    // clap requires both without --show-identity; this only guards against that changing.
    let (Some(host), Some(port)) = (args.host, args.port) else {
        anyhow::bail!("HOST and PORT are required (except with --show-identity)");
    };
    logging::init_client(args.verbosity.level(), args.log_file.as_deref())?;
    let options = p2pchat_client::Options {
        host,
        port,
        nick: args.nick,
        to: args.to,
        room: args.room,
        history: args.history,
        retry_for: args.retry_for,
        plaintext: args.plaintext,
        ca: args.ca,
        known_hosts: args.known_hosts,
        identity: args.identity,
        auto_accept: args.auto_accept.is_some(),
        downloads: args
            .auto_accept
            .or(args.downloads)
            .or_else(dirs::download_dir)
            .unwrap_or_else(|| std::path::PathBuf::from(".")),
        send: args.send,
    };
    Ok(p2pchat_client::run(options).await)
}

impl Verbosity {
    /// The level the flags ask for, relative to the default of `info`.
    pub(crate) fn level(self) -> tracing::Level {
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
