//! End-to-end envelopes: what a `Message` body holds, so the relay forwards and stores only
//! ciphertext. The construction is static-static X25519 (the identity keys, converted), HKDF-SHA256
//! over the shared secret and both public keys, and XChaCha20-Poly1305 (the shape of NaCl's
//! `crypto_box`, with associated data): both companions derive the same key from their own
//! secret and the other's public key, with no message exchanged first. That is what lets a message be written to a companion who is away
//! and lets either side read the stored history again later (docs/SECURITY.md says what this
//! costs: no forward secrecy). The associated data binds each envelope to its direction (sender
//! and recipient keys) and to its message id, so the relay can neither reflect a message back to
//! its author nor swap ids; a per-sender counter inside lets the reader refuse replays.
//!
//! Envelope: version `1` (1 byte), nonce (24 bytes), ciphertext, Poly1305 tag (16 bytes).
//! Plaintext: kind (1 byte, `1` = text lines), counter (u64 BE), line count (u16 BE), then per
//! line its length (u32 BE) and UTF-8 bytes. Several lines in one envelope are a batch the
//! sender had queued together: one seal, one tag, one relay frame.

use std::sync::atomic::{AtomicU64, Ordering};

use hkdf::Hkdf;
use p2pchat_proto::{MessageId, PublicKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::identity::{x25519_public, Identity};
use crate::transfer::{FileControl, TransferId};
use crate::xchacha::XChaCha;

/// The envelope format this version writes and reads.
pub const VERSION: u8 = 1;
/// Nonce bytes (XChaCha20).
pub const NONCE_LEN: usize = crate::xchacha::NONCE_LEN;
/// Authentication tag bytes (Poly1305).
pub const TAG_LEN: usize = crate::xchacha::TAG_LEN;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Plaintext bytes before the first line: kind, counter, line count.
pub const PLAIN_HEAD: usize = 1 + 8 + 2;
/// Plaintext bytes before each line's text: its length.
pub const LINE_HEAD: usize = 4;
/// Plaintext kind: text lines.
pub const KIND_TEXT: u8 = 1;
/// Plaintext kind: a file transfer's control message (`FileControl`).
pub const KIND_FILE: u8 = 2;
/// Domain separation for the associated data.
const AAD_CONTEXT: &[u8; 15] = b"p2pchat e2e v1\0";

/// Why an envelope could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum E2eError {
    /// A public key is not a usable Ed25519/X25519 key.
    #[error("not a usable public key")]
    BadKey,
    /// The body is not an envelope of a version this client reads (or not an envelope at all).
    #[error("not an end-to-end envelope this version reads (version byte {0})")]
    UnknownVersion(u8),
    /// The body is shorter than an envelope can be.
    #[error("envelope too short")]
    Truncated,
    /// Authentication failed: the envelope was altered, or was not written by this companion
    /// for this client (or with this message id).
    #[error("failed its integrity check (altered, or not sealed by this companion)")]
    Forged,
    /// The envelope authenticated but its contents do not follow the format.
    #[error("malformed contents: {0}")]
    Malformed(&'static str),
    /// The envelope holds a kind of content this version cannot show.
    #[error("content of kind {0} that this version cannot show")]
    UnknownKind(u8),
    /// Too many lines for one envelope.
    #[error("too many lines for one envelope")]
    TooManyLines,
    /// A room message was to be sealed before this client distributed its room key (after
    /// joining, or after the member list changed).
    #[error("no room key to seal with yet: a new one must be sent to the members first")]
    NoSenderKey,
    /// A room or nickname, folded, is longer than a room envelope can bind (255 bytes).
    #[error("the room name or nickname is too long to bind to a room envelope")]
    NameTooLong,
    /// The operating system's random number generator failed.
    #[error("no randomness for a new key or nonce")]
    NoRandomness,
}

/// An opened envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// The sender's counter: strictly increasing over everything it sends in a conversation.
    pub counter: u64,
    /// The lines, in the order they were typed (none for a file control message).
    pub texts: Vec<String>,
    /// A file transfer's control message, for an envelope of that kind.
    pub file: Option<FileControl>,
}

/// The end-to-end channel between this client and one companion.
pub struct Channel {
    cipher: XChaCha,
    mine: PublicKey,
    theirs: PublicKey,
    /// Random per channel; with `sealed` it makes every nonce unique (a 128-bit random prefix
    /// makes two channels on the same key collide with negligible probability).
    nonce_prefix: [u8; 16],
    sealed: AtomicU64,
}

impl Channel {
    /// The channel between `me` and the owner of `theirs`.
    pub fn new(me: &Identity, theirs: &PublicKey) -> Result<Self, E2eError> {
        let key = pair_key(me, theirs, AAD_CONTEXT)?;
        let mine = me.public_key();
        let mut nonce_prefix = [0; 16];
        getrandom::fill(&mut nonce_prefix).map_err(|_| E2eError::BadKey)?;
        Ok(Self {
            cipher: XChaCha::new(&key),
            mine,
            theirs: *theirs,
            nonce_prefix,
            sealed: AtomicU64::new(0),
        })
    }

    /// The companion's key this channel encrypts to.
    pub fn theirs(&self) -> &PublicKey {
        &self.theirs
    }

    /// An envelope holding `texts` for the companion, as message `id`.
    pub fn seal(&self, id: &MessageId, counter: u64, texts: &[&str]) -> Result<Vec<u8>, E2eError> {
        let mut out = Vec::with_capacity(sealed_len(texts.iter().map(|t| t.len())));
        self.seal_into(id, counter, texts, &mut out)?;
        Ok(out)
    }

    /// `seal`, appending the envelope to `out` (a frame being built) instead of allocating.
    pub fn seal_into(
        &self,
        id: &MessageId,
        counter: u64,
        texts: &[&str],
        out: &mut Vec<u8>,
    ) -> Result<(), E2eError> {
        // Checked before a nonce is spent and anything is appended to `out`.
        u16::try_from(texts.len()).map_err(|_| E2eError::TooManyLines)?;
        let aad = associated_data(&self.mine, &self.theirs, id);
        self.seal_with(&aad, out, |out| write_text(out, counter, texts))
    }

    /// An envelope holding a file transfer's control message, as message `id`.
    pub fn seal_file(
        &self,
        id: &MessageId,
        counter: u64,
        control: &FileControl,
    ) -> Result<Vec<u8>, E2eError> {
        let aad = associated_data(&self.mine, &self.theirs, id);
        let mut out = Vec::with_capacity(OVERHEAD + PLAIN_HEAD + 64);
        self.seal_with(&aad, &mut out, |out| write_file(out, counter, control))?;
        Ok(out)
    }

    /// Appends the envelope of one chunk of a file (bytes `offset..` of transfer `transfer`)
    /// to `out`. The transfer and offset are bound to it, so a chunk cannot be moved.
    pub fn seal_chunk(
        &self,
        transfer: &TransferId,
        offset: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), E2eError> {
        let aad = chunk_data(&self.mine, &self.theirs, transfer, offset);
        self.seal_with(&aad, out, |out| {
            out.extend_from_slice(data);
            Ok(())
        })
    }

    /// Opens a chunk envelope of transfer `transfer` at `offset`, sent by the companion (or by
    /// this client, `from_me`).
    pub fn open_chunk(
        &self,
        from_me: bool,
        transfer: &TransferId,
        offset: u64,
        body: &[u8],
    ) -> Result<Vec<u8>, E2eError> {
        let (sender, recipient) = self.direction(from_me);
        self.open_with(&chunk_data(sender, recipient, transfer, offset), body)
    }

    /// Seals what `write` appends to `out` after the version and nonce, with `aad`.
    fn seal_with(
        &self,
        aad: &[u8],
        out: &mut Vec<u8>,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E2eError>,
    ) -> Result<(), E2eError> {
        let sequence = self.sealed.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0; NONCE_LEN];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        nonce[16..].copy_from_slice(&sequence.to_be_bytes());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let start = out.len();
        write(out)?;
        let tag = self
            .cipher
            .seal(&nonce, aad, &mut out[start..])
            .map_err(|_| E2eError::Forged)?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens an envelope of message `id`, sent by this client (`from_me`, e.g. in history) or
    /// by the companion.
    pub fn open(&self, from_me: bool, id: &MessageId, body: &[u8]) -> Result<Plain, E2eError> {
        let (sender, recipient) = self.direction(from_me);
        let plain = self.open_with(&associated_data(sender, recipient, id), body)?;
        parse_plain(&plain)
    }

    /// (sender, recipient) of an envelope sent by this client or by the companion.
    fn direction(&self, from_me: bool) -> (&PublicKey, &PublicKey) {
        if from_me {
            (&self.mine, &self.theirs)
        } else {
            (&self.theirs, &self.mine)
        }
    }

    /// The plaintext of an envelope sealed with `aad`.
    fn open_with(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, E2eError> {
        let (&version, rest) = body.split_first().ok_or(E2eError::Truncated)?;
        if version != VERSION {
            return Err(E2eError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(E2eError::Truncated);
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| E2eError::Truncated)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| E2eError::Truncated)?;
        let mut plain = ciphertext.to_vec();
        self.cipher
            .open(nonce, aad, &mut plain, tag)
            .map_err(|_| E2eError::Forged)?;
        Ok(plain)
    }
}

/// The key `me` and the owner of `theirs` share for `context`: HKDF-SHA256 over their static
/// X25519 secret, with info `context`, the lower public key, the higher one. Both sides derive
/// it with no message exchanged.
pub(crate) fn pair_key(
    me: &Identity,
    theirs: &PublicKey,
    context: &[u8],
) -> Result<Zeroizing<[u8; 32]>, E2eError> {
    let their_x = x25519_public(theirs).ok_or(E2eError::BadKey)?;
    let shared = me.x25519_secret().diffie_hellman(&their_x);
    if !shared.was_contributory() {
        return Err(E2eError::BadKey);
    }
    let mine = me.public_key();
    let (low, high) = if mine <= *theirs {
        (&mine, theirs)
    } else {
        (theirs, &mine)
    };
    let mut info = Vec::with_capacity(context.len() + 64);
    info.extend_from_slice(context);
    info.extend_from_slice(low);
    info.extend_from_slice(high);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, shared.as_bytes())
        .expand(&info, key.as_mut())
        .map_err(|_| E2eError::BadKey)?;
    Ok(key)
}

/// Domain separation for chunk envelopes' associated data.
const CHUNK_CONTEXT: &[u8; 17] = b"p2pchat chunk v1\0";

/// A chunk envelope's associated data: context, sender, recipient, transfer, offset.
fn chunk_data(
    sender: &PublicKey,
    recipient: &PublicKey,
    transfer: &TransferId,
    offset: u64,
) -> [u8; 105] {
    let mut aad = [0; 105];
    aad[..17].copy_from_slice(CHUNK_CONTEXT);
    aad[17..49].copy_from_slice(sender);
    aad[49..81].copy_from_slice(recipient);
    aad[81..97].copy_from_slice(transfer);
    aad[97..].copy_from_slice(&offset.to_be_bytes());
    aad
}

/// Envelope bytes for lines of these lengths.
pub fn sealed_len(lengths: impl Iterator<Item = usize>) -> usize {
    OVERHEAD + PLAIN_HEAD + lengths.map(|len| LINE_HEAD + len).sum::<usize>()
}

fn associated_data(sender: &PublicKey, recipient: &PublicKey, id: &MessageId) -> [u8; 95] {
    let mut aad = [0; 95];
    aad[..15].copy_from_slice(AAD_CONTEXT);
    aad[15..47].copy_from_slice(sender);
    aad[47..79].copy_from_slice(recipient);
    aad[79..].copy_from_slice(id);
    aad
}

/// Appends the plaintext of text lines: kind, counter, line count, then each line's length and
/// bytes (room envelopes hold the same plaintext).
pub(crate) fn write_text(out: &mut Vec<u8>, counter: u64, texts: &[&str]) -> Result<(), E2eError> {
    let count = u16::try_from(texts.len()).map_err(|_| E2eError::TooManyLines)?;
    out.push(KIND_TEXT);
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for text in texts {
        let len = u32::try_from(text.len()).map_err(|_| E2eError::TooManyLines)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    Ok(())
}

/// Appends the plaintext of a file transfer's control message: kind, counter, the control.
pub(crate) fn write_file(
    out: &mut Vec<u8>,
    counter: u64,
    control: &FileControl,
) -> Result<(), E2eError> {
    out.push(KIND_FILE);
    out.extend_from_slice(&counter.to_be_bytes());
    control.encode(out)
}

/// The text lines or file control in an opened envelope's plaintext.
pub(crate) fn parse_plain(plain: &[u8]) -> Result<Plain, E2eError> {
    let (&kind, rest) = plain.split_first().ok_or(E2eError::Malformed("empty"))?;
    if kind != KIND_TEXT && kind != KIND_FILE {
        return Err(E2eError::UnknownKind(kind));
    }
    let (counter, rest) = rest
        .split_first_chunk::<8>()
        .ok_or(E2eError::Malformed("no counter"))?;
    if kind == KIND_FILE {
        return Ok(Plain {
            counter: u64::from_be_bytes(*counter),
            texts: Vec::new(),
            file: Some(FileControl::decode(rest)?),
        });
    }
    let (count, mut rest) = rest
        .split_first_chunk::<2>()
        .ok_or(E2eError::Malformed("no line count"))?;
    let count = u16::from_be_bytes(*count);
    let mut texts = Vec::with_capacity(usize::from(count).min(rest.len() / LINE_HEAD));
    for _ in 0..count {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(E2eError::Malformed("line length missing"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(E2eError::Malformed("line longer than the envelope"));
        }
        let (text, tail) = tail.split_at(len);
        let text = std::str::from_utf8(text).map_err(|_| E2eError::Malformed("not UTF-8"))?;
        texts.push(text.to_owned());
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(E2eError::Malformed("bytes after the last line"));
    }
    Ok(Plain {
        counter: u64::from_be_bytes(*counter),
        texts,
        file: None,
    })
}

/// A sender's counter for `Plain::counter`: microseconds since the Unix epoch, or one more than
/// the last value when the clock has not moved on (or went back), so it increases strictly
/// across restarts without being stored anywhere.
#[derive(Debug, Default)]
pub struct Counter {
    last: u64,
}

impl Counter {
    /// The next value. (Not an `Iterator`: it never ends, and an `Option` would only get in the
    /// way.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros() as u64);
        self.last = now.max(self.last + 1);
        self.last
    }
}

#[cfg(test)]
#[path = "e2e_tests.rs"]
mod tests;
