//! The bytes of room envelopes (the layout is in `room`'s documentation): building and
//! signing them, checking the signature, sealing and opening a message with a sender key that
//! the caller found. Which keys exist, and for whom, is `room`'s business, not this file's.

use p2pchat_proto::{MessageId, PublicKey};

use super::{
    RoomError, SenderKey, ENTRY_LEN, HEAD, KIND_KEYS, KIND_MESSAGE, ROOM_VERSION, SIGNATURE_LEN,
};
use crate::e2e::{parse_plain, E2eError, Plain, NONCE_LEN, TAG_LEN};
use crate::identity::{verify_room, Identity, ROOM_CONTEXT};
use crate::xchacha::XChaCha;

/// A signed `MESSAGE` envelope of the plaintext `write` appends, sealed with `key` (its epoch
/// first) as message `id` of `names` (room and author).
pub(super) fn seal_message(
    identity: &Identity,
    names: &[u8],
    id: &MessageId,
    (epoch, key): (u32, &SenderKey),
    capacity: usize,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E2eError>,
) -> Result<Vec<u8>, E2eError> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&head(KIND_MESSAGE, epoch));
    seal_body(key, &associated_data(names, epoch, id), &mut out, write)?;
    let signature = identity.sign_room(&[names, id, &out]);
    out.extend_from_slice(&signature);
    Ok(out)
}

/// The plaintext of a verified `MESSAGE` body (nonce, ciphertext, tag) sealed with `key`.
pub(super) fn open_message(
    key: &SenderKey,
    names: &[u8],
    epoch: u32,
    id: &MessageId,
    body: &[u8],
) -> Result<Plain, E2eError> {
    let plain = open_body(key, &associated_data(names, epoch, id), body)?;
    parse_plain(&plain)
}

/// Appends a random nonce, what `write` appends, sealed in place with `key` and `aad`, and the
/// tag: the sealed part of `MESSAGE` and `CHUNK` envelopes.
pub(super) fn seal_body(
    key: &SenderKey,
    aad: &[u8],
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E2eError>,
) -> Result<(), E2eError> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| E2eError::NoRandomness)?;
    out.extend_from_slice(&nonce);
    let start = out.len();
    write(out)?;
    let tag = XChaCha::new(key)
        .seal(&nonce, aad, &mut out[start..])
        .map_err(|_| E2eError::Forged)?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// The plaintext of a sealed part (nonce, ciphertext, tag) made by `seal_body`.
pub(super) fn open_body(key: &SenderKey, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, E2eError> {
    let (nonce, rest) = body
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(E2eError::Truncated)?;
    let (ciphertext, tag) = rest
        .split_last_chunk::<TAG_LEN>()
        .ok_or(E2eError::Truncated)?;
    let mut plain = ciphertext.to_vec();
    XChaCha::new(key)
        .open(nonce, aad, &mut plain, tag)
        .map_err(|_| E2eError::Forged)?;
    Ok(plain)
}

/// An envelope's kind and epoch, and what follows them; for any room envelope kind.
pub(super) fn split_head(body: &[u8]) -> Result<(u8, u32, &[u8]), E2eError> {
    let (&version, _) = body.split_first().ok_or(E2eError::Truncated)?;
    if version != ROOM_VERSION {
        return Err(E2eError::UnknownVersion(version));
    }
    let (head, rest) = body
        .split_first_chunk::<HEAD>()
        .ok_or(E2eError::Truncated)?;
    let epoch = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
    Ok((head[1], epoch, rest))
}

/// The envelope's kind, epoch and the body between them and the signature, if it is a room
/// envelope whose signature is `author_key`'s over `names`, `id` and its bytes.
pub(super) fn verified<'a>(
    names: &[u8],
    author_key: &PublicKey,
    id: &MessageId,
    body: &'a [u8],
) -> Result<(u8, u32, &'a [u8]), RoomError> {
    // The version first: a pair's envelope (or anything else) is told apart whatever its size.
    if body.first().is_some_and(|&version| version != ROOM_VERSION) {
        return Err(E2eError::UnknownVersion(body[0]).into());
    }
    let (signed, signature) = body
        .split_last_chunk::<SIGNATURE_LEN>()
        .ok_or(E2eError::Truncated)?;
    let (kind, epoch, rest) = split_head(signed)?;
    if !verify_room(author_key, &[names, id, signed], signature) {
        return Err(RoomError::BadSignature);
    }
    Ok((kind, epoch, rest))
}

/// A signed `KEYS` envelope of `entries` for message `id`.
pub(super) fn keys_envelope(
    identity: &Identity,
    names: &[u8],
    id: &MessageId,
    epoch: u32,
    entries: &[[u8; ENTRY_LEN]],
) -> Result<Vec<u8>, E2eError> {
    let count = u16::try_from(entries.len()).map_err(|_| E2eError::TooManyLines)?;
    let mut out = Vec::with_capacity(HEAD + 2 + entries.len() * ENTRY_LEN + SIGNATURE_LEN);
    out.extend_from_slice(&head(KIND_KEYS, epoch));
    out.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        out.extend_from_slice(entry);
    }
    let signature = identity.sign_room(&[names, id, &out]);
    out.extend_from_slice(&signature);
    Ok(out)
}

/// Version, kind and epoch.
pub(super) fn head(kind: u8, epoch: u32) -> [u8; HEAD] {
    let [a, b, c, d] = epoch.to_be_bytes();
    [ROOM_VERSION, kind, a, b, c, d]
}

/// The room's and the author's folded names, each after its length (u8).
pub(super) fn names(room: &str, author: &str) -> Result<Vec<u8>, E2eError> {
    let mut out = Vec::with_capacity(2 + room.len() + author.len());
    for name in [room, author] {
        let len = u8::try_from(name.len()).map_err(|_| E2eError::NameTooLong)?;
        out.push(len);
        out.extend_from_slice(name.as_bytes());
    }
    Ok(out)
}

/// `ROOM_CONTEXT`, the names, the epoch, then `tail` (a message id, or a recipient's key).
pub(super) fn associated_data(names: &[u8], epoch: u32, tail: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(ROOM_CONTEXT.len() + names.len() + 4 + tail.len());
    aad.extend_from_slice(ROOM_CONTEXT);
    aad.extend_from_slice(names);
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad.extend_from_slice(tail);
    aad
}
