//! The writer thread of file transfers: each received file goes to a temporary file
//! (`.NAME.TAG.p2pchat-part`, created exclusively, owner-only) with a running SHA-256; at the end
//! the SHA-256 is compared with the offer's and the file moved to its final name with `place`,
//! never over an existing file, or deleted. A temporary file with a state file (`resume.rs`)
//! outlives an interruption (a lost connection, a companion away, the client ending) so the
//! download can resume; it is deleted when the transfer is refused, cancelled or fails.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use p2pchat_secure::TransferId;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Notify};

use crate::disk::describe;
use crate::events::{Event, PartRecord, SaveError};
use crate::resume::{part_path, remove_part, write_state};

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
        record: PartRecord,
    },
    Resume {
        transfer: TransferId,
        dir: PathBuf,
        name: String,
        from: u64,
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
    Close {
        transfer: TransferId,
    },
}

impl Job {
    pub(crate) fn transfer(&self) -> TransferId {
        match self {
            Job::Create { transfer, .. }
            | Job::Resume { transfer, .. }
            | Job::Write { transfer, .. }
            | Job::Finish { transfer, .. }
            | Job::Discard { transfer }
            | Job::Close { transfer } => *transfer,
        }
    }
}

/// A file being received: its temporary file and running SHA-256.
pub(crate) struct Part {
    pub file: File,
    pub path: PathBuf,
    /// Its state file, once written: without one it cannot resume, so it is never kept.
    pub state: Option<PathBuf>,
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
                record,
            } => match create_part(&transfer, dir, name) {
                Ok(mut part) => {
                    // Without it the download only cannot resume; it still goes on.
                    part.state = write_state(&part.path, &transfer, &part.name, &record).ok();
                    parts.insert(transfer, part);
                    None
                }
                Err(err) => Some(Event::WriteFailed {
                    transfer,
                    why: describe(&err),
                }),
            },
            Job::Resume {
                transfer,
                dir,
                name,
                from,
            } => match reopen_part(&transfer, dir, name, from) {
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
            Job::Close { transfer } => {
                keep(parts.remove(&transfer));
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
    // The runner is gone: what can resume stays, nothing else half-received does.
    for (_, part) in parts.drain() {
        keep(Some(part));
    }
}

fn discard(part: Option<Part>) {
    if let Some(part) = part {
        drop(part.file);
        remove_part(&part.path);
    }
}

/// Closes a temporary file, kept for resuming if it has a state file (else deleted).
fn keep(part: Option<Part>) {
    match part {
        Some(part) if part.state.is_some() => {
            let _ = part.file.sync_data();
        }
        other => discard(other),
    }
}

/// `DIR/.NAME.1a2b3c4d.p2pchat-part`, created exclusively and readable by the owner only.
pub(crate) fn create_part(
    transfer: &TransferId,
    dir: PathBuf,
    name: String,
) -> std::io::Result<Part> {
    std::fs::create_dir_all(&dir)?;
    let path = part_path(&dir, transfer, &name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path)?;
    Ok(Part {
        file,
        path,
        state: None,
        dir,
        name,
        hasher: Sha256::new(),
    })
}

/// The temporary file of an interrupted download, reopened to append after its first `from`
/// bytes, whose SHA-256 is worked out again. If it cannot be, it and its state file go (the
/// sender hears of the failure and it is not tried again).
pub(crate) fn reopen_part(
    transfer: &TransferId,
    dir: PathBuf,
    name: String,
    from: u64,
) -> std::io::Result<Part> {
    let path = part_path(&dir, transfer, &name);
    let reopened = (|| {
        if !std::fs::symlink_metadata(&path)?.is_file() {
            return Err(std::io::Error::other(
                "its temporary file is not a plain file",
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 64 * 1024];
        let mut read = 0u64;
        let mut prefix = (&mut file).take(from);
        loop {
            match prefix.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    read += n as u64;
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        if read != from {
            return Err(std::io::Error::other("its temporary file got shorter"));
        }
        file.set_len(from)?;
        file.seek(SeekFrom::Start(from))?;
        Ok((file, hasher))
    })();
    match reopened {
        Ok((file, hasher)) => Ok(Part {
            file,
            state: Some(crate::resume::state_path(&path)),
            path,
            dir,
            name,
            hasher,
        }),
        Err(err) => {
            remove_part(&path);
            Err(err)
        }
    }
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
        Ok(name) => {
            if let Some(state) = &part.state {
                let _ = std::fs::remove_file(state);
            }
            Ok(name)
        }
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
