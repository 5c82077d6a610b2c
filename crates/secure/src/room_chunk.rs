//! File chunks in a room: sealed with the author's newest sender key, so every member holding
//! it can open them and the relay cannot. Layout: `02`, `12` (CHUNK), epoch (u32), nonce (24
//! random bytes), ciphertext, tag (16). The associated data binds the room, the author, the
//! epoch, the transfer and the offset, so a chunk cannot be moved within or between files.
//! Chunks carry no signature (one per 64 KiB would cost more than the cipher): a member holding
//! the author's key could forge one, but a file is named only once its SHA-256 matches the one
//! in the author's signed `sent` message, so a forged chunk fails the transfer and never
//! changes a file.

use super::envelope::{associated_data, head, names, open_body, seal_body, split_head};
use super::{RoomError, RoomKeys, HEAD, KIND_CHUNK};
use crate::e2e::{E2eError, NONCE_LEN, TAG_LEN};
use crate::transfer::TransferId;

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
        out.extend_from_slice(&head(KIND_CHUNK, *epoch));
        let aad = associated_data(&names, *epoch, &chunk_tail(transfer, offset));
        seal_body(key, &aad, out, |out| {
            out.extend_from_slice(data);
            Ok(())
        })
    }

    /// Opens a chunk of `author`'s (folded) transfer `transfer` at `offset`.
    pub fn open_chunk(
        &self,
        author: &str,
        transfer: &TransferId,
        offset: u64,
        body: &[u8],
    ) -> Result<Vec<u8>, RoomError> {
        let (kind, epoch, sealed) = split_head(body)?;
        if kind != KIND_CHUNK {
            return Err(E2eError::UnknownKind(kind).into());
        }
        let key = self.key_of(author, epoch)?;
        let names = names(&self.room, author)?;
        let aad = associated_data(&names, epoch, &chunk_tail(transfer, offset));
        Ok(open_body(key, &aad, sealed)?)
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
