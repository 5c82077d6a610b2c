//! What lets an interrupted download resume: next to each temporary file
//! (`.NAME.TAG.p2pchat-part`) a small state file (`….p2pchat-part.state`, owner-only, written
//! atomically) says which transfer it is, from whom (folded nickname and identity key), and the
//! offer's name and size. Chunks are written in order and only once they opened, so any
//! prefix of the temporary file is good data: where to resume is simply its length. When the
//! same companion is back, the downloads directory is looked through for their state files.
//! A state file is never trusted as a path: only names matching the pattern, inside the
//! downloads directory, that agree with their own contents, are used.

use std::path::{Path, PathBuf};

use p2pchat_proto::safe_file_name;
use p2pchat_secure::files::write_private;
use p2pchat_secure::{from_hex, to_hex, TransferId};

use crate::events::{FoundPart, PartRecord};
use crate::record::{read_small, Fields};
use crate::transfers::MAX_TRANSFERS;

/// The first line of a state file.
const MAGIC: &str = "p2pchat-part 2";
/// What a temporary file's name ends with.
const PART_SUFFIX: &str = ".p2pchat-part";
/// What a state file's name ends with.
const STATE_SUFFIX: &str = ".p2pchat-part.state";
/// Longest state file read (a name is at most 200 bytes; the rest is far smaller).
const MAX_STATE_BYTES: u64 = 4096;
/// Directory entries looked at, at most, when looking for state files (a huge downloads
/// directory costs a bounded moment).
const MAX_SCANNED: usize = 100_000;

/// `DIR/.NAME.1a2b3c4d.p2pchat-part`: the temporary file of `transfer`.
pub(crate) fn part_path(dir: &Path, transfer: &TransferId, name: &str) -> PathBuf {
    dir.join(format!(".{name}.{}{PART_SUFFIX}", tag(transfer)))
}

/// The state file that goes with the temporary file at `part`.
pub(crate) fn state_path(part: &Path) -> PathBuf {
    let mut path = part.as_os_str().to_owned();
    path.push(".state");
    PathBuf::from(path)
}

/// The first 4 bytes of the id in hex: tells apart temporary files of the same name.
fn tag(transfer: &TransferId) -> String {
    to_hex(&transfer[..4])
}

/// The state file's text (the name last: it is the only free-form field).
fn encode(transfer: &TransferId, name: &str, record: &PartRecord) -> String {
    format!(
        "{MAGIC}\ntransfer {}\ncompanion {}\nkey {}\nsize {}\nname {name}\n",
        to_hex(transfer),
        record.companion,
        to_hex(&record.key),
        record.size,
    )
}

/// Reads a state file's text back: the transfer, the name and the record.
fn decode(text: &str) -> Option<(TransferId, String, PartRecord)> {
    let mut fields = Fields::open(text, MAGIC)?;
    let transfer = from_hex::<16>(fields.next("transfer")?)?;
    let companion = fields.next("companion")?.to_owned();
    let key = from_hex::<32>(fields.next("key")?)?;
    let size = fields.next("size")?.parse().ok()?;
    let name = fields.next("name")?.to_owned();
    let record = PartRecord {
        companion,
        key,
        size,
    };
    Some((transfer, name, record))
}

/// Writes the state file of the temporary file at `part`, owner-only and replaced whole
/// (`write_private`), so a reader never sees half of one.
pub(crate) fn write_state(
    part: &Path,
    transfer: &TransferId,
    name: &str,
    record: &PartRecord,
) -> std::io::Result<PathBuf> {
    let path = state_path(part);
    write_private(&path, encode(transfer, name, record).as_bytes())?;
    Ok(path)
}

/// The interrupted downloads from `companion` (folded) with this `key` in `dir`, at most
/// `MAX_TRANSFERS`. Anything unreadable, foreign or inconsistent is passed over.
pub(crate) fn find_parts(dir: &Path, companion: &str, key: &[u8; 32]) -> Vec<FoundPart> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.take(MAX_SCANNED).flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if !file_name.starts_with('.') || !file_name.ends_with(STATE_SUFFIX) {
            continue;
        }
        if let Some(part) = check_state(dir, file_name, companion, key) {
            found.push(part);
            if found.len() >= MAX_TRANSFERS {
                break;
            }
        }
    }
    found
}

/// The state file `dir/file_name`, if it is a regular file of ours for this companion whose
/// temporary file is there.
fn check_state(dir: &Path, file_name: &str, companion: &str, key: &[u8; 32]) -> Option<FoundPart> {
    let path = dir.join(file_name);
    let (transfer, name, record) = decode(&read_small(&path, MAX_STATE_BYTES)?)?;
    if record.companion != companion || &record.key != key || safe_file_name(&name) != name {
        return None;
    }
    let part = part_path(dir, &transfer, &name);
    if state_path(&part) != path {
        return None; // the name and the contents disagree
    }
    let part_meta = std::fs::symlink_metadata(&part).ok()?;
    if !part_meta.is_file() || part_meta.len() > record.size {
        return None;
    }
    Some(FoundPart {
        transfer,
        name,
        size: record.size,
        have: part_meta.len(),
    })
}

/// Deletes a temporary file and its state file (either may be missing).
pub(crate) fn remove_part(part: &Path) {
    let _ = std::fs::remove_file(part);
    let _ = std::fs::remove_file(state_path(part));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PartRecord {
        PartRecord {
            companion: "nick2".into(),
            key: [5; 32],
            size: 10,
        }
    }

    #[test]
    fn state_files_are_found_for_their_companion_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_path(dir.path(), &[1; 16], "a.txt");
        std::fs::write(&part, b"12345").expect("write");
        let state = write_state(&part, &[1; 16], "a.txt", &record()).expect("state");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&state)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let found = find_parts(dir.path(), "nick2", &[5; 32]);
        assert_eq!(
            found,
            [FoundPart {
                transfer: [1; 16],
                name: "a.txt".into(),
                size: 10,
                have: 5,
            }]
        );
        assert!(find_parts(dir.path(), "nick3", &[5; 32]).is_empty());
        assert!(find_parts(dir.path(), "nick2", &[4; 32]).is_empty());
        // A state file whose contents name another file is not followed.
        let other = dir.path().join(".b.txt.01010101.p2pchat-part.state");
        std::fs::copy(&state, &other).expect("copy");
        std::fs::write(dir.path().join("garbage.p2pchat-part.state"), "x").expect("write");
        std::fs::write(dir.path().join(".c.p2pchat-part.state"), "junk").expect("write");
        assert_eq!(find_parts(dir.path(), "nick2", &[5; 32]).len(), 1);
        remove_part(&part);
        assert!(find_parts(dir.path(), "nick2", &[5; 32]).is_empty());
        assert!(!state.exists());
    }

    #[test]
    fn state_text_round_trips_and_rejects_damage() {
        let text = encode(&[1; 16], "a b.txt", &record());
        assert_eq!(decode(&text), Some(([1; 16], "a b.txt".into(), record())));
        assert_eq!(decode(&text.replace("size 10", "size x")), None);
        assert_eq!(decode(&text.replace(MAGIC, "other")), None);
        assert_eq!(decode(""), None);
    }
}
