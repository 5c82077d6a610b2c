//! `p2pchat server`: its options, and setting up what the relay needs before it serves: limits,
//! the data dir (history, nickname owners, the TLS certificate) and the listener.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{cancel_on_signal, logging, Verbosity};

#[derive(Args)]
pub(crate) struct ServerArgs {
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
    /// Where the relay keeps its state: conversations, nickname owners and its TLS certificate
    /// (created owner-only if missing)
    /// [default: the platform's data directory, e.g. ~/.local/share/p2pchat]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep no history: messages are only relayed live (held in memory for a companion still
    /// to come, up to --max-held; gone if the relay stops). Nickname owners and the certificate
    /// are still kept in the data dir.
    #[arg(long)]
    no_history: bool,
    /// Serve plain TCP instead of TLS: anyone on the network path sees nicknames and who talks
    /// to whom (message texts stay end-to-end encrypted). Clients need --plaintext too.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    plaintext: bool,
    /// TLS certificate chain (PEM) to serve instead of the self-signed one in the data dir.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Connections served at once from one IP address; more are refused (0: no limit).
    #[arg(long, value_name = "N", default_value_t = p2pchat_server::DEFAULT_MAX_PER_IP)]
    max_per_ip: usize,
    /// Chat messages a connection may send per second (with a burst of as many); a faster
    /// client is slowed down and told so, nothing is dropped (0: no limit).
    #[arg(long, value_name = "N", default_value_t = p2pchat_server::DEFAULT_MAX_RATE)]
    max_rate: u32,
    /// Largest file a client may send through the relay, in bytes (files are forwarded live,
    /// never stored).
    #[arg(long, value_name = "BYTES", default_value_t = p2pchat_server::DEFAULT_MAX_FILE)]
    max_file: u64,
    /// Members one room may have.
    #[arg(long, value_name = "N", default_value_t = p2pchat_server::DEFAULT_MAX_ROOM_MEMBERS)]
    max_room_members: usize,
    /// Rooms one nickname may be a member of.
    #[arg(long, value_name = "N", default_value_t = p2pchat_server::DEFAULT_MAX_ROOMS_PER_USER)]
    max_rooms_per_user: usize,
    /// Rooms the relay keeps; creating more is refused.
    #[arg(long, value_name = "N", default_value_t = p2pchat_server::DEFAULT_MAX_ROOMS)]
    max_rooms: usize,
    /// Delete stored messages older than this, e.g. 30d or 12h [default: keep everything]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "no_history")]
    retention: Option<Duration>,
    /// Log format: `text` (the design's timestamped lines) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
    #[command(flatten)]
    verbosity: Verbosity,
}

pub(crate) async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    logging::init_server(args.verbosity.level(), args.log_format);
    let (files, max_connections) = open_files_budget(args.max_connections);
    let data_dir = data_dir(&args)?;
    let tls = set_up_tls(&args, &data_dir)?;
    let config = p2pchat_server::Config {
        max_message: args.max_message,
        heartbeat: args.heartbeat,
        login_timeout: args.login_timeout,
        max_held: args.max_held,
        max_connections,
        retention: args.retention,
        tls,
        max_per_ip: args.max_per_ip,
        max_rate: args.max_rate,
        max_file: args.max_file,
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
    let owners_file = data_dir.join("owners");
    let owners = p2pchat_server::Owners::open(&owners_file, p2pchat_server::DEFAULT_MAX_OWNERS)
        .with_context(|| {
            format!(
                "Could not open the nickname owners in {}",
                owners_file.display()
            )
        })?;
    let rooms_file = data_dir.join("rooms");
    let limits = p2pchat_server::RoomLimits {
        members: args.max_room_members.max(1),
        per_user: args.max_rooms_per_user.max(1),
        rooms: args.max_rooms.max(1),
    };
    let rooms = p2pchat_server::Rooms::open(&rooms_file, limits)
        .with_context(|| format!("Could not open the rooms in {}", rooms_file.display()))?;
    let store = open_store(&args, &data_dir).await?;
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
    p2pchat_server::run(listener, config, store, owners, rooms, shutdown).await;
    Ok(())
}

/// The data dir the options ask for, created owner-only if missing.
fn data_dir(args: &ServerArgs) -> anyhow::Result<PathBuf> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => dirs::data_dir()
            .map(|dir| dir.join("p2pchat"))
            .context("Could not find a data directory; pass --data-dir DIR")?,
    };
    p2pchat_secure::files::create_private_dir(&dir)
        .with_context(|| format!("Could not create the data directory {}", dir.display()))?;
    Ok(dir)
}

/// The TLS configuration the options ask for: none with `--plaintext`, `--cert/--key`, or the
/// self-signed certificate in the data dir (created on first start).
fn set_up_tls(
    args: &ServerArgs,
    data_dir: &Path,
) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
    use p2pchat_secure::tls::ServerTls;
    if args.plaintext {
        tracing::warn!(
            "⚠️ TLS is off (--plaintext): nicknames and who talks to whom cross the network \
             unencrypted (message texts stay end-to-end encrypted)"
        );
        return Ok(None);
    }
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => ServerTls::from_files(cert, key)
            .with_context(|| format!("Could not use the certificate {}", cert.display()))?,
        _ => {
            let names = vec![args.host.clone(), "localhost".into()];
            let dir = data_dir.join("tls");
            ServerTls::self_signed(&dir, names).with_context(|| {
                format!("Could not set up a TLS certificate in {}", dir.display())
            })?
        }
    };
    if tls.created {
        info!(
            "🔐 Created a self-signed TLS certificate in {}",
            tls.cert_path.display()
        );
    }
    info!(
        "🔐 TLS certificate {} SHA-256 fingerprint {}",
        tls.cert_path.display(),
        tls.fingerprint
    );
    Ok(Some(tls.config))
}

/// Opens the history store the options ask for (none with `--no-history`).
async fn open_store(args: &ServerArgs, dir: &Path) -> anyhow::Result<Option<p2pchat_store::Store>> {
    if args.no_history {
        info!("🗄️ History is off (--no-history): messages are only relayed live");
        return Ok(None);
    }
    let dir = dir.to_path_buf();
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
