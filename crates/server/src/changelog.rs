//! An append-only file of one-line changes, written by a thread of its own so that nothing on a
//! session's path waits for the disk: nickname owners and rooms keep their tables in memory and
//! record each change here. The file is rewritten whole (compacted) when the relay starts.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use tracing::warn;

/// Changes waiting for the writer thread before a session waits for it.
const LOG_QUEUE: usize = 4096;

/// Where changes to one table go.
pub(crate) struct ChangeLog {
    changes: SyncSender<String>,
}

impl ChangeLog {
    /// Replaces `path` with `compacted` (owner-only), then appends each recorded line to it,
    /// syncing after each burst. `what` names the table in warnings.
    pub(crate) fn open(path: &Path, compacted: &str, what: &'static str) -> io::Result<Self> {
        p2pchat_secure::files::write_private(path, compacted.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        let (changes, receiver) = sync_channel(LOG_QUEUE);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name(format!("{what}-log"))
            .spawn(move || write_log(file, path, receiver, what))?;
        Ok(Self { changes })
    }

    /// Queues one line (ending in `\n`) for the file.
    pub(crate) fn record(&self, line: String) {
        // Only fails once the writer thread has died, which it has already logged.
        let _ = self.changes.send(line);
    }
}

/// The file's text, or nothing if there is no file yet.
pub(crate) fn read_text(path: &Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(err),
    }
}

fn write_log(file: File, path: PathBuf, changes: Receiver<String>, what: &str) {
    let mut out = BufWriter::new(file);
    while let Ok(line) = changes.recv() {
        let mut result = out.write_all(line.as_bytes());
        while let (Ok(()), Ok(line)) = (&result, changes.try_recv()) {
            result = out.write_all(line.as_bytes());
        }
        let result = result
            .and_then(|()| out.flush())
            .and_then(|()| out.get_ref().sync_data());
        if let Err(err) = result {
            warn!("⚠️ cannot record {what} in {}: {err}", path.display());
        }
    }
}
