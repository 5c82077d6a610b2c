//! The accept loop: connection limits (in all and per client address), back-off when the
//! process runs out of file descriptors, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use p2pchat_proto::{encode_to_vec, ErrorCode, Frame};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use p2pchat_store::Store;

use crate::conversation::Conversations;
use crate::hub::Hub;
use crate::limits::{LogBudget, PerAddress};
use crate::{report, retention, session, transport, Config, Owners, Rooms, Shared};

/// How long shutdown waits for sessions to flush before the relay exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// Refusals ("server full") in flight beyond which newcomers are closed without a word, so a
/// connection flood cannot grow the number of tasks without limit either.
const MAX_REFUSALS: usize = 1024;
/// Refusals in flight beyond which newcomers to a TLS relay are closed without a word: each
/// costs a TLS handshake (one signature and key exchange) so that the client can read why.
const MAX_TLS_REFUSALS: usize = 64;
/// Time a refused connection gets to receive its error frame (over TLS, the handshake too).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one warning per this long about each kind of refusal; the rest are counted.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// Pending connections the kernel may queue before `accept`: bursts of thousands of clients
/// (a reconnect storm) must not overflow it, or their SYNs are dropped and retried a second later.
/// The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener on `host:port` (trying each address `host` resolves to) with a deep
/// accept backlog.
pub async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the host name has no address")
    }))
}

/// Raises the soft limit on open files to the hard limit (each connection is one file) and
/// returns the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

/// Serves clients on `listener` until `shutdown` is cancelled, then tells every client, lets
/// sessions flush for at most `SHUTDOWN_GRACE`, and returns. With a `store`, conversations are
/// kept there and survive disconnects and restarts; without, messages are only relayed live.
/// `owners` says which identity key owns which nickname; `rooms` holds the rooms.
pub async fn run(
    listener: TcpListener,
    config: Config,
    store: Option<Store>,
    owners: Owners,
    rooms: Rooms,
    shutdown: CancellationToken,
) {
    info!("🟢 Waiting for 2 clients to connect...");
    let store = store.map(Arc::new);
    let hub = match store {
        Some(_) => Hub::keeping_lost_companions(),
        None => Hub::new(),
    };
    if let (Some(store), Some(retention)) = (&store, config.retention) {
        tokio::spawn(retention::run(store.clone(), retention, shutdown.clone()));
    }
    let shared = Arc::new(Shared {
        max_frame: config.max_frame(),
        max_backlog: config.outbox_bytes(),
        config,
        hub,
        conversations: Conversations::new(store),
        owners,
        rooms,
    });
    let sessions = TaskTracker::new();
    let mut refusals = Refusals {
        tasks: TaskTracker::new(),
        tls: shared.config.tls.clone(),
        full_log: LogBudget::new(REFUSAL_LOG_EVERY),
        address_log: LogBudget::new(REFUSAL_LOG_EVERY),
    };
    let per_address = PerAddress::new(shared.config.max_per_ip);
    let mut accepted = 0u64;
    let mut backoff = Backoff::default();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = listener.accept() => next,
        };
        let (stream, addr) = match next {
            Ok(connection) => {
                backoff.recovered();
                connection
            }
            Err(err) => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = backoff.wait(&err) => continue,
                }
            }
        };
        accepted += 1;
        if sessions.len() >= shared.config.max_connections {
            refusals.full(stream, shared.config.max_connections);
            continue;
        }
        let Ok(slot) = per_address.admit(addr.ip()) else {
            refusals.too_many(stream, addr.ip(), per_address.limit());
            continue;
        };
        report::log_connected(accepted, addr);
        let session = session::serve(stream, addr, accepted, shared.clone(), shutdown.clone());
        sessions.spawn(async move {
            session.await;
            // The address's place is given back however the session ended.
            drop(slot);
        });
    }
    drop(listener);
    shared.hub.close();
    info!(
        "🛑 Shutting down: telling {} connected client(s)",
        sessions.len()
    );
    sessions.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, sessions.wait())
        .await
        .is_err()
    {
        warn!("⚠️ Some connections did not close in time; closing them now");
    }
    if let Some(store) = shared.conversations.store() {
        // Read cursors and anything still queued reach the disk before the process exits.
        if let Err(err) = store.flush().await {
            warn!("⚠️ The history store could not write its last changes: {err}");
        }
    }
    info!("✅ Server stopped");
}

/// Connections turned away with a fatal error frame, without letting refusals pile up.
struct Refusals {
    tasks: TaskTracker,
    tls: Option<Arc<rustls::ServerConfig>>,
    full_log: LogBudget,
    address_log: LogBudget,
}

impl Refusals {
    /// Tells a newcomer the server is full.
    fn full(&mut self, stream: TcpStream, max: usize) {
        if let Some(skipped) = self.full_log.allow() {
            warn!(
                "⛔ Connection limit of {max} reached: refusing a newcomer{}",
                more(skipped)
            );
        }
        self.send(
            stream,
            ErrorCode::ServerFull,
            format!("the server is full ({max} connections); try again later"),
        );
    }

    /// Tells a newcomer its address has too many connections open.
    fn too_many(&mut self, stream: TcpStream, ip: std::net::IpAddr, max: usize) {
        if let Some(skipped) = self.address_log.allow() {
            warn!(
                "⛔ Too many connections from {ip} (limit {max}): refusing a newcomer{}",
                more(skipped)
            );
        }
        self.send(
            stream,
            ErrorCode::TooManyConnections,
            format!(
                "too many connections from your address (limit {max}); close some and try again"
            ),
        );
    }

    /// Sends the fatal error and closes, in a task bounded in time; beyond the number of
    /// refusals in flight the relay can afford, closes at once instead.
    fn send(&mut self, stream: TcpStream, code: ErrorCode, text: String) {
        let most = match self.tls {
            Some(_) => MAX_TLS_REFUSALS,
            None => MAX_REFUSALS,
        };
        if self.tasks.len() >= most {
            debug!("refusals backed up; closing a newcomer without a word");
            return;
        }
        let error = encode_to_vec(&Frame::Error {
            code,
            fatal: true,
            text,
        });
        let tls = self.tls.clone();
        self.tasks.spawn(async move {
            let refusal = transport::refuse(stream, tls.as_ref(), &error);
            if let Ok(Err(err)) = tokio::time::timeout(REFUSAL_TIMEOUT, refusal).await {
                debug!("a refused client was not told why: {err}");
            }
        });
    }
}

/// ", and N more since the last warning" when warnings were left out.
fn more(skipped: u64) -> String {
    match skipped {
        0 => String::new(),
        n => format!(" ({n} more refused since the last warning)"),
    }
}

/// Accept failures (out of file descriptors, out of memory) are waited out with a growing pause
/// instead of a busy loop, and logged once per episode rather than once per attempt.
#[derive(Default)]
struct Backoff {
    failing: bool,
    delay: Duration,
}

impl Backoff {
    async fn wait(&mut self, err: &std::io::Error) {
        if !self.failing {
            warn!("⚠️ Accepting connections failed: {err}; pausing accepts until it clears (raise the open-files limit with ulimit -n if this is EMFILE)");
            self.failing = true;
            self.delay = Duration::from_millis(5);
        } else {
            debug!("accept still failing: {err}");
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_millis(500));
    }

    fn recovered(&mut self) {
        if self.failing {
            info!("✅ Accepting connections again");
            self.failing = false;
        }
    }
}
