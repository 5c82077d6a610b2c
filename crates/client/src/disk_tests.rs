//! The disk side of transfers on a real temporary directory: hashing, reading in order,
//! temporary files, SHA-256 checks and names that never overwrite.

use std::io::Write;

use super::*;
use crate::events::SaveError;
use crate::saving::{create_part, finish_part, numbered};

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
fn hashing_streams_and_explains_what_cannot_be_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data.bin");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).expect("write");
    let facts = hash_file(&path).expect("hashed");
    assert_eq!(
        facts,
        FileFacts {
            name: "data.bin".into(),
            size: 200_000,
            sha256: sha(&bytes),
        }
    );
    assert!(hash_file(dir.path()).unwrap_err().contains("directory"));
    assert_eq!(
        hash_file(&dir.path().join("nope")).unwrap_err(),
        "no such file or directory"
    );
}

#[test]
fn files_are_read_in_order_in_chunks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data.bin");
    let bytes: Vec<u8> = (0..250u8).collect();
    std::fs::write(&path, &bytes).expect("write");
    let (tx, mut rx) = mpsc::channel(16);
    read_file([1; 16], &path, 50, 250, 100, &AtomicBool::new(false), &tx);
    let mut pieces = Vec::new();
    while let Ok(Event::ChunkRead { offset, data, .. }) = rx.try_recv() {
        pieces.push((offset, data.len()));
        assert_eq!(data, bytes[offset as usize..offset as usize + data.len()]);
    }
    assert_eq!(pieces, [(50, 100), (150, 100)]);
    // Shorter than offered: an error, not a short file.
    read_file([1; 16], &path, 0, 300, 200, &AtomicBool::new(false), &tx);
    assert!(matches!(rx.try_recv(), Ok(Event::ChunkRead { .. })));
    assert!(matches!(rx.try_recv(), Ok(Event::ReadFailed { .. })));
}
