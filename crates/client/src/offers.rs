//! What lets a file being sent survive a restart of the sender: each offer made is recorded in
//! a small file (`OUTGOING/TRANSFER.offer`, owner-only, written atomically) saying to whom
//! (folded nickname and identity key) and which file (path, size, modification time). The
//! record goes when the transfer ends (received, declined, cancelled, failed); it stays when
//! the client leaves or dies. When the same companion is back, their records are loaded: the
//! companion's accept (their receiver asks again from the bytes it has) finds the transfer
//! again, and `--send` of the same unchanged file takes the old offer up instead of making a
//! new one. Runner side; `App` only sees `SavedOffer`s.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use p2pchat_secure::files::write_private;
use p2pchat_secure::{from_hex, to_hex, TransferId};

use crate::events::{FileStamp, SavedOffer};
use crate::record::{read_small, Fields};
use crate::transfers::MAX_TRANSFERS;

/// The first line of a record.
const MAGIC: &str = "p2pchat-offer 1";
/// What a record's name ends with.
const SUFFIX: &str = ".offer";
/// Longest record read.
const MAX_RECORD_BYTES: u64 = 16 * 1024;
/// Directory entries looked at, at most.
const MAX_SCANNED: usize = 10_000;

/// `OUTGOING/TRANSFER.offer`.
fn record_path(dir: &Path, transfer: &TransferId) -> PathBuf {
    dir.join(format!("{}{SUFFIX}", to_hex(transfer)))
}

fn encode(offer: &SavedOffer) -> Option<String> {
    let path = offer.path.to_str().filter(|path| !path.contains('\n'))?;
    let modified = match offer.stamp.modified?.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => format!("{}.{:09}", since.as_secs(), since.subsec_nanos()),
        Err(_) => return None,
    };
    Some(format!(
        "{MAGIC}\ntransfer {}\ncompanion {}\nkey {}\nsize {}\nmodified {modified}\nname {}\npath {path}\n",
        to_hex(&offer.transfer),
        offer.companion,
        to_hex(&offer.key),
        offer.stamp.len,
        offer.name,
    ))
}

fn decode(text: &str) -> Option<SavedOffer> {
    let mut fields = Fields::open(text, MAGIC)?;
    let transfer = from_hex::<16>(fields.next("transfer")?)?;
    let companion = fields.next("companion")?.to_owned();
    let key = from_hex::<32>(fields.next("key")?)?;
    let size: u64 = fields.next("size")?.parse().ok()?;
    let (secs, nanos) = fields.next("modified")?.split_once('.')?;
    let modified = SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(secs.parse().ok()?, nanos.parse().ok()?))?;
    let name = fields.next("name")?.to_owned();
    let path = PathBuf::from(fields.next("path")?);
    Some(SavedOffer {
        transfer,
        companion,
        key,
        name,
        path,
        stamp: FileStamp {
            len: size,
            modified: Some(modified),
        },
    })
}

/// Records `offer` in `dir` (created owner-only if missing). An offer that cannot be recorded
/// (a path that is not UTF-8, a file system without modification times) just does not survive
/// a restart.
pub(crate) fn remember(dir: &Path, offer: &SavedOffer) -> std::io::Result<()> {
    let Some(text) = encode(offer) else {
        return Ok(());
    };
    write_private(&record_path(dir, &offer.transfer), text.as_bytes())
}

/// Deletes the record of `transfer` (it may be missing).
pub(crate) fn forget(dir: &Path, transfer: &TransferId) {
    let _ = std::fs::remove_file(record_path(dir, transfer));
}

/// The recorded offers to `companion` (folded) with this `key`, at most `MAX_TRANSFERS`.
/// Anything unreadable, foreign or inconsistent is passed over.
pub(crate) fn find(dir: &Path, companion: &str, key: &[u8; 32]) -> Vec<SavedOffer> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.take(MAX_SCANNED).flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "offer") {
            continue;
        }
        let Some(offer) = read_small(&path, MAX_RECORD_BYTES).and_then(|text| decode(&text)) else {
            continue;
        };
        if offer.companion == companion
            && &offer.key == key
            && record_path(dir, &offer.transfer) == path
        {
            found.push(offer);
            if found.len() >= MAX_TRANSFERS {
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(transfer: u8, companion: &str) -> SavedOffer {
        SavedOffer {
            transfer: [transfer; 16],
            companion: companion.into(),
            key: [5; 32],
            name: "a b.txt".into(),
            path: "/tmp/a b.txt".into(),
            stamp: FileStamp {
                len: 123,
                modified: SystemTime::UNIX_EPOCH.checked_add(Duration::new(1_795_624_800, 5)),
            },
        }
    }

    #[test]
    fn offers_are_recorded_found_for_their_companion_and_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outgoing = dir.path().join("outgoing");
        remember(&outgoing, &offer(1, "nick2")).expect("recorded");
        remember(&outgoing, &offer(2, "nick3")).expect("recorded");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |path: &Path| std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&outgoing), 0o700);
            assert_eq!(mode(&record_path(&outgoing, &[1; 16])), 0o600);
        }
        assert_eq!(find(&outgoing, "nick2", &[5; 32]), [offer(1, "nick2")]);
        assert!(find(&outgoing, "nick2", &[4; 32]).is_empty(), "another key");
        // A record under another transfer's name, or garbage, is passed over.
        std::fs::copy(
            record_path(&outgoing, &[1; 16]),
            record_path(&outgoing, &[9; 16]),
        )
        .expect("copy");
        std::fs::write(outgoing.join("junk.offer"), "junk").expect("write");
        assert_eq!(find(&outgoing, "nick2", &[5; 32]).len(), 1);
        forget(&outgoing, &[1; 16]);
        assert!(find(&outgoing, "nick2", &[5; 32]).is_empty());
        assert!(find(&dir.path().join("missing"), "nick2", &[5; 32]).is_empty());
    }
}
