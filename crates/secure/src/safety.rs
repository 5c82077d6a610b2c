//! What people compare to check keys: a conversation's safety number (the same on both sides,
//! read aloud or compared in person, as in Signal) and a key's short fingerprint.

use p2pchat_proto::PublicKey;
use sha2::{Digest, Sha256, Sha512};

/// The safety number of the conversation between the owners of `a` and `b`: 60 digits in 12
/// groups of 5, the same whichever side computes it. It changes when either key changes.
pub fn safety_number(a: &PublicKey, b: &PublicKey) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = Sha512::new();
    hash.update(b"p2pchat safety number v1\0");
    hash.update(low);
    hash.update(high);
    let digest = hash.finalize();
    digest
        .chunks_exact(5)
        .take(12)
        .map(|chunk| {
            let value = chunk
                .iter()
                .fold(0u64, |acc, byte| acc << 8 | u64::from(*byte));
            format!("{:05}", value % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A key's fingerprint for people: the first 16 bytes of its SHA-256, in 8 groups of 4 hex
/// digits.
pub fn key_fingerprint(key: &PublicKey) -> String {
    let digest = Sha256::digest(key);
    crate::hex::to_hex(&digest[..16])
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_see_the_same_number_and_it_follows_the_keys() {
        let number = safety_number(&[1; 32], &[2; 32]);
        assert_eq!(number, safety_number(&[2; 32], &[1; 32]));
        assert_eq!(number.len(), 12 * 5 + 11);
        assert!(number.split(' ').all(|group| group.len() == 5));
        assert_ne!(number, safety_number(&[1; 32], &[3; 32]));
    }

    #[test]
    fn fingerprints_are_short_and_distinct() {
        let print = key_fingerprint(&[1; 32]);
        assert_eq!(print.len(), 8 * 4 + 7);
        assert_ne!(print, key_fingerprint(&[2; 32]));
    }
}
