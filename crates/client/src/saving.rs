//! The writer thread of file transfers: each received file goes to a temporary file
//! (`.NAME.TAG.p2pchat-part`, created exclusively, owner-only) with a running SHA-256; at the end
//! the SHA-256 is compared with the offer's and the file moved to its final name with `place`,
//! never over an existing file, or deleted. A temporary file never outlives its transfer: it is
//! deleted when the transfer stops, fails, or the client ends.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use p2pchat_secure::TransferId;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Notify};

use crate::disk::describe;
use crate::events::{Event, SaveError};

/// Write jobs queued for the writer thread before the runner stops taking frames from the
/// network (about 4 MiB of chunks).
pub const MAX_PENDING_WRITES: usize = 64;
/// Numbered names tried before giving up (`report (999).pdf`).
const MAX_NUMBERED: u32 = 999;

/// A job for the writer thread, in the order the app asked for it.
pub(crate) enum Job {
    Create {
        transfer: TransferId,
        dir: PathBuf,
        name: String,
    },
    Write {
        transfer: TransferId,
        data: Vec<u8>,
    },
    Finish {
        transfer: TransferId,
        sha256: [u8; 32],
    },
    Discard {
        transfer: TransferId,
    },
}

/// A file being received: its temporary file and running SHA-256.
pub(crate) struct Part {
    pub file: File,
    pub path: PathBuf,
    dir: PathBuf,
    name: String,
    pub hasher: Sha256,
}

/// The writer thread: jobs in order until the runner hangs up.
pub(crate) fn write_files(
    jobs: &std::sync::mpsc::Receiver<Job>,
    events: &mpsc::UnboundedSender<Event>,
    pending: &AtomicUsize,
    room: &Notify,
) {
    let mut parts: HashMap<TransferId, Part> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        let reply = match job {
            Job::Create {
                transfer,
                dir,
                name,
            } => match create_part(&transfer, dir, name) {
                Ok(part) => {
                    parts.insert(transfer, part);
                    None
                }
                Err(err) => Some(Event::WriteFailed {
                    transfer,
                    why: describe(&err),
                }),
            },
            Job::Write { transfer, data } => {
                let failed = parts.get_mut(&transfer).and_then(|part| {
                    part.hasher.update(&data);
                    part.file.write_all(&data).err()
                });
                failed.map(|err| {
                    discard(parts.remove(&transfer));
                    Event::WriteFailed {
                        transfer,
                        why: describe(&err),
                    }
                })
            }
            Job::Finish { transfer, sha256 } => parts.remove(&transfer).map(|part| {
                let result = finish_part(part, &sha256);
                Event::FileSaved { transfer, result }
            }),
            Job::Discard { transfer } => {
                discard(parts.remove(&transfer));
                None
            }
        };
        if let Some(reply) = reply {
            let _ = events.send(reply);
        }
        let before = pending.fetch_sub(1, Ordering::Relaxed);
        if before == MAX_PENDING_WRITES {
            room.notify_one();
        }
    }
    // The runner is gone: nothing half-received stays behind.
    for (_, part) in parts.drain() {
        discard(Some(part));
    }
}

fn discard(part: Option<Part>) {
    if let Some(part) = part {
        drop(part.file);
        let _ = std::fs::remove_file(&part.path);
    }
}

/// `DIR/.NAME.1a2b3c4d.p2pchat-part`, created exclusively and readable by the owner only.
pub(crate) fn create_part(
    transfer: &TransferId,
    dir: PathBuf,
    name: String,
) -> std::io::Result<Part> {
    std::fs::create_dir_all(&dir)?;
    let tag: String = transfer[..4].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!(".{name}.{tag}.p2pchat-part"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path)?;
    Ok(Part {
        file,
        path,
        dir,
        name,
        hasher: Sha256::new(),
    })
}

/// Checks the SHA-256 and gives the file its final name, or deletes it.
pub(crate) fn finish_part(mut part: Part, sha256: &[u8; 32]) -> Result<String, SaveError> {
    let digest: [u8; 32] = std::mem::take(&mut part.hasher).finalize().into();
    if &digest != sha256 {
        discard(Some(part));
        return Err(SaveError::Mismatch);
    }
    if let Err(err) = part.file.sync_all() {
        let why = describe(&err);
        discard(Some(part));
        return Err(SaveError::Io(why));
    }
    match place(&part.path, &part.dir, &part.name) {
        Ok(name) => Ok(name),
        Err(err) => {
            let why = describe(&err);
            discard(Some(part));
            Err(SaveError::Io(why))
        }
    }
}

/// Moves `part` to `dir/name`, or `name (1)`, `name (2)`… if taken: never over an existing
/// file. A hard link fails if the name exists, so no other program can slip a file in between
/// the check and the move; where links are not supported, a check and a rename stand in.
fn place(part: &Path, dir: &Path, name: &str) -> std::io::Result<String> {
    for n in 0..=MAX_NUMBERED {
        let candidate = numbered(name, n);
        let target = dir.join(&candidate);
        match std::fs::hard_link(part, &target) {
            Ok(()) => {
                std::fs::remove_file(part)?;
                return Ok(candidate);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) if !target.exists() => {
                std::fs::rename(part, &target)?;
                return Ok(candidate);
            }
            Err(_) => {}
        }
    }
    Err(std::io::Error::other(format!(
        "{MAX_NUMBERED} files called {name} already exist"
    )))
}

/// `report.pdf`, `report (1).pdf`, `report (2).pdf`…
pub(crate) fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rfind('.').filter(|&dot| dot > 0) {
        Some(dot) => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        None => format!("{name} ({n})"),
    }
}
