//! End-to-end encryption for rooms with sender keys (the shape of Signal's groups): each member
//! makes a random sender key, sends it to every other member wrapped for that member alone, and
//! seals its messages once with it, so the relay stores and forwards ciphertext only. A client
//! makes a new key (the next epoch) whenever the member list changes, so someone who joins later
//! cannot read what was said before, and someone who left cannot read what follows. Every member
//! holds every sender key, so the AEAD alone would let any of them write as another: each
//! envelope is therefore also signed with its author's identity key.
//!
//! Integers are big-endian. Room envelopes start with version `2` (pair envelopes use `1`) and
//! a kind byte:
//!
//! - `KEYS` (`0x10`): `2`, `0x10`, epoch (u32), count (u16), then `count` entries of 80 bytes —
//!   recipient (the first 8 bytes of its identity key), nonce (24), wrapped sender key (32) and
//!   its tag (16) — then the author's signature (64).
//! - `MESSAGE` (`0x11`): `2`, `0x11`, epoch (u32), nonce (24), the ciphertext and tag (16) of the
//!   plaintext pair envelopes hold (text lines or a file control, see `e2e`), then the author's
//!   signature (64).
//!
//! The signature (Ed25519, verified strictly) covers `ROOM_CONTEXT`, the room's and the author's
//! folded names (each a u8 length and UTF-8), the message id, and every envelope byte before it.
//! A sender key is wrapped with XChaCha20-Poly1305 under HKDF-SHA256 of the static X25519 secret
//! the author shares with the recipient (as `Channel`'s; info `p2pchat room wrap v1\0`, lower
//! key, higher key), with associated data `ROOM_CONTEXT`, room, author, epoch, and the
//! recipient's whole key. A message is sealed with XChaCha20-Poly1305 under the sender key with
//! associated data `ROOM_CONTEXT`, room, author, epoch and message id. Nonces are random.
//!
//! Keys live in memory only. Because wrapping is static-static, the `KEYS` envelopes a room's
//! history holds for a client open again after a restart, and so do the messages they cover;
//! the client's own earlier keys, which it never sends to itself, are gone. This module has no
//! sockets and no clock: the caller says when the members change.

use std::collections::{HashMap, VecDeque};

use p2pchat_proto::{MessageId, PublicKey};
use zeroize::Zeroizing;

use crate::e2e::{
    write_file, write_text, E2eError, Plain, LINE_HEAD, NONCE_LEN, PLAIN_HEAD, TAG_LEN,
};
use crate::identity::Identity;
use crate::transfer::FileControl;

#[path = "room_chunk.rs"]
mod chunk;
#[path = "room_envelope.rs"]
mod envelope;
#[path = "room_wrap.rs"]
mod wrap;

pub use chunk::CHUNK_OVERHEAD;

use envelope::{associated_data, keys_envelope, names, verified};
pub use wrap::MAX_WRAP_KEYS;

/// The room envelope format this version writes and reads.
pub const ROOM_VERSION: u8 = 2;
/// Envelope kind: a sender key for some members.
pub const KIND_KEYS: u8 = 0x10;
/// Envelope kind: a message sealed with a sender key.
pub const KIND_MESSAGE: u8 = 0x11;
/// Envelope kind: a piece of a file sent to the room (`room_chunk.rs`).
pub const KIND_CHUNK: u8 = 0x12;
/// Most recipients in one `KEYS` envelope: 700 entries make 56,072 bytes, so the envelope fits
/// a 64 KiB message with room to spare.
pub const MAX_RECIPIENTS: usize = 700;
/// Bytes of a recipient's identity key that name it in a `KEYS` entry.
pub const RECIPIENT_PREFIX: usize = 8;
/// Sender key bytes.
pub const KEY_LEN: usize = 32;
/// Bytes of one `KEYS` entry: recipient prefix, nonce, wrapped key, tag.
pub const ENTRY_LEN: usize = RECIPIENT_PREFIX + NONCE_LEN + KEY_LEN + TAG_LEN;
/// Signature bytes (Ed25519).
pub const SIGNATURE_LEN: usize = 64;
/// Bytes before every envelope's body: version, kind, epoch.
const HEAD: usize = 1 + 1 + 4;
/// Bytes a `MESSAGE` envelope adds to its plaintext.
pub const MESSAGE_OVERHEAD: usize = HEAD + NONCE_LEN + TAG_LEN + SIGNATURE_LEN;
/// Epochs remembered per author (own ones included); the oldest is forgotten first. Enough to
/// read messages still in flight across several member changes in a row.
pub const MAX_EPOCHS_PER_AUTHOR: usize = 8;
/// Other authors whose keys are remembered; the one given a key longest ago is forgotten
/// first. Peers choose how many nicknames send keys, so this bounds what they can make us hold.
pub const MAX_AUTHORS: usize = 4096;

/// A sender key, wiped from memory when dropped.
type SenderKey = Zeroizing<[u8; KEY_LEN]>;

/// Why a room envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// Not a room envelope this version reads, or its contents are malformed.
    #[error(transparent)]
    Envelope(#[from] E2eError),
    /// The signature is not the author's over this envelope, id, room and name.
    #[error("its signature is not its author's (altered on the way, or written by someone else)")]
    BadSignature,
    /// No key for the author's epoch: written before this client joined, or its key has not
    /// arrived (or was forgotten).
    #[error("there is no key to read it: it was written before you joined the room, or its author's key has not reached you")]
    NoKey,
}

/// What an opened room envelope held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The author's sender key for `epoch`, now remembered.
    Keys {
        /// The epoch it seals.
        epoch: u32,
    },
    /// A sender key for other members only (sent before this client joined, or after it left,
    /// or this client's own).
    NotForMe,
    /// A message.
    Message(Plain),
}

/// The `KEYS` envelopes of a new sender key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    /// Each envelope with the message id it was signed for, to send in that order.
    pub envelopes: Vec<(MessageId, Vec<u8>)>,
    /// Members left out because their identity key is unusable (the caller warns about them).
    pub skipped: Vec<String>,
}

/// One author's keys, oldest epoch first.
#[derive(Default)]
struct Epochs(VecDeque<(u32, SenderKey)>);

impl Epochs {
    fn get(&self, epoch: u32) -> Option<&SenderKey> {
        self.0
            .iter()
            .find(|(known, _)| *known == epoch)
            .map(|(_, key)| key)
    }

    /// Remembers `key` for `epoch` (replacing a key given before for the same epoch, as after
    /// the author restarted), forgetting the oldest beyond `MAX_EPOCHS_PER_AUTHOR`.
    fn insert(&mut self, epoch: u32, key: SenderKey) {
        self.0.retain(|(known, _)| *known != epoch);
        self.0.push_back((epoch, key));
        while self.0.len() > MAX_EPOCHS_PER_AUTHOR {
            self.0.pop_front();
        }
    }
}

/// One client's keys for one room: its own sender keys and those the other members sent it.
pub struct RoomKeys {
    /// The room's folded name.
    room: String,
    /// This client's folded nickname.
    me: String,
    /// This client's keys; the newest seals unless `stale`.
    own: Epochs,
    /// The newest own epoch (0 before the first).
    epoch: u32,
    /// The member list changed since the newest own key was made (or there is none yet).
    stale: bool,
    /// Other authors' keys, each with the `given` count of its latest key.
    others: HashMap<String, (u64, Epochs)>,
    /// Keys remembered so far, to find the author given one longest ago.
    given: u64,
    wraps: wrap::WrapKeys,
}

impl RoomKeys {
    /// The keys of `me` in `room`; both names are folded (the caller folds them).
    pub fn new(room: &str, me: &str) -> Self {
        Self {
            room: room.to_owned(),
            me: me.to_owned(),
            own: Epochs::default(),
            epoch: 0,
            stale: true,
            others: HashMap::new(),
            given: 0,
            wraps: wrap::WrapKeys::new(),
        }
    }

    /// Forgets the current sender key: the next `distribute` makes a new one with the next
    /// epoch. Call it when the member list changes, on (re)joining, after a leave, kick or ban.
    /// Earlier own keys are kept to read earlier own messages.
    pub fn rotate(&mut self) {
        self.stale = true;
    }

    /// Whether a new sender key must be distributed before the next message.
    pub fn needs_distribution(&self) -> bool {
        self.stale
    }

    /// If needed, makes a new sender key (the next epoch, the first being 1) and returns the
    /// `KEYS` envelopes that carry it to every member of `members` (folded nickname, identity
    /// key) except this client, at most `MAX_RECIPIENTS` per envelope, each with an id from
    /// `next_id`. Members whose key is unusable are left out and named in `skipped`. Returns
    /// an empty distribution when the current key is still good.
    pub fn distribute(
        &mut self,
        identity: &Identity,
        members: &[(String, PublicKey)],
        mut next_id: impl FnMut() -> MessageId,
    ) -> Result<Distribution, E2eError> {
        if !self.stale {
            return Ok(Distribution::default());
        }
        let epoch = self.epoch.checked_add(1).unwrap_or(1);
        let mut key = SenderKey::default();
        getrandom::fill(key.as_mut()).map_err(|_| E2eError::NoRandomness)?;
        let names = names(&self.room, &self.me)?;
        let (entries, skipped) = self.wrap_for(identity, members, &names, epoch, &key)?;
        let envelopes = entries
            .chunks(MAX_RECIPIENTS)
            .map(|chunk| {
                let id = next_id();
                let body = keys_envelope(identity, &names, &id, epoch, chunk)?;
                Ok((id, body))
            })
            .collect::<Result<_, E2eError>>()?;
        self.own.insert(epoch, key);
        self.epoch = epoch;
        self.stale = false;
        Ok(Distribution { envelopes, skipped })
    }

    /// The `KEYS` entries carrying `key` to each of `members` but this client, and the names
    /// of those whose key is unusable.
    fn wrap_for(
        &mut self,
        identity: &Identity,
        members: &[(String, PublicKey)],
        names: &[u8],
        epoch: u32,
        key: &SenderKey,
    ) -> Result<(Vec<[u8; ENTRY_LEN]>, Vec<String>), E2eError> {
        let mut entries = Vec::with_capacity(members.len());
        let mut skipped = Vec::new();
        for (name, member_key) in members.iter().filter(|(name, _)| *name != self.me) {
            let Ok(cipher) = self.wraps.cipher(identity, member_key) else {
                skipped.push(name.clone());
                continue;
            };
            let aad = associated_data(names, epoch, member_key);
            entries.push(wrap::wrap(cipher, &aad, member_key, key)?);
        }
        Ok((entries, skipped))
    }

    /// An envelope holding `texts` as message `id`, sealed with the current sender key (an
    /// error if there is none: `distribute` first).
    pub fn seal(
        &self,
        identity: &Identity,
        id: &MessageId,
        counter: u64,
        texts: &[&str],
    ) -> Result<Vec<u8>, E2eError> {
        let capacity = sealed_len(texts.iter().map(|text| text.len()));
        self.seal_with(identity, id, capacity, |out| {
            write_text(out, counter, texts)
        })
    }

    /// An envelope holding a file transfer's control message as message `id`.
    pub fn seal_file(
        &self,
        identity: &Identity,
        id: &MessageId,
        counter: u64,
        control: &FileControl,
    ) -> Result<Vec<u8>, E2eError> {
        let capacity = MESSAGE_OVERHEAD + PLAIN_HEAD + 64;
        self.seal_with(identity, id, capacity, |out| {
            write_file(out, counter, control)
        })
    }

    /// A `MESSAGE` envelope of the plaintext `write` appends, signed.
    fn seal_with(
        &self,
        identity: &Identity,
        id: &MessageId,
        capacity: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E2eError>,
    ) -> Result<Vec<u8>, E2eError> {
        let (epoch, key) = match self.own.0.back() {
            Some((epoch, key)) if !self.stale => (*epoch, key),
            _ => return Err(E2eError::NoSenderKey),
        };
        let names = names(&self.room, &self.me)?;
        envelope::seal_message(identity, &names, id, (epoch, key), capacity, write)
    }

    /// Opens envelope `id` of the room, written by `author` (folded) whose identity key is
    /// `author_key`: a sender key (remembered for that author and epoch) or a message.
    pub fn open(
        &mut self,
        identity: &Identity,
        author: &str,
        author_key: &PublicKey,
        id: &MessageId,
        body: &[u8],
    ) -> Result<Opened, RoomError> {
        let names = names(&self.room, author)?;
        let (kind, epoch, rest) = verified(&names, author_key, id, body)?;
        match kind {
            KIND_KEYS => self.open_keys(identity, author, author_key, &names, epoch, rest),
            KIND_MESSAGE => self.open_message(author, &names, epoch, id, rest),
            other => Err(E2eError::UnknownKind(other).into()),
        }
    }

    /// Remembers the sender key in a verified `KEYS` body if an entry is for this client.
    fn open_keys(
        &mut self,
        identity: &Identity,
        author: &str,
        author_key: &PublicKey,
        names: &[u8],
        epoch: u32,
        body: &[u8],
    ) -> Result<Opened, RoomError> {
        let (count, entries) = body.split_first_chunk::<2>().ok_or(E2eError::Truncated)?;
        if entries.len() != usize::from(u16::from_be_bytes(*count)) * ENTRY_LEN {
            return Err(E2eError::Malformed("key entries do not fill the envelope").into());
        }
        let mine = identity.public_key();
        let mut for_me = entries
            .chunks_exact(ENTRY_LEN)
            .filter(|entry| entry.starts_with(&mine[..RECIPIENT_PREFIX]))
            .peekable();
        if author == self.me || for_me.peek().is_none() {
            return Ok(Opened::NotForMe);
        }
        let cipher = self.wraps.cipher(identity, author_key)?;
        let aad = associated_data(names, epoch, &mine);
        // Another member's key may share the prefix: the one that opens is ours.
        let key = for_me
            .find_map(|entry| wrap::unwrap(cipher, &aad, entry))
            .ok_or(E2eError::Forged)?;
        self.remember(author, epoch, key);
        Ok(Opened::Keys { epoch })
    }

    /// The plaintext of a verified `MESSAGE` body.
    fn open_message(
        &self,
        author: &str,
        names: &[u8],
        epoch: u32,
        id: &MessageId,
        body: &[u8],
    ) -> Result<Opened, RoomError> {
        let key = self.key_of(author, epoch)?;
        let plain = envelope::open_message(key, names, epoch, id, body)?;
        Ok(Opened::Message(plain))
    }

    /// `author`'s (folded) sender key for `epoch`: this client's own, or one it was sent.
    fn key_of(&self, author: &str, epoch: u32) -> Result<&SenderKey, RoomError> {
        let epochs = if author == self.me {
            Some(&self.own)
        } else {
            self.others.get(author).map(|(_, epochs)| epochs)
        };
        epochs
            .and_then(|epochs| epochs.get(epoch))
            .ok_or(RoomError::NoKey)
    }

    /// Remembers `author`'s key for `epoch`, forgetting the author given a key longest ago
    /// when `MAX_AUTHORS` are known.
    fn remember(&mut self, author: &str, epoch: u32, key: SenderKey) {
        if self.others.len() >= MAX_AUTHORS && !self.others.contains_key(author) {
            let oldest = self
                .others
                .iter()
                .min_by_key(|(_, (given, _))| *given)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                self.others.remove(&oldest);
            }
        }
        self.given += 1;
        let (given, epochs) = self.others.entry(author.to_owned()).or_default();
        *given = self.given;
        epochs.insert(epoch, key);
    }
}

/// `MESSAGE` envelope bytes for lines of these lengths.
pub fn sealed_len(lengths: impl Iterator<Item = usize>) -> usize {
    MESSAGE_OVERHEAD + PLAIN_HEAD + lengths.map(|len| LINE_HEAD + len).sum::<usize>()
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
