//! The file transfers of the current conversation, as plain data: which side we are on, how far
//! each one is, and the words for sizes. `App` drives them (`files.rs`, `receiving.rs`); the
//! runner does their disk work. Pure. An interrupted transfer resumes: the sender keeps it
//! paused, the receiver keeps its temporary file (`resume.rs`) and asks again from where it is.

use std::path::PathBuf;

use p2pchat_secure::TransferId;

use crate::events::FileStamp;

/// Bytes of file per `Chunk` at most (less when the relay's message limit is smaller): big
/// enough that a fast link is not held back by per-frame costs, small enough that a chat line
/// queued behind a few of them still goes out promptly.
pub const CHUNK: usize = 64 * 1024;
/// Most transfers (offers included) at once: offers beyond it are declined, so a companion
/// cannot grow this without bound.
pub const MAX_TRANSFERS: usize = 16;
/// Pieces from ahead a resyncing receiver drops before it asks again from where it is: more
/// than what can still be on its way from an interrupted stream (the sender reads 16 ahead,
/// and the relay and the sockets hold a few MiB).
pub const RESYNC_AFTER: u32 = 256;
/// Files waiting for a transfer slot, at most (a `/send` of more is refused): bounds what a
/// huge directory can queue.
pub const MAX_QUEUED: usize = 1000;

/// Which way the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// We send the file at `path`.
    Sending {
        /// The file on disk.
        path: PathBuf,
        /// Its length and modification time when offered: it must not change before it is sent.
        stamp: Option<FileStamp>,
    },
    /// We receive it into `dir`.
    Receiving {
        /// The downloads directory.
        dir: PathBuf,
    },
}

/// How far a transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Sender: looking the file up (its size) before offering it.
    Looking,
    /// The offer is out (or in), with no answer yet.
    Offered,
    /// Bytes are moving; `next` is the offset of the next chunk.
    Moving {
        /// Next offset.
        next: u64,
    },
    /// Every byte went. Sender: the SHA-256 follows when the reader is through (`Sent`), then
    /// it waits for `Received`. Receiver: the file is checked and named once the sender's
    /// SHA-256 is here (`sha256`).
    Checking,
    /// Sender: the companion or the connection went; it goes on when they accept it again.
    Paused {
        /// The offset it had reached.
        next: u64,
    },
}

/// One file transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Its id.
    pub id: TransferId,
    /// Which way.
    pub side: Side,
    /// Its file name: safe to show and to create.
    pub name: String,
    /// Bytes in all.
    pub size: u64,
    /// SHA-256 of the whole file, once the reader was through it (sender) or the sender sent
    /// it (receiver).
    pub sha256: Option<[u8; 32]>,
    /// How far it is.
    pub stage: Stage,
    /// When it was made, for "the latest offer".
    pub order: u64,
    /// Receiving again after an interruption: pieces of the interrupted stream may still come
    /// before the sender acts on our new accept; they are dropped until the one at `next`.
    pub resyncing: bool,
    /// Pieces from ahead dropped while resyncing since the last one taken: past
    /// `RESYNC_AFTER` of them the sender's new stream has surely lost its start, and the
    /// receiver asks again.
    pub strays: u32,
    /// In a room, the member (folded) who offers a file we receive; `None` for a pair's and
    /// for the files we send.
    pub author: Option<String>,
}

impl Transfer {
    /// Whether we receive it.
    pub fn receiving(&self) -> bool {
        matches!(self.side, Side::Receiving { .. })
    }

    /// Whether `/cancel` stops it: not an offer to us (that is `/decline`), nor a file we
    /// received whole and are checking and naming (too late to stop).
    pub fn cancellable(&self) -> bool {
        !(self.pending_offer() || self.finishing())
    }

    /// Whether it is a file we received whole, with its SHA-256: being checked and named.
    pub fn finishing(&self) -> bool {
        self.receiving() && self.stage == Stage::Checking && self.sha256.is_some()
    }

    /// Whether it is a file we receive that is kept to resume when it stops: bytes are
    /// moving, or all are here and the sender's SHA-256 is not.
    pub fn resumable(&self) -> bool {
        self.receiving()
            && match self.stage {
                Stage::Moving { .. } => true,
                Stage::Checking => self.sha256.is_none(),
                _ => false,
            }
    }

    /// Whether it is an offer to us not answered yet.
    pub fn pending_offer(&self) -> bool {
        self.receiving() && self.stage == Stage::Offered
    }
}

/// The transfers under way, at most `MAX_TRANSFERS`.
#[derive(Debug, Default)]
pub struct Transfers {
    list: Vec<Transfer>,
    made: u64,
}

impl Transfers {
    /// Whether no more may start.
    pub fn is_full(&self) -> bool {
        self.list.len() >= MAX_TRANSFERS
    }

    /// Whether any is doing something (an offer to us that nobody answered does not count).
    pub fn busy(&self) -> bool {
        self.list.iter().any(|transfer| !transfer.pending_offer())
    }

    /// Adds one (the caller checked `is_full`); a transfer with the same id is replaced.
    pub fn insert(&mut self, mut transfer: Transfer) {
        self.made += 1;
        transfer.order = self.made;
        self.list.retain(|known| known.id != transfer.id);
        self.list.push(transfer);
    }

    /// The transfer with this id.
    pub fn get(&self, id: &TransferId) -> Option<&Transfer> {
        self.list.iter().find(|transfer| &transfer.id == id)
    }

    /// The transfer with this id, to change.
    pub fn get_mut(&mut self, id: &TransferId) -> Option<&mut Transfer> {
        self.list.iter_mut().find(|transfer| &transfer.id == id)
    }

    /// Takes the transfer with this id out.
    pub fn remove(&mut self, id: &TransferId) -> Option<Transfer> {
        let index = self.list.iter().position(|transfer| &transfer.id == id)?;
        Some(self.list.remove(index))
    }

    /// Takes every transfer out.
    pub fn take_all(&mut self) -> Vec<Transfer> {
        std::mem::take(&mut self.list)
    }

    /// Takes out those that `pick` chooses.
    pub fn take_where(&mut self, pick: impl Fn(&Transfer) -> bool) -> Vec<Transfer> {
        let (taken, kept) = std::mem::take(&mut self.list).into_iter().partition(pick);
        self.list = kept;
        taken
    }

    /// The ids of those that `pick` chooses.
    pub fn ids_where(&self, pick: impl Fn(&Transfer) -> bool) -> Vec<TransferId> {
        self.list
            .iter()
            .filter(|transfer| pick(transfer))
            .map(|transfer| transfer.id)
            .collect()
    }

    /// The offer to us that `choice` names: the latest when `None`, else the one whose name is
    /// `choice` (ignoring case), or the `choice`th pending offer counting from 1.
    pub fn pending_offer(&self, choice: Option<&str>) -> Option<TransferId> {
        let mut offers: Vec<&Transfer> = self.list.iter().filter(|t| t.pending_offer()).collect();
        offers.sort_by_key(|transfer| transfer.order);
        let found = match choice {
            None => offers.last(),
            Some(choice) => offers
                .iter()
                .find(|transfer| transfer.name.eq_ignore_ascii_case(choice))
                .or_else(|| {
                    let n: usize = choice.parse().ok()?;
                    offers.get(n.checked_sub(1)?)
                }),
        };
        found.map(|transfer| transfer.id)
    }
}

/// `48% (100.7 MB of 209.7 MB)`: how far `done` of `total` is.
pub fn share(done: u64, total: u64) -> String {
    let percent = u128::from(done) * 100 / u128::from(total.max(1));
    format!("{percent}% ({} of {})", human_size(done), human_size(total))
}

/// `512 bytes`, `2.1 MB`, `1.5 GB`: decimal units, as file managers show them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return match bytes {
            1 => "1 byte".to_owned(),
            n => format!("{n} bytes"),
        };
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: u8, name: &str) -> Transfer {
        Transfer {
            id: [id; 16],
            side: Side::Receiving { dir: ".".into() },
            name: name.into(),
            size: 1,
            sha256: None,
            stage: Stage::Offered,
            order: 0,
            resyncing: false,
            strays: 0,
            author: None,
        }
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(2_100_000), "2.1 MB");
        assert_eq!(human_size(999_999), "1.0 MB");
        assert_eq!(human_size(1_500_000_000), "1.5 GB");
        assert_eq!(
            share(100_700_000, 209_700_000),
            "48% (100.7 MB of 209.7 MB)"
        );
    }

    #[test]
    fn offers_are_chosen_latest_first_by_name_or_by_number() {
        let mut transfers = Transfers::default();
        transfers.insert(offer(1, "a.txt"));
        transfers.insert(offer(2, "B.txt"));
        assert_eq!(transfers.pending_offer(None), Some([2; 16]));
        assert_eq!(transfers.pending_offer(Some("A.TXT")), Some([1; 16]));
        assert_eq!(transfers.pending_offer(Some("2")), Some([2; 16]));
        assert_eq!(transfers.pending_offer(Some("3")), None);
        assert_eq!(transfers.pending_offer(Some("0")), None);
        assert!(!transfers.busy());
        if let Some(transfer) = transfers.get_mut(&[1; 16]) {
            transfer.stage = Stage::Moving { next: 0 };
        }
        assert!(transfers.busy());
        assert_eq!(transfers.pending_offer(None), Some([2; 16]));
    }
}
