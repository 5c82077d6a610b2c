//! File chunks in a room: sealed with the author's newest sender key, so every member holding
//! it can open them and the relay cannot. Layout: `02`, `12` (CHUNK), epoch (u32), nonce (24
//! random bytes), ciphertext, tag (16). The associated data binds the room, the author, the
//! epoch, the transfer and the offset, so a chunk cannot be moved within or between files.
//! Chunks carry no signature (one per 64 KiB would cost more than the cipher): a member holding
//! the author's key could forge one, but a file is named only once its SHA-256 matches the one
//! in the author's signed `sent` message, so a forged chunk fails the transfer and never
//! changes a file.

use super::envelope::{associated_data, names};
use super::{RoomError, RoomKeys, HEAD, KIND_CHUNK, ROOM_VERSION};
use crate::e2e::{E2eError, NONCE_LEN, TAG_LEN};
use crate::transfer::TransferId;
use crate::xchacha::XChaCha;

/// Bytes a chunk envelope adds to the file's bytes.
pub const CHUNK_OVERHEAD: usize = HEAD + NONCE_LEN + TAG_LEN;

impl RoomKeys {
    /// Appends the envelope of bytes `offset..` of `transfer` to `out`, sealed with this
    /// client's newest sender key (also after the member list changed: chunks go live to the
    /// members in the room now, and the file's worth is checked by its signed SHA-256).
    pub fn seal_chunk(
        &self,
        transfer: &TransferId,
        offset: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), E2eError> {
        let (epoch, key) = self.own.0.back().ok_or(E2eError::NoSenderKey)?;
        let names = names(&self.room, &self.me)?;
        let mut nonce = [0; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| E2eError::NoRandomness)?;
        out.push(ROOM_VERSION);
        out.push(KIND_CHUNK);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(data);
        let aad = associated_data(&names, *epoch, &chunk_tail(transfer, offset));
        let tag = XChaCha::new(key)
            .seal(&nonce, &aad, &mut out[start..])
            .map_err(|_| E2eError::Forged)?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a chunk of `author`'s (folded) transfer `transfer` at `offset`.
    pub fn open_chunk(
        &self,
        author: &str,
        transfer: &TransferId,
        offset: u64,
        body: &[u8],
    ) -> Result<Vec<u8>, RoomError> {
        let (head, rest) = body
            .split_first_chunk::<HEAD>()
            .ok_or(E2eError::Truncated)?;
        if head[0] != ROOM_VERSION || head[1] != KIND_CHUNK {
            return Err(E2eError::UnknownVersion(head[0]).into());
        }
        let epoch = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
        let (nonce, rest) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(E2eError::Truncated)?;
        let (ciphertext, tag) = rest
            .split_last_chunk::<TAG_LEN>()
            .ok_or(E2eError::Truncated)?;
        let key = self.key_of(author, epoch)?;
        let names = names(&self.room, author)?;
        let aad = associated_data(&names, epoch, &chunk_tail(transfer, offset));
        let mut plain = ciphertext.to_vec();
        XChaCha::new(key)
            .open(nonce, &aad, &mut plain, tag)
            .map_err(|_| E2eError::Forged)?;
        Ok(plain)
    }
}

/// What a chunk's associated data ends with: `chunk`, the transfer and the offset (29 bytes,
/// so never the same as a message id's 16 or a recipient key's 32).
fn chunk_tail(transfer: &TransferId, offset: u64) -> [u8; 29] {
    let mut tail = [0; 29];
    tail[..5].copy_from_slice(b"chunk");
    tail[5..21].copy_from_slice(transfer);
    tail[21..].copy_from_slice(&offset.to_be_bytes());
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    #[test]
    fn members_open_a_chunk_and_nobody_can_move_or_alter_it() {
        let (ann, bob) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
        let mut sender = RoomKeys::new("lobby", "ann");
        let mut receiver = RoomKeys::new("lobby", "bob");
        let members = [("bob".to_owned(), bob.public_key())];
        let mut ids = 0u8;
        let dist = sender
            .distribute(&ann, &members, || {
                ids += 1;
                [ids; 16]
            })
            .unwrap();
        let (id, keys) = &dist.envelopes[0];
        receiver
            .open(&bob, "ann", &ann.public_key(), id, keys)
            .unwrap();
        let mut body = Vec::new();
        sender
            .seal_chunk(&[7; 16], 65536, b"file bytes", &mut body)
            .unwrap();
        assert_eq!(body.len(), b"file bytes".len() + CHUNK_OVERHEAD);
        let opened = receiver.open_chunk("ann", &[7; 16], 65536, &body).unwrap();
        assert_eq!(opened, b"file bytes");
        assert!(
            receiver.open_chunk("ann", &[7; 16], 0, &body).is_err(),
            "moved"
        );
        assert!(
            receiver.open_chunk("ann", &[8; 16], 65536, &body).is_err(),
            "other file"
        );
        assert!(
            receiver.open_chunk("cy", &[7; 16], 65536, &body).is_err(),
            "other author"
        );
        let mut altered = body.clone();
        altered[HEAD + NONCE_LEN] ^= 1;
        assert!(receiver
            .open_chunk("ann", &[7; 16], 65536, &altered)
            .is_err());
        // A member without the author's key cannot open it.
        let outsider = RoomKeys::new("lobby", "cy");
        assert_eq!(
            outsider.open_chunk("ann", &[7; 16], 65536, &body),
            Err(RoomError::NoKey)
        );
    }
}
