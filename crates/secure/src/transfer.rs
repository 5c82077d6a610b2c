//! What a file transfer says end to end. Control messages travel as envelopes of kind
//! `KIND_FILE` in ordinary `Message` frames (numbered, stored, delivered like text); the file's
//! bytes travel as chunk envelopes in `Chunk` frames, bound to their transfer and offset.
//!
//! Control message layout (after the envelope's kind and counter): a tag byte, the 16-byte
//! transfer id, then per tag: `1` offer: size (u64 BE), name (u16 BE length and UTF-8); `2`
//! accept: offset to start from (u64 BE); `3` decline: nothing; `4` cancel: reason (u16 BE
//! length and UTF-8); `5` received: nothing (the file was saved and its SHA-256 matched); `6`
//! sent: SHA-256 of the whole file (32 bytes). The sender hashes the file as it reads it for
//! sending, so an offer goes out at once (no pass over the file first) and `Sent` follows the
//! last chunk; it is sent again after every resumed stream.

use crate::e2e::E2eError;

/// A transfer's id, chosen at random by the sender.
pub type TransferId = [u8; 16];

/// Longest file name or cancel reason carried, in bytes.
pub const MAX_TEXT: usize = 1024;

/// A file transfer's control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileControl {
    /// The sender offers a file.
    Offer {
        /// The transfer.
        transfer: TransferId,
        /// The name as the sender has it (the receiver makes it safe before using it).
        name: String,
        /// Bytes in all.
        size: u64,
    },
    /// The receiver takes it, from this offset (0, or where an interrupted transfer stopped).
    Accept {
        /// The transfer.
        transfer: TransferId,
        /// First byte wanted.
        from: u64,
    },
    /// The receiver does not want it.
    Decline {
        /// The transfer.
        transfer: TransferId,
    },
    /// Either side stops it.
    Cancel {
        /// The transfer.
        transfer: TransferId,
        /// Why, for people.
        reason: String,
    },
    /// The receiver saved the file and its SHA-256 matched.
    Received {
        /// The transfer.
        transfer: TransferId,
    },
    /// The sender read and sent the whole file: this is its SHA-256.
    Sent {
        /// The transfer.
        transfer: TransferId,
        /// SHA-256 of the whole file.
        sha256: [u8; 32],
    },
}

impl FileControl {
    /// The transfer it is about.
    pub fn transfer(&self) -> &TransferId {
        match self {
            Self::Offer { transfer, .. }
            | Self::Accept { transfer, .. }
            | Self::Decline { transfer }
            | Self::Cancel { transfer, .. }
            | Self::Received { transfer }
            | Self::Sent { transfer, .. } => transfer,
        }
    }

    /// Appends the control message's bytes (after the envelope's kind and counter).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), E2eError> {
        let text = |out: &mut Vec<u8>, text: &str| {
            let len = u16::try_from(text.len())
                .ok()
                .filter(|len| usize::from(*len) <= MAX_TEXT)
                .ok_or(E2eError::Malformed("text too long"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
            Ok::<(), E2eError>(())
        };
        let tag = match self {
            Self::Offer { .. } => 1,
            Self::Accept { .. } => 2,
            Self::Decline { .. } => 3,
            Self::Cancel { .. } => 4,
            Self::Received { .. } => 5,
            Self::Sent { .. } => 6,
        };
        out.push(tag);
        out.extend_from_slice(self.transfer());
        match self {
            Self::Offer { name, size, .. } => {
                out.extend_from_slice(&size.to_be_bytes());
                text(out, name)?;
            }
            Self::Sent { sha256, .. } => out.extend_from_slice(sha256),
            Self::Accept { from, .. } => out.extend_from_slice(&from.to_be_bytes()),
            Self::Cancel { reason, .. } => text(out, reason)?,
            Self::Decline { .. } | Self::Received { .. } => {}
        }
        Ok(())
    }

    /// The control message in `bytes` (what follows the envelope's kind and counter).
    pub fn decode(bytes: &[u8]) -> Result<Self, E2eError> {
        let mut fields = Fields(bytes);
        let tag = fields.take::<1>()?[0];
        let transfer = fields.take::<16>()?;
        let control = match tag {
            1 => {
                let size = u64::from_be_bytes(fields.take()?);
                let name = fields.text()?;
                Self::Offer {
                    transfer,
                    name,
                    size,
                }
            }
            2 => Self::Accept {
                transfer,
                from: u64::from_be_bytes(fields.take()?),
            },
            3 => Self::Decline { transfer },
            4 => Self::Cancel {
                transfer,
                reason: fields.text()?,
            },
            5 => Self::Received { transfer },
            6 => Self::Sent {
                transfer,
                sha256: fields.take()?,
            },
            _ => return Err(E2eError::Malformed("unknown file message")),
        };
        if !fields.0.is_empty() {
            return Err(E2eError::Malformed("bytes after a file message"));
        }
        Ok(control)
    }
}

struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], E2eError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(E2eError::Malformed("file message cut short"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn text(&mut self) -> Result<String, E2eError> {
        let len = usize::from(u16::from_be_bytes(self.take()?));
        if len > MAX_TEXT || len > self.0.len() {
            return Err(E2eError::Malformed("file message text too long"));
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(text.to_vec()).map_err(|_| E2eError::Malformed("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, Identity};

    fn channels() -> (Channel, Channel) {
        let (a, b) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
        (
            Channel::new(&a, &b.public_key()).unwrap(),
            Channel::new(&b, &a.public_key()).unwrap(),
        )
    }

    #[test]
    fn control_messages_round_trip_through_envelopes() {
        let (to_bob, from_alice) = channels();
        for control in [
            FileControl::Offer {
                transfer: [3; 16],
                name: "report 2026.pdf".into(),
                size: 1 << 40,
            },
            FileControl::Accept {
                transfer: [3; 16],
                from: 4096,
            },
            FileControl::Decline { transfer: [3; 16] },
            FileControl::Cancel {
                transfer: [3; 16],
                reason: "disk full".into(),
            },
            FileControl::Received { transfer: [3; 16] },
            FileControl::Sent {
                transfer: [3; 16],
                sha256: [9; 32],
            },
        ] {
            let sealed = to_bob.seal_file(&[1; 16], 77, &control).unwrap();
            let plain = from_alice.open(false, &[1; 16], &sealed).unwrap();
            assert_eq!((plain.counter, plain.file), (77, Some(control)));
            assert!(plain.texts.is_empty());
        }
    }

    #[test]
    fn chunks_are_bound_to_their_transfer_and_offset() {
        let (to_bob, from_alice) = channels();
        let mut sealed = Vec::new();
        to_bob
            .seal_chunk(&[5; 16], 65536, b"file bytes", &mut sealed)
            .unwrap();
        assert_eq!(
            from_alice
                .open_chunk(false, &[5; 16], 65536, &sealed)
                .unwrap(),
            b"file bytes"
        );
        for (transfer, offset) in [([5; 16], 0), ([6; 16], 65536)] {
            assert_eq!(
                from_alice.open_chunk(false, &transfer, offset, &sealed),
                Err(E2eError::Forged)
            );
        }
        // Neither is a chunk a message, nor a message a chunk.
        assert!(from_alice.open(false, &[5; 16], &sealed).is_err());
        let text = to_bob.seal(&[5; 16], 1, &["hi"]).unwrap();
        assert!(from_alice.open_chunk(false, &[5; 16], 0, &text).is_err());
    }
}
