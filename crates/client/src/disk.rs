//! The disk work of file transfers, off the runner's loop: hashing a file to offer (a blocking
//! task), reading a file being sent (a blocking task per transfer, one chunk at a time into a
//! small queue the runner drains only when the connection has room), and writing files being
//! received (one writer thread, fed in order; the runner stops reading the network while its
//! queue is full, so memory stays bounded even when the disk is slower than the link). Results
//! come back as app events. The writer itself is `saving.rs`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use p2pchat_secure::TransferId;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Notify};

use crate::events::{Effect, Event, FileFacts, FileStamp};
use crate::saving::{write_files, Job};

/// Chunks read ahead for the files being sent (all transfers together): enough to keep the
/// link busy, few enough that a stopped transfer wastes little.
const READ_AHEAD: usize = 16;
/// Bytes read per `read` call when hashing.
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
    /// Readers under way: their stop flags and where they end.
    readers: HashMap<TransferId, (Arc<AtomicBool>, u64)>,
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    pending: Arc<AtomicUsize>,
    /// Notified when the writer's queue drops below `MAX_PENDING_WRITES`.
    pub write_room: Arc<Notify>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Disk {
    /// Starts the writer thread.
    pub fn new() -> Self {
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
            jobs: Some(jobs),
            pending,
            write_room,
            writer,
        }
    }

    /// Whether the writer can take the jobs one more network frame may bring.
    pub fn has_write_room(&self) -> bool {
        self.pending.load(Ordering::Relaxed) < crate::saving::MAX_PENDING_WRITES
    }

    /// Whether a file is being read for sending.
    pub fn is_reading(&self) -> bool {
        !self.readers.is_empty()
    }

    /// A piece arrived from a reader: forget the reader once it has read its last one.
    pub fn chunk_taken(&mut self, event: &Event) {
        let done = match event {
            Event::ChunkRead {
                transfer,
                offset,
                data,
            } => self
                .readers
                .get(transfer)
                .is_some_and(|(_, end)| offset + data.len() as u64 >= *end)
                .then_some(*transfer),
            Event::ReadFailed { transfer, .. } => Some(*transfer),
            _ => None,
        };
        if let Some(transfer) = done {
            self.readers.remove(&transfer);
        }
    }

    /// Carries out a file effect (others are ignored).
    pub fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::HashFile { transfer, path } => {
                let events = self.events_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let result = hash_file(&path);
                    let _ = events.send(Event::FileHashed { transfer, result });
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
                if let Some((old, _)) = self.readers.insert(transfer, (stop.clone(), size)) {
                    old.store(true, Ordering::Relaxed);
                }
                let chunks = self.chunks_tx.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(why) = stamp.and_then(|stamp| changed(&path, &stamp)) {
                        let _ = chunks.blocking_send(Event::ReadFailed { transfer, why });
                        return;
                    }
                    read_file(transfer, &path, from, size, chunk, &stop, &chunks);
                });
            }
            Effect::StopReading { transfer } => {
                if let Some((stop, _)) = self.readers.remove(&transfer) {
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
        for (stop, _) in self.readers.values() {
            stop.store(true, Ordering::Relaxed);
        }
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let joined = tokio::task::spawn_blocking(move || writer.join());
            let _ = tokio::time::timeout(patience, joined).await;
        }
    }
}

/// A file's name, size and SHA-256, read through in pieces (never whole into memory).
fn hash_file(path: &Path) -> Result<FileFacts, String> {
    let metadata = std::fs::metadata(path).map_err(|err| describe(&err))?;
    let stamp = FileStamp {
        len: metadata.len(),
        modified: metadata.modified().ok(),
    };
    if metadata.is_dir() {
        return Err("it is a directory; only single files can be sent for now".into());
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or("that path does not name a file")?;
    let mut file = File::open(path).map_err(|err| describe(&err))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; HASH_BUFFER];
    let mut size = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                hasher.update(&buffer[..read]);
                size += read as u64;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(describe(&err)),
        }
    }
    Ok(FileFacts {
        name,
        size,
        sha256: hasher.finalize().into(),
        stamp,
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

/// Reads `from..size` of `path` in pieces of `chunk` bytes into `chunks`, until told to stop.
fn read_file(
    transfer: TransferId,
    path: &Path,
    from: u64,
    size: u64,
    chunk: usize,
    stop: &AtomicBool,
    chunks: &mpsc::Sender<Event>,
) {
    let fail = |why: String| {
        let _ = chunks.blocking_send(Event::ReadFailed { transfer, why });
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) => return fail(describe(&err)),
    };
    if let Err(err) = file.seek(SeekFrom::Start(from)) {
        return fail(describe(&err));
    }
    let mut offset = from;
    while offset < size && !stop.load(Ordering::Relaxed) {
        let want = usize::try_from(size - offset).map_or(chunk, |left| left.min(chunk));
        let mut data = vec![0; want];
        let mut filled = 0;
        while filled < want {
            match file.read(&mut data[filled..]) {
                Ok(0) => return fail("the file got shorter while it was being sent".into()),
                Ok(read) => filled += read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return fail(describe(&err)),
            }
        }
        let event = Event::ChunkRead {
            transfer,
            offset,
            data,
        };
        if chunks.blocking_send(event).is_err() {
            return;
        }
        offset += want as u64;
    }
}

/// A file error in plain words.
pub(crate) fn describe(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound => "no such file or directory".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::AlreadyExists => "a file of that name is in the way".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
