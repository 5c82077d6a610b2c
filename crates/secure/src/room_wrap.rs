//! Sending a sender key to one member: the key two identities share for wrapping (static
//! X25519 and HKDF-SHA256, as `Channel`'s, but under its own context so a wrap key is never a
//! pair channel's key), a bounded cache of those keys, and the 80-byte entry of a `KEYS`
//! envelope. Nothing here signs or parses whole envelopes.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use p2pchat_proto::PublicKey;
use zeroize::Zeroizing;

use super::{SenderKey, ENTRY_LEN, KEY_LEN, RECIPIENT_PREFIX};
use crate::e2e::{pair_key, E2eError, NONCE_LEN, TAG_LEN};
use crate::identity::Identity;
use crate::xchacha::XChaCha;

/// Most wrap keys cached; the cache is emptied when full. A Diffie-Hellman costs far more than
/// the wrap itself, and a client sends a new key to the same members every time one of them
/// joins or leaves; the bound keeps a room of peers that come and go from growing it forever.
pub const MAX_WRAP_KEYS: usize = 4096;
/// Domain separation for the wrap keys' derivation (HKDF info, before both keys).
const WRAP_CONTEXT: &[u8] = b"p2pchat room wrap v1\0";

/// Wrap keys by the other member's identity key, for one identity of ours.
pub(super) struct WrapKeys {
    /// Our identity key they were derived with (a different identity empties the cache).
    owner: PublicKey,
    ciphers: HashMap<PublicKey, XChaCha>,
}

impl WrapKeys {
    pub(super) fn new() -> Self {
        Self {
            owner: [0; 32],
            ciphers: HashMap::new(),
        }
    }

    /// The cipher that wraps keys between `me` and the owner of `peer`, or `BadKey` for a key
    /// that is not a usable one.
    pub(super) fn cipher(&mut self, me: &Identity, peer: &PublicKey) -> Result<&XChaCha, E2eError> {
        let owner = me.public_key();
        if owner != self.owner {
            self.ciphers.clear();
            self.owner = owner;
        }
        if self.ciphers.len() >= MAX_WRAP_KEYS && !self.ciphers.contains_key(peer) {
            self.ciphers.clear();
        }
        match self.ciphers.entry(*peer) {
            Entry::Occupied(cached) => Ok(cached.into_mut()),
            Entry::Vacant(slot) => Ok(slot.insert(derive(me, peer)?)),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ciphers.len()
    }

    #[cfg(test)]
    pub(super) fn fill(&mut self, owner: PublicKey, count: usize) {
        self.owner = owner;
        for i in 0..count {
            let mut peer = [0xAB; 32];
            peer[..8].copy_from_slice(&(i as u64).to_be_bytes());
            self.ciphers.insert(peer, XChaCha::new(&[0; 32]));
        }
    }
}

/// The wrap key of `me` (whose public key is `mine`) and `peer`: HKDF-SHA256 over their static
/// X25519 secret, info `WRAP_CONTEXT`, the lower key, the higher key.
fn derive(me: &Identity, peer: &PublicKey) -> Result<XChaCha, E2eError> {
    let key = pair_key(me, peer, WRAP_CONTEXT)?;
    Ok(XChaCha::new(&key))
}

/// The entry that carries `key` to the owner of `recipient`: the key's first 8 bytes, a random
/// nonce, the wrapped key and its tag.
pub(super) fn wrap(
    cipher: &XChaCha,
    aad: &[u8],
    recipient: &PublicKey,
    key: &SenderKey,
) -> Result<[u8; ENTRY_LEN], E2eError> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| E2eError::NoRandomness)?;
    // Holds the key in the clear until it is sealed in place.
    let mut entry = Zeroizing::new([0u8; ENTRY_LEN]);
    let (head, sealed) = entry.split_at_mut(RECIPIENT_PREFIX + NONCE_LEN);
    head[..RECIPIENT_PREFIX].copy_from_slice(&recipient[..RECIPIENT_PREFIX]);
    head[RECIPIENT_PREFIX..].copy_from_slice(&nonce);
    let (wrapped, tag) = sealed.split_at_mut(KEY_LEN);
    wrapped.copy_from_slice(&key[..]);
    let sealed_tag = cipher
        .seal(&nonce, aad, wrapped)
        .map_err(|_| E2eError::Forged)?;
    tag.copy_from_slice(&sealed_tag);
    Ok(*entry)
}

/// The key in `entry` if it opens with `cipher` and `aad`.
pub(super) fn unwrap(cipher: &XChaCha, aad: &[u8], entry: &[u8]) -> Option<SenderKey> {
    let (_, rest) = entry.split_first_chunk::<RECIPIENT_PREFIX>()?;
    let (nonce, rest) = rest.split_first_chunk::<NONCE_LEN>()?;
    let (wrapped, tag) = rest.split_first_chunk::<KEY_LEN>()?;
    let tag: &[u8; TAG_LEN] = tag.try_into().ok()?;
    let mut key = Zeroizing::new(*wrapped);
    cipher.open(nonce, aad, key.as_mut(), tag).ok()?;
    Some(key)
}
