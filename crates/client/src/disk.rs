//! The disk work of file transfers, off the runner's loop: looking up a file to offer (a
//! blocking task), reading a file being sent (a blocking task per transfer, one chunk at a time
//! into a small queue the runner drains only when the connection has room, hashing each byte
//! once as it goes: the SHA-256 follows the last chunk), and writing files being
//! received (one writer thread, fed in order; the runner stops reading the network while its
//! queue is full, so memory stays bounded even when the disk is slower than the link). Results
//! come back as app events. The writer itself is `saving.rs`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use p2pchat_secure::TransferId;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Notify};

use crate::events::{Effect, Event, FileFacts, FileStamp, SendSpec};
use crate::saving::{write_files, Job};

/// Chunks read ahead for the files being sent (all transfers together): enough to keep the
/// link busy, few enough that a stopped transfer wastes little.
const READ_AHEAD: usize = 16;
/// Bytes read per `read` call when hashing what a reader skipped.
const HASH_BUFFER: usize = 64 * 1024;
/// Why reading fails when the file is no longer the one offered (`Event::ReadFailed`).
pub(crate) const FILE_CHANGED: &str = "it changed since it was offered";

/// The runner's handle on all disk work.
pub(crate) struct Disk {
    /// Results: hashes, saved files, failures (few and small, so unbounded).
    pub events: mpsc::UnboundedReceiver<Event>,
    events_tx: mpsc::UnboundedSender<Event>,
    /// Pieces of files being sent, bounded by `READ_AHEAD`.
    pub chunks: mpsc::Receiver<Event>,
    chunks_tx: mpsc::Sender<Event>,
    /// Readers under way: their stop flags.
    readers: HashMap<TransferId, Arc<AtomicBool>>,
    /// The running SHA-256 of each file being sent (kept while a transfer is paused, so a
    /// resumed stream hashes only bytes not hashed yet); at most one per transfer.
    hashes: HashMap<TransferId, Arc<Mutex<RunningHash>>>,
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    pending: Arc<AtomicUsize>,
    /// Notified when the writer's queue drops below `MAX_PENDING_WRITES`.
    pub write_room: Arc<Notify>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Where offers are recorded to survive a restart (`offers.rs`).
    outgoing: PathBuf,
}

impl Disk {
    /// Starts the writer thread; offers are recorded in `outgoing`.
    pub fn new(outgoing: PathBuf) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (chunks_tx, chunks) = mpsc::channel(READ_AHEAD);
        let (jobs, job_rx) = std::sync::mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let write_room = Arc::new(Notify::new());
        let writer = {
            let (events, pending, room) = (events_tx.clone(), pending.clone(), write_room.clone());
            std::thread::Builder::new()
                .name("p2pchat-files".into())
                .spawn(move || write_files(&job_rx, &events, &pending, &room))
                .ok()
        };
        Self {
            events,
            events_tx,
            chunks,
            chunks_tx,
            readers: HashMap::new(),
            hashes: HashMap::new(),
            jobs: Some(jobs),
            pending,
            write_room,
            writer,
            outgoing,
        }
    }

    /// Where offers are recorded.
    pub fn outgoing(&self) -> &Path {
        &self.outgoing
    }

    /// Whether the writer can take the jobs one more network frame may bring.
    pub fn has_write_room(&self) -> bool {
        self.pending.load(Ordering::Relaxed) < crate::saving::MAX_PENDING_WRITES
    }

    /// Whether a file is being read for sending.
    pub fn is_reading(&self) -> bool {
        !self.readers.is_empty()
    }

    /// A piece arrived from a reader: forget the reader once it is through (the file's
    /// SHA-256 came) or failed.
    pub fn chunk_taken(&mut self, event: &Event) {
        match event {
            Event::FileRead { transfer, .. } | Event::ReadFailed { transfer, .. } => {
                self.readers.remove(transfer);
            }
            _ => {}
        }
    }

    /// Carries out a file effect (others are ignored).
    pub fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::ListFiles { spec } => {
                let events = self.events_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let (files, problems) = list_files(spec);
                    let _ = events.send(Event::FilesListed { files, problems });
                });
            }
            Effect::LookAtFile { transfer, path } => {
                let events = self.events_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let result = look_at_file(&path);
                    let _ = events.send(Event::FileLooked { transfer, result });
                });
            }
            Effect::ReadFile {
                transfer,
                path,
                from,
                size,
                chunk,
                stamp,
            } => {
                let stop = Arc::new(AtomicBool::new(false));
                // Reading again from elsewhere (a resume): the reader before stops.
                if let Some(old) = self.readers.insert(transfer, stop.clone()) {
                    old.store(true, Ordering::Relaxed);
                }
                let hash = self.hashes.entry(transfer).or_default().clone();
                let chunks = self.chunks_tx.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(why) = stamp.and_then(|stamp| changed(&path, &stamp)) {
                        let _ = chunks.blocking_send(Event::ReadFailed { transfer, why });
                        return;
                    }
                    let reader = Reader {
                        transfer,
                        stop: &stop,
                        hash: &hash,
                        chunks: &chunks,
                    };
                    reader.read(&path, from, size, chunk);
                });
            }
            Effect::RememberOffer(offer) => {
                if let Err(err) = crate::offers::remember(&self.outgoing, &offer) {
                    tracing::warn!("could not record the offer of {}: {err}", offer.name);
                }
            }
            Effect::StopReading { transfer } => {
                crate::offers::forget(&self.outgoing, &transfer);
                self.hashes.remove(&transfer);
                if let Some(stop) = self.readers.remove(&transfer) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Effect::PauseReading { transfer } => {
                if let Some(stop) = self.readers.remove(&transfer) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Effect::CreatePart {
                transfer,
                dir,
                name,
                record,
            } => self.job(Job::Create {
                transfer,
                dir,
                name,
                record,
            }),
            Effect::ResumePart {
                transfer,
                dir,
                name,
                from,
            } => self.job(Job::Resume {
                transfer,
                dir,
                name,
                from,
            }),
            Effect::ClosePart { transfer } => self.job(Job::Close { transfer }),
            Effect::WriteChunk { transfer, data } => self.job(Job::Write { transfer, data }),
            Effect::FinishFile { transfer, sha256 } => self.job(Job::Finish { transfer, sha256 }),
            Effect::DiscardPart { transfer } => self.job(Job::Discard { transfer }),
            _ => {}
        }
    }

    fn job(&self, job: Job) {
        let transfer = job.transfer();
        let sent = self.jobs.as_ref().is_some_and(|jobs| {
            self.pending.fetch_add(1, Ordering::Relaxed);
            jobs.send(job).is_ok()
        });
        if !sent {
            let why = "the file writer is not running".to_owned();
            let _ = self.events_tx.send(Event::WriteFailed { transfer, why });
        }
    }

    /// Stops the readers and lets the writer finish what is queued (deleting temporary files
    /// of transfers that stopped), waiting at most `patience`.
    pub async fn finish(&mut self, patience: std::time::Duration) {
        for stop in self.readers.values() {
            stop.store(true, Ordering::Relaxed);
        }
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let joined = tokio::task::spawn_blocking(move || writer.join());
            let _ = tokio::time::timeout(patience, joined).await;
        }
    }
}

/// Files one `/send` or `--send` may list, at most (directories included).
const MAX_LISTED: usize = crate::transfers::MAX_QUEUED;

/// The files `spec` stands for, in order (a directory's sorted by name, recursively; links
/// inside directories are not followed), and `PATH: why` for each path that cannot be sent.
pub(crate) fn list_files(spec: SendSpec) -> (Vec<PathBuf>, Vec<String>) {
    let paths = match spec {
        SendSpec::Given(paths) => paths,
        SendSpec::Typed(typed) => {
            let whole = unquote(typed.trim());
            if Path::new(whole).exists() {
                vec![PathBuf::from(whole)]
            } else {
                match shell_words::split(&typed) {
                    Ok(words) => words.into_iter().map(PathBuf::from).collect(),
                    Err(_) => return (Vec::new(), vec![format!("{typed}: a quote is not closed")]),
                }
            }
        }
    };
    let (mut files, mut problems) = (Vec::new(), Vec::new());
    for path in paths {
        let shown = path.display().to_string();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                let before = files.len();
                if let Err(why) = walk(&path, &mut files) {
                    files.truncate(before);
                    problems.push(format!("{shown}: {why}"));
                } else if files.len() == before {
                    problems.push(format!("{shown}: the directory has no files"));
                }
            }
            Ok(meta) if meta.is_file() => files.push(path),
            Ok(_) => problems.push(format!("{shown}: not a regular file")),
            Err(err) => problems.push(format!("{shown}: {}", describe(&err))),
        }
        if files.len() > MAX_LISTED {
            problems.push(format!(
                "{shown}: more than {MAX_LISTED} files at once; send fewer"
            ));
            files.truncate(MAX_LISTED);
            break;
        }
    }
    (files, problems)
}

/// Adds the regular files under `dir` to `files`, sorted, depth first, until there are more
/// than `MAX_LISTED`.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|err| describe(&err))?
        .filter_map(Result::ok)
        .take(MAX_LISTED + 1)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        if files.len() > MAX_LISTED {
            break;
        }
        // The entry itself, not what a link points to: no loops, nothing outside.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// `"a b"` or `'a b'`: what is inside the quotes; anything else as it is.
fn unquote(text: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = text
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    text
}

/// A file's name, size and stamp (it is not read: its SHA-256 is worked out as it is sent).
fn look_at_file(path: &Path) -> Result<FileFacts, String> {
    let metadata = std::fs::metadata(path).map_err(|err| describe(&err))?;
    if metadata.is_dir() {
        return Err("it is a directory; only single files can be sent for now".into());
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or("that path does not name a file")?;
    // Readable now, rather than failing once the companion accepted.
    File::open(path).map_err(|err| describe(&err))?;
    Ok(FileFacts {
        name,
        size: metadata.len(),
        stamp: FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        },
    })
}

/// Why the file at `path` is not the one `stamp` describes any more, if it is not.
pub(crate) fn changed(path: &Path, stamp: &FileStamp) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == stamp.len && meta.modified().ok() == stamp.modified => None,
        Ok(_) => Some(FILE_CHANGED.to_owned()),
        Err(err) => Some(describe(&err)),
    }
}

/// The SHA-256 of a file being sent, over its first `upto` bytes.
#[derive(Default)]
pub(crate) struct RunningHash {
    hasher: Sha256,
    upto: u64,
}

impl RunningHash {
    /// Takes in the bytes at `offset` if they are the next ones (a resumed stream brings some
    /// again: they are hashed once).
    fn take(&mut self, offset: u64, data: &[u8]) {
        if offset == self.upto {
            self.hasher.update(data);
            self.upto += data.len() as u64;
        }
    }
}

/// One reader of a file being sent.
pub(crate) struct Reader<'a> {
    pub transfer: TransferId,
    pub stop: &'a AtomicBool,
    pub hash: &'a Mutex<RunningHash>,
    pub chunks: &'a mpsc::Sender<Event>,
}

impl Reader<'_> {
    /// Reads `from..size` of `path` in pieces of `chunk` bytes into `chunks`, until told to
    /// stop; then the SHA-256 of the whole file (`Event::FileRead`).
    pub fn read(&self, path: &Path, from: u64, size: u64, chunk: usize) {
        if let Err(why) = self.stream(path, from, size, chunk) {
            let event = Event::ReadFailed {
                transfer: self.transfer,
                why,
            };
            let _ = self.chunks.blocking_send(event);
        }
    }

    fn stream(&self, path: &Path, from: u64, size: u64, chunk: usize) -> Result<(), String> {
        let mut file = File::open(path).map_err(|err| describe(&err))?;
        // Bytes before `from` not hashed yet (the companion asked from further on than this
        // client has read, e.g. after it restarted): read through once, not sent.
        self.catch_up(&mut file, from)?;
        file.seek(SeekFrom::Start(from))
            .map_err(|err| describe(&err))?;
        let mut offset = from;
        while offset < size {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let want = usize::try_from(size - offset).map_or(chunk, |left| left.min(chunk));
            let mut data = vec![0; want];
            fill(&mut file, &mut data)?;
            self.lock().take(offset, &data);
            let event = Event::ChunkRead {
                transfer: self.transfer,
                offset,
                data,
            };
            if self.chunks.blocking_send(event).is_err() {
                return Ok(());
            }
            offset += want as u64;
        }
        // Normally every byte was just hashed; after an odd resume some may not have been.
        self.catch_up(&mut file, size)?;
        let sha256 = self.lock().hasher.clone().finalize().into();
        let event = Event::FileRead {
            transfer: self.transfer,
            sha256,
        };
        let _ = self.chunks.blocking_send(event);
        Ok(())
    }

    /// Hashes the file's bytes from where the running hash is up to `to`.
    fn catch_up(&self, file: &mut File, to: u64) -> Result<(), String> {
        let mut upto = self.lock().upto;
        if upto >= to {
            return Ok(());
        }
        file.seek(SeekFrom::Start(upto))
            .map_err(|err| describe(&err))?;
        let mut buffer = vec![0; HASH_BUFFER];
        while upto < to {
            if self.stop.load(Ordering::Relaxed) {
                return Err("stopped".into());
            }
            let want = usize::try_from(to - upto).map_or(HASH_BUFFER, |left| left.min(HASH_BUFFER));
            fill(file, &mut buffer[..want])?;
            self.lock().take(upto, &buffer[..want]);
            upto += want as u64;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunningHash> {
        self.hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Fills `data` from `file`; a file that ends first is an error, not a short piece.
fn fill(file: &mut File, data: &mut [u8]) -> Result<(), String> {
    let mut filled = 0;
    while filled < data.len() {
        match file.read(&mut data[filled..]) {
            Ok(0) => return Err("the file got shorter while it was being sent".into()),
            Ok(read) => filled += read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(describe(&err)),
        }
    }
    Ok(())
}

/// A file error in plain words.
pub(crate) fn describe(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound => "no such file or directory".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::AlreadyExists => "a file of that name is in the way".into(),
        ErrorKind::StorageFull => "the disk is full".into(),
        ErrorKind::FileTooLarge => "the file system takes no files this large".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
