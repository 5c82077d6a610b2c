//! Retention: stored messages older than the configured age are deleted, at start and then
//! periodically.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p2pchat_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Longest pause between two purges.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Purges messages older than `retention` until `shutdown`.
pub(crate) async fn run(store: Arc<Store>, retention: Duration, shutdown: CancellationToken) {
    // Often enough that nothing outlives its retention by more than a tenth of it (or an hour).
    let interval = (retention / 10).clamp(Duration::from_secs(1), MAX_INTERVAL);
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let cutoff = now.saturating_sub(retention);
        let cutoff_ms = i64::try_from(cutoff.as_millis()).unwrap_or(i64::MAX);
        match store.purge_older_than(cutoff_ms).await {
            Ok(0) => {}
            Ok(rows) => info!(
                "🧹 Deleted {rows} stored batch(es) of messages older than {}",
                humanize(retention)
            ),
            Err(err) => warn!("⚠️ Could not delete old messages: {err}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
