//! The disk side of transfers on a real temporary directory: hashing, reading in order,
//! temporary files, SHA-256 checks and names that never overwrite.

use std::io::Write;

use super::*;
use crate::events::{FileStamp, SaveError};
use crate::saving::{create_part, finish_part, numbered, write_files, Job};

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[test]
fn numbered_names_go_before_the_extension() {
    assert_eq!(numbered("report.pdf", 0), "report.pdf");
    assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
    assert_eq!(numbered("README", 2), "README (2)");
    assert_eq!(numbered("archive.tar.gz", 1), "archive.tar (1).gz");
}

#[test]
fn a_verified_file_never_overwrites_one_already_there() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("report.pdf"), b"mine").expect("write");
    for expected in ["report (1).pdf", "report (2).pdf"] {
        let mut part = create_part(&[1; 16], dir.path().into(), "report.pdf".into())
            .or_else(|_| create_part(&[2; 16], dir.path().into(), "report.pdf".into()))
            .expect("part");
        part.file.write_all(b"theirs").expect("write");
        part.hasher.update(b"theirs");
        let part_path = part.path.clone();
        assert_eq!(finish_part(part, &sha(b"theirs")), Ok(expected.to_owned()));
        assert!(!part_path.exists(), "the temporary file is gone");
    }
    assert_eq!(
        std::fs::read(dir.path().join("report.pdf")).expect("read"),
        b"mine"
    );
    assert_eq!(
        std::fs::read(dir.path().join("report (2).pdf")).expect("read"),
        b"theirs"
    );
}

#[test]
fn a_mismatch_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut part = create_part(&[1; 16], dir.path().into(), "a.txt".into()).expect("part");
    part.file.write_all(b"altered").expect("write");
    part.hasher.update(b"altered");
    assert_eq!(
        finish_part(part, &sha(b"original")),
        Err(SaveError::Mismatch)
    );
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
}

#[cfg(unix)]
#[test]
fn temporary_files_are_exclusive_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let part = create_part(&[1; 16], dir.path().into(), "a.txt".into()).expect("part");
    let mode = std::fs::metadata(&part.path)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(part
        .path
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with(".a.txt.")));
    assert!(create_part(&[1; 16], dir.path().into(), "a.txt".into()).is_err());
}

#[test]
fn a_file_to_offer_is_looked_at_and_what_cannot_be_sent_is_explained() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data.bin");
    std::fs::write(&path, vec![7; 200_000]).expect("write");
    let facts = look_at_file(&path).expect("looked at");
    assert_eq!(
        facts,
        FileFacts {
            name: "data.bin".into(),
            size: 200_000,
            stamp: FileStamp {
                len: 200_000,
                modified: std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
            },
        }
    );
    assert!(look_at_file(dir.path()).unwrap_err().contains("directory"));
    assert_eq!(
        look_at_file(&dir.path().join("nope")).unwrap_err(),
        "no such file or directory"
    );
}

/// Runs a reader of `path` over `from..size` to its end; returns what it reported.
fn read(path: &Path, hash: &Mutex<RunningHash>, from: u64, size: u64, chunk: usize) -> Vec<Event> {
    let (tx, mut rx) = mpsc::channel(64);
    let reader = Reader {
        transfer: [1; 16],
        stop: &AtomicBool::new(false),
        hash,
        chunks: &tx,
    };
    reader.read(path, from, size, chunk);
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    events
}

/// (offset, length) of each piece read, and the SHA-256 reported at the end if any.
fn pieces(events: &[Event], bytes: &[u8]) -> (Vec<(u64, usize)>, Option<[u8; 32]>) {
    let mut pieces = Vec::new();
    let mut digest = None;
    for event in events {
        match event {
            Event::ChunkRead { offset, data, .. } => {
                assert_eq!(
                    data[..],
                    bytes[*offset as usize..*offset as usize + data.len()]
                );
                pieces.push((*offset, data.len()));
            }
            Event::FileRead { sha256, .. } => digest = Some(*sha256),
            other => panic!("unexpected {other:?}"),
        }
    }
    (pieces, digest)
}

#[test]
fn files_are_read_in_order_and_hashed_once_as_they_go() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data.bin");
    let bytes: Vec<u8> = (0..250u8).collect();
    std::fs::write(&path, &bytes).expect("write");
    let hash = Mutex::default();
    assert_eq!(
        pieces(&read(&path, &hash, 0, 250, 100), &bytes),
        (vec![(0, 100), (100, 100), (200, 50)], Some(sha(&bytes)))
    );
    // Resumed streams (from before or after where the hash is): the SHA-256 is the same, and
    // bytes sent again are not hashed twice.
    for from in [0, 50, 250] {
        let (_, digest) = pieces(&read(&path, &hash, from, 250, 100), &bytes);
        assert_eq!(digest, Some(sha(&bytes)), "from {from}");
    }
    // A reader that starts further on than anything hashed reads the skipped bytes through.
    let fresh = Mutex::default();
    assert_eq!(
        pieces(&read(&path, &fresh, 150, 250, 100), &bytes),
        (vec![(150, 100)], Some(sha(&bytes)))
    );
    // Shorter than offered: an error, not a short file, and no SHA-256.
    let events = read(&path, &Mutex::default(), 0, 300, 200);
    assert!(matches!(
        events[..],
        [Event::ChunkRead { .. }, Event::ReadFailed { .. }]
    ));
}

/// Runs the writer over `jobs` until they are done; returns what it reported.
fn run_writer(jobs: Vec<Job>) -> Vec<Event> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let pending = AtomicUsize::new(jobs.len());
    for job in jobs {
        tx.send(job).expect("queued");
    }
    drop(tx);
    write_files(&rx, &events_tx, &pending, &Notify::new());
    let mut reported = Vec::new();
    while let Ok(event) = events.try_recv() {
        reported.push(event);
    }
    reported
}

#[test]
fn an_interrupted_download_is_kept_and_resumed_over_its_prefix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = crate::events::PartRecord {
        companion: "nick2".into(),
        key: [5; 32],
        size: 11,
    };
    let transfer = [3; 16];
    let (name, path) = ("a.txt".to_owned(), dir.path().to_path_buf());
    let first = run_writer(vec![
        Job::Create {
            transfer,
            dir: path.clone(),
            name: name.clone(),
            record,
        },
        Job::Write {
            transfer,
            data: b"hello wo".to_vec(),
        },
        Job::Close { transfer },
    ]);
    assert!(first.is_empty(), "{first:?}");
    let found = crate::resume::find_parts(dir.path(), "nick2", &[5; 32]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].have, 8);
    // Resumed from 5 (as if only that much had been on disk when asked): the SHA-256 of the
    // kept bytes is worked out again, the rest appended.
    let second = run_writer(vec![
        Job::Resume {
            transfer,
            dir: path.clone(),
            name,
            from: 5,
        },
        Job::Write {
            transfer,
            data: b" world".to_vec(),
        },
        Job::Finish {
            transfer,
            sha256: sha(b"hello world"),
        },
    ]);
    assert_eq!(
        second,
        [Event::FileSaved {
            transfer,
            result: Ok("a.txt".into()),
        }]
    );
    assert_eq!(
        std::fs::read(dir.path().join("a.txt")).expect("read"),
        b"hello world"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(left.len(), 1, "no temporary or state file is left");
    // Resuming what is not there fails and leaves nothing.
    let failed = run_writer(vec![Job::Resume {
        transfer,
        dir: path,
        name: "gone.txt".into(),
        from: 5,
    }]);
    assert!(matches!(failed[..], [Event::WriteFailed { .. }]));
}

#[test]
fn what_is_typed_after_send_is_listed_as_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::write(root.join("a b.txt"), b"1").expect("write");
    std::fs::write(root.join("c.txt"), b"2").expect("write");
    std::fs::create_dir_all(root.join("photos/2026")).expect("mkdir");
    std::fs::write(root.join("photos/z.jpg"), b"3").expect("write");
    std::fs::write(root.join("photos/2026/y.jpg"), b"4").expect("write");
    std::fs::create_dir(root.join("empty")).expect("mkdir");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root, root.join("photos/loop")).expect("symlink");
    let at = |name: &str| root.join(name);
    let typed = |text: String| list_files(SendSpec::Typed(text));
    // A path with a space, as it is or quoted.
    let spaced = at("a b.txt").display().to_string();
    assert_eq!(typed(spaced.clone()), (vec![at("a b.txt")], vec![]));
    assert_eq!(typed(format!("'{spaced}'")), (vec![at("a b.txt")], vec![]));
    // Several, quoted as in a shell; a directory stands for its files (sorted, recursive,
    // links inside not followed).
    let (files, problems) = typed(format!(
        "'{spaced}' {} {}",
        at("c.txt").display(),
        at("photos").display()
    ));
    assert_eq!(
        files,
        [
            at("a b.txt"),
            at("c.txt"),
            at("photos/2026/y.jpg"),
            at("photos/z.jpg")
        ]
    );
    assert!(problems.is_empty(), "{problems:?}");
    // What cannot be sent is said, path by path; the rest still goes.
    let (files, problems) = list_files(SendSpec::Given(vec![at("nope"), at("empty"), at("c.txt")]));
    assert_eq!(files, [at("c.txt")]);
    assert_eq!(
        problems,
        [
            format!("{}: no such file or directory", at("nope").display()),
            format!("{}: the directory has no files", at("empty").display()),
        ]
    );
    assert_eq!(
        typed("'unclosed".into()).1,
        ["'unclosed: a quote is not closed"]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_said_in_plain_words() {
    // /dev/full fails every write with ENOSPC, as a full disk does.
    let mut full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let err = full.write_all(&[0; 4096]).expect_err("a full disk");
    assert_eq!(describe(&err), "the disk is full");
}
