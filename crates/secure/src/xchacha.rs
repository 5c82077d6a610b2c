//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) on top of ring's ChaCha20-Poly1305: HChaCha20
//! of the key and the nonce's first 16 bytes gives a subkey, which seals with ring's IETF
//! ChaCha20-Poly1305 under the nonce `0000 || nonce[16..24]`. The bytes are exactly those of
//! RustCrypto's `XChaCha20Poly1305` (a test checks it); ring's assembly is about twice as fast,
//! which is what file chunks need.

use chacha20::cipher::consts::U10;
use chacha20::cipher::generic_array::GenericArray;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use zeroize::Zeroizing;

/// Nonce bytes.
pub const NONCE_LEN: usize = 24;
/// Authentication tag bytes.
pub const TAG_LEN: usize = 16;

/// Authentication failed (or a length ring refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthentic;

/// One XChaCha20-Poly1305 key.
pub struct XChaCha {
    key: Zeroizing<[u8; 32]>,
}

impl XChaCha {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(*key),
        }
    }

    /// The IETF ChaCha20-Poly1305 key and nonce this extended nonce stands for.
    fn derive(&self, nonce: &[u8; NONCE_LEN]) -> Result<(LessSafeKey, Nonce), Unauthentic> {
        let mut prefix = [0; 16];
        prefix.copy_from_slice(&nonce[..16]);
        let mut subkey = Zeroizing::new([0u8; 32]);
        subkey.copy_from_slice(&chacha20::hchacha::<U10>(
            GenericArray::from_slice(self.key.as_ref()),
            &GenericArray::from(prefix),
        ));
        let key = UnboundKey::new(&CHACHA20_POLY1305, subkey.as_ref()).map_err(|_| Unauthentic)?;
        let mut short = [0; 12];
        short[4..].copy_from_slice(&nonce[16..]);
        Ok((LessSafeKey::new(key), Nonce::assume_unique_for_key(short)))
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Unauthentic> {
        let (key, nonce) = self.derive(nonce)?;
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), in_out)
            .map_err(|_| Unauthentic)?;
        let mut out = [0; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `in_out` in place if `tag` authenticates it.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Unauthentic> {
        let (key, nonce) = self.derive(nonce)?;
        let tag = ring::aead::Tag::from(*tag);
        key.open_in_place_separate_tag(nonce, Aad::from(aad), tag, in_out, 0..)
            .map(|_| ())
            .map_err(|_| Unauthentic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};

    /// Same bytes as the RustCrypto implementation, for lengths around block and batch edges.
    #[test]
    fn matches_rustcrypto_xchacha20poly1305() {
        let key = [0x42; 32];
        let ours = XChaCha::new(&key);
        let theirs = chacha20poly1305::XChaCha20Poly1305::new(GenericArray::from_slice(&key));
        for (round, len) in [
            0usize, 1, 15, 16, 63, 64, 65, 255, 256, 1000, 65_536, 65_553,
        ]
        .into_iter()
        .enumerate()
        {
            let mut nonce = [0u8; NONCE_LEN];
            for (i, byte) in nonce.iter_mut().enumerate() {
                *byte = (i * 7 + round) as u8;
            }
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + round) as u8).collect();
            let aad = b"associated";
            let mut mine = plain.clone();
            let tag = ours.seal(&nonce, aad, &mut mine).expect("seal");
            let mut reference = plain.clone();
            let reference_tag = theirs
                .encrypt_in_place_detached(GenericArray::from_slice(&nonce), aad, &mut reference)
                .expect("reference seal");
            assert_eq!(mine, reference, "ciphertext, length {len}");
            assert_eq!(
                tag.as_slice(),
                reference_tag.as_slice(),
                "tag, length {len}"
            );
            ours.open(&nonce, aad, &mut mine, &tag).expect("open");
            assert_eq!(mine, plain);
        }
    }

    #[test]
    fn refuses_altered_bytes_tag_nonce_and_aad() {
        let ours = XChaCha::new(&[9; 32]);
        let nonce = [3; NONCE_LEN];
        let mut sealed = b"hello there".to_vec();
        let tag = ours.seal(&nonce, b"aad", &mut sealed).expect("seal");
        let mut altered = sealed.clone();
        altered[0] ^= 1;
        assert!(ours.open(&nonce, b"aad", &mut altered, &tag).is_err());
        let mut bad_tag = tag;
        bad_tag[15] ^= 1;
        assert!(ours
            .open(&nonce, b"aad", &mut sealed.clone(), &bad_tag)
            .is_err());
        let mut other_nonce = nonce;
        other_nonce[0] ^= 1;
        assert!(ours
            .open(&other_nonce, b"aad", &mut sealed.clone(), &tag)
            .is_err());
        let mut late_nonce = nonce;
        late_nonce[23] ^= 1;
        assert!(ours
            .open(&late_nonce, b"aad", &mut sealed.clone(), &tag)
            .is_err());
        assert!(ours
            .open(&nonce, b"aae", &mut sealed.clone(), &tag)
            .is_err());
    }
}
