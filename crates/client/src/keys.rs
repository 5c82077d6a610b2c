//! What the client remembers about its companions' keys: the key pinned for each nickname on
//! each relay (so a relay that swaps a key to read a conversation is noticed, as SSH notices a
//! changed host key) and the highest message counter accepted from each companion (so a relay
//! that sends an old envelope again under a new id is caught). Pure but for `FilePins`, which
//! keeps the pins in an owner-only file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use p2pchat_proto::{fold_nick, PublicKey};
use p2pchat_secure::{from_hex, to_hex, PinFile};

/// Where companion keys are pinned.
pub trait KeyPins: Send {
    /// The key pinned under `name`, if any (a line that does not parse counts as none).
    fn get(&self, name: &str) -> Option<PublicKey>;
    /// Pins `key` under `name`; the error says why it could not be kept.
    fn set(&mut self, name: &str, key: &PublicKey) -> Result<(), String>;
    /// Where the pins are kept, for messages.
    fn place(&self) -> String;
}

/// Pins kept in memory for one run: what an `App` starts with until `with_pins` hands it the
/// companions file (tests keep them here).
#[derive(Debug, Default)]
pub struct MemoryPins(HashMap<String, PublicKey>);

impl KeyPins for MemoryPins {
    fn get(&self, name: &str) -> Option<PublicKey> {
        self.0.get(name).copied()
    }

    fn set(&mut self, name: &str, key: &PublicKey) -> Result<(), String> {
        self.0.insert(name.to_owned(), *key);
        Ok(())
    }

    fn place(&self) -> String {
        "memory".into()
    }
}

/// Pins in a `PinFile` (`companions`, next to `known_hosts`), one `HOST:PORT/nick hexkey` a line.
#[derive(Debug)]
pub struct FilePins(PinFile);

impl FilePins {
    /// The pins in `path` (a missing file is empty; it is created on the first pin).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        PinFile::load(path).map(Self)
    }
}

impl KeyPins for FilePins {
    fn get(&self, name: &str) -> Option<PublicKey> {
        self.0.get(name).and_then(from_hex::<32>)
    }

    fn set(&mut self, name: &str, key: &PublicKey) -> Result<(), String> {
        self.0
            .set(name, &to_hex(key))
            .map_err(|err| err.to_string())
    }

    fn place(&self) -> String {
        self.0.path().display().to_string()
    }
}

/// The companions file that goes with a known-hosts file: same directory.
pub fn companions_file(known_hosts: &Path) -> PathBuf {
    known_hosts.with_file_name("companions")
}

/// The pin name of `nick` on the relay at `relay` (`HOST:PORT`): nicknames are per relay, and
/// folded so `Bob` and `bob` (one nickname to the relay) are one pin.
pub fn pin_name(relay: &str, nick: &str) -> String {
    format!("{relay}/{}", fold_nick(nick))
}

/// What a companion's key is, compared with what was pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// Not seen before: now pinned.
    First,
    /// The pinned key.
    Same,
    /// Another key than the pinned one (now pinned instead).
    Changed {
        /// The key pinned before.
        old: PublicKey,
    },
}

/// Checks `key` against the pin for `name` and pins it. The outcome stands even when writing
/// the pin failed (the error comes second), so the user is still warned.
pub fn check_pin(
    pins: &mut dyn KeyPins,
    name: &str,
    key: &PublicKey,
) -> (PinOutcome, Option<String>) {
    let outcome = match pins.get(name) {
        None => PinOutcome::First,
        Some(pinned) if pinned == *key => return (PinOutcome::Same, None),
        Some(old) => PinOutcome::Changed { old },
    };
    (outcome, pins.set(name, key).err())
}

/// Most companions whose counters are remembered; past it all are forgotten and learnt again
/// (until then a replay of an old message is caught only by its id). Only a client that
/// chats with thousands of nicknames in one run gets there.
const MAX_COUNTERS: usize = 4096;

/// The highest envelope counter accepted from each companion (folded nickname).
#[derive(Debug, Default)]
pub struct Replays {
    highest: HashMap<String, u64>,
}

impl Replays {
    /// A counter seen in history: raises the bar for live messages, never refused (history
    /// pages come in any order).
    pub fn seen(&mut self, companion: &str, counter: u64) {
        if self.highest.len() >= MAX_COUNTERS && !self.highest.contains_key(companion) {
            self.highest.clear();
        }
        let highest = self.highest.entry(companion.to_owned()).or_default();
        *highest = (*highest).max(counter);
    }

    /// A live message's counter: true if it is above every one accepted before (and it is now
    /// the highest), false for a replay.
    pub fn accept(&mut self, companion: &str, counter: u64) -> bool {
        if self
            .highest
            .get(companion)
            .is_some_and(|&highest| counter <= highest)
        {
            return false;
        }
        self.seen(companion, counter);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_go_first_same_changed() {
        let mut pins = MemoryPins::default();
        let name = pin_name("relay:1", "Bob");
        assert_eq!(name, "relay:1/bob");
        assert_eq!(
            check_pin(&mut pins, &name, &[1; 32]),
            (PinOutcome::First, None)
        );
        assert_eq!(
            check_pin(&mut pins, &name, &[1; 32]),
            (PinOutcome::Same, None)
        );
        assert_eq!(
            check_pin(&mut pins, &name, &[2; 32]),
            (PinOutcome::Changed { old: [1; 32] }, None)
        );
        assert_eq!(
            check_pin(&mut pins, &name, &[2; 32]),
            (PinOutcome::Same, None)
        );
    }

    #[test]
    fn file_pins_survive_a_reload() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = companions_file(&dir.path().join("known_hosts"));
        let mut pins = FilePins::load(&path).expect("empty pins");
        check_pin(&mut pins, "h:1/bob", &[7; 32]);
        let again = FilePins::load(&path).expect("pins");
        assert_eq!(again.get("h:1/bob"), Some([7; 32]));
        assert_eq!(again.get("h:1/alice"), None);
    }

    #[test]
    fn replays_are_counters_not_above_the_highest() {
        let mut replays = Replays::default();
        assert!(replays.accept("bob", 5));
        assert!(!replays.accept("bob", 5));
        assert!(!replays.accept("bob", 3));
        assert!(replays.accept("alice", 3), "counters are per companion");
        replays.seen("bob", 9);
        replays.seen("bob", 2);
        assert!(!replays.accept("bob", 8));
        assert!(replays.accept("bob", 10));
    }
}
