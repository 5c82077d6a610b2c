//! Who owns which nickname. The first identity key to log in with a nickname owns it; later
//! logins with that nickname must prove they hold the same key (the signature checked in
//! `inbound`), until the owner releases it. The table lives in memory (a login must not wait
//! for the disk) and is appended to a file in the data dir, one line per change, so ownership
//! survives restarts: `+ KEY NICK` registers, `- NICK` releases. The file is compacted when the
//! relay starts. Nicknames are compared folded, as everywhere else.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use p2pchat_proto::{fold_nick, PublicKey};
use p2pchat_secure::{from_hex, to_hex};
use tracing::warn;

use crate::changelog::{read_text, ChangeLog};
use crate::lock;

/// Most nicknames the relay keeps owners for; registering beyond it is refused (an identity
/// can register many nicknames, and the table must not grow without limit).
pub const DEFAULT_MAX_OWNERS: usize = 1_000_000;

/// Why a nickname cannot be had with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    /// Another key owns it.
    #[error("the nickname {0} belongs to another identity key")]
    Owned(String),
    /// The table is full.
    #[error("this relay cannot register more nicknames (its limit of {0} is reached)")]
    Full(usize),
}

/// The nickname owners of one relay.
pub struct Owners {
    table: Mutex<HashMap<String, PublicKey>>,
    max: usize,
    log: Option<ChangeLog>,
}

impl Owners {
    /// Owners kept in memory only (lost when the relay stops).
    pub fn in_memory(max: usize) -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            max,
            log: None,
        }
    }

    /// The owners recorded in `path` (a missing file is an empty table), compacting the file,
    /// and recording changes there from now on.
    pub fn open(path: &Path, max: usize) -> io::Result<Self> {
        let table = read_log(path)?;
        let mut compacted = String::new();
        for (nick, key) in &table {
            compacted.push_str(&register_line(key, nick));
        }
        let log = ChangeLog::open(path, &compacted, "nickname owners")?;
        Ok(Self {
            table: Mutex::new(table),
            max,
            log: Some(log),
        })
    }

    /// Logs in `nick` with `key`: registers it if nobody owns it. Returns whether it was new.
    pub fn claim(&self, nick: &str, key: &PublicKey) -> Result<bool, OwnerError> {
        let folded = fold_nick(nick);
        let mut table = lock(&self.table);
        match table.get(&folded) {
            Some(owner) if owner == key => return Ok(false),
            Some(_) => return Err(OwnerError::Owned(nick.to_owned())),
            None if table.len() >= self.max => return Err(OwnerError::Full(self.max)),
            None => {}
        }
        table.insert(folded.clone(), *key);
        drop(table);
        self.record(register_line(key, &folded));
        Ok(true)
    }

    /// The key that owns `nick`, if any.
    pub fn key_of(&self, nick: &str) -> Option<PublicKey> {
        lock(&self.table).get(&fold_nick(nick)).copied()
    }

    /// Gives `nick` up, if `key` owns it. Returns whether it did.
    pub fn release(&self, nick: &str, key: &PublicKey) -> bool {
        let folded = fold_nick(nick);
        let mut table = lock(&self.table);
        if table.get(&folded) != Some(key) {
            return false;
        }
        table.remove(&folded);
        drop(table);
        self.record(format!("- {folded}\n"));
        true
    }

    fn record(&self, line: String) {
        if let Some(log) = &self.log {
            log.record(line);
        }
    }
}

fn register_line(key: &PublicKey, folded: &str) -> String {
    format!("+ {} {folded}\n", to_hex(key))
}

fn read_log(path: &Path) -> io::Result<HashMap<String, PublicKey>> {
    let text = read_text(path)?;
    let mut table = HashMap::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("+"), Some(key), Some(nick), None) => {
                if let Some(key) = from_hex::<32>(key) {
                    table.insert(nick.to_owned(), key);
                }
            }
            (Some("-"), Some(nick), None, None) => {
                table.remove(nick);
            }
            // A line cut short by a crash, or damage: what it said is lost, the rest stands.
            _ => warn!("⚠️ skipping an unreadable line in {}", path.display()),
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_first_key_owns_a_nickname_until_it_releases_it() {
        let owners = Owners::in_memory(10);
        assert_eq!(owners.claim("Bob", &[1; 32]), Ok(true));
        assert_eq!(owners.claim("bob", &[1; 32]), Ok(false));
        assert_eq!(
            owners.claim("BOB", &[2; 32]),
            Err(OwnerError::Owned("BOB".into()))
        );
        assert_eq!(owners.key_of("bOb"), Some([1; 32]));
        assert!(!owners.release("bob", &[2; 32]));
        assert!(owners.release("bob", &[1; 32]));
        assert_eq!(owners.claim("bob", &[2; 32]), Ok(true));
    }

    #[test]
    fn the_table_is_bounded() {
        let owners = Owners::in_memory(1);
        assert_eq!(owners.claim("a", &[1; 32]), Ok(true));
        assert_eq!(owners.claim("b", &[1; 32]), Err(OwnerError::Full(1)));
        assert_eq!(owners.claim("a", &[1; 32]), Ok(false));
    }

    #[test]
    fn ownership_survives_a_restart_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owners");
        {
            let owners = Owners::open(&path, 10).unwrap();
            owners.claim("alice", &[1; 32]).unwrap();
            owners.claim("bob", &[2; 32]).unwrap();
            owners.claim("carol", &[3; 32]).unwrap();
            assert!(owners.release("bob", &[2; 32]));
        }
        // Let the writer thread finish (it ends when `Owners` is dropped and the queue drains).
        for _ in 0..100 {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() == 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"+ 0102")
            .unwrap();
        let owners = Owners::open(&path, 10).unwrap();
        assert_eq!(owners.key_of("alice"), Some([1; 32]));
        assert_eq!(owners.key_of("bob"), None);
        assert_eq!(owners.key_of("carol"), Some([3; 32]));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "compacted: {text}");
    }
}
