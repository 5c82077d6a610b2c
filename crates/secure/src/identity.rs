//! A client's long-term identity: one Ed25519 key pair, created on first run and kept in an
//! owner-only file. It proves ownership of nicknames (the login signature) and, converted to
//! X25519 (the birational map libsodium and age use), is the key companions encrypt to, so one
//! 32-byte public key is the whole identity a relay stores and a companion pins.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use p2pchat_proto::{login_transcript, Challenge, PublicKey, Signature};
use zeroize::Zeroizing;

use crate::files::write_private;
use crate::hex::{from_hex, to_hex};

/// Domain separation for what room envelopes sign (and authenticate, as the start of their
/// associated data): no login transcript, which starts with `LOGIN_CONTEXT`, reads as one.
pub const ROOM_CONTEXT: &[u8] = b"p2pchat room v1\0";

/// First line of an identity file; says what the file is to whoever opens it.
const FILE_HEADER: &str =
    "# p2pchat identity: keep this file secret. It proves your nicknames and opens your messages.";
/// The key of the line that holds the secret seed.
const SEED_FIELD: &str = "ed25519-seed";

/// Why an identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file could not be read or written.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file exists but holds no identity this version can read.
    #[error("identity file {path} is not a p2pchat identity (no valid `{SEED_FIELD}` line)")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
    /// The file is readable by other users, so the key may be known to them.
    #[error(
        "identity file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system's random number generator failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// A long-term key pair. The secret never leaves this type except into the identity file.
pub struct Identity {
    signing: SigningKey,
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|err| IdentityError::Random(err.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The identity whose secret seed is `seed` (tests and benchmarks derive many this way).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The identity in `path`, creating it (0600, parent directories 0700) if there is no file
    /// yet; the flag says whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), IdentityError> {
        match std::fs::metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate()?;
                identity.save(path)?;
                Ok((identity, true))
            }
            Err(source) => Err(IdentityError::Io {
                path: path.into(),
                source,
            }),
        }
    }

    /// The identity in `path`, which must exist and be private to its owner.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| IdentityError::Io {
            path: path.into(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed {
                path: path.into(),
                mode,
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        text.lines()
            .filter_map(|line| line.trim().strip_prefix(SEED_FIELD))
            .find_map(|rest| from_hex::<32>(rest.trim()))
            .map(|seed| Self::from_seed(&Zeroizing::new(seed)))
            .ok_or_else(|| IdentityError::Invalid { path: path.into() })
    }

    /// Writes the identity to `path` (0600), replacing what is there.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        let text = Zeroizing::new(format!(
            "{FILE_HEADER}\n{SEED_FIELD} {}\npublic-key {}\n",
            to_hex(self.signing.as_bytes()),
            to_hex(&self.public_key())
        ));
        write_private(path, text.as_bytes()).map_err(|source| IdentityError::Io {
            path: path.into(),
            source,
        })
    }

    /// The public key: what the relay registers a nickname to and companions encrypt to.
    pub fn public_key(&self) -> PublicKey {
        self.signing.verifying_key().to_bytes()
    }

    /// The proof for `Nick`/`Resume`: a signature over `login_transcript(challenge, nick)`.
    pub fn sign_login(&self, challenge: &Challenge, nick: &str) -> Signature {
        self.signing
            .sign(&login_transcript(challenge, nick))
            .to_bytes()
    }

    /// A signature over `ROOM_CONTEXT` followed by `parts`, for room envelopes (the context is
    /// added here so no caller can sign a room transcript that is also something else).
    pub fn sign_room(&self, parts: &[&[u8]]) -> Signature {
        self.signing.sign(&room_transcript(parts)).to_bytes()
    }

    /// The X25519 secret for end-to-end encryption.
    pub(crate) fn x25519_secret(&self) -> x25519_dalek::StaticSecret {
        x25519_dalek::StaticSecret::from(self.signing.to_scalar_bytes())
    }
}

/// Whether `proof` is `key`'s signature over `login_transcript(challenge, nick)`. Strict
/// verification: no malleable or small-order keys and signatures.
pub fn verify_login(key: &PublicKey, challenge: &Challenge, nick: &str, proof: &Signature) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(proof);
    key.verify_strict(&login_transcript(challenge, nick), &signature)
        .is_ok()
}

/// Whether `signature` is `key`'s `sign_room` signature over `parts`. Strict verification, as
/// for logins.
pub fn verify_room(key: &PublicKey, parts: &[&[u8]], signature: &Signature) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(&room_transcript(parts), &signature)
        .is_ok()
}

/// `ROOM_CONTEXT` and `parts`, concatenated: what a room signature covers.
fn room_transcript(parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|part| part.len()).sum::<usize>();
    let mut out = Vec::with_capacity(ROOM_CONTEXT.len() + len);
    out.extend_from_slice(ROOM_CONTEXT);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The X25519 public key that goes with an identity key, or `None` for bytes that are not a
/// valid Ed25519 point (or are a weak, small-order one).
pub(crate) fn x25519_public(key: &PublicKey) -> Option<x25519_dalek::PublicKey> {
    let key = VerifyingKey::from_bytes(key).ok()?;
    if key.is_weak() {
        return None;
    }
    Some(x25519_dalek::PublicKey::from(
        key.to_montgomery().to_bytes(),
    ))
}

/// Where the identity lives unless `--identity` says otherwise: `p2pchat/identity` in the
/// platform's config dir (`$XDG_CONFIG_HOME` or `~/.config` on Linux).
pub fn default_path() -> Option<PathBuf> {
    Some(dirs::config_dir()?.join("p2pchat").join("identity"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_then_loaded_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("identity");
        let (first, created) = Identity::load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = Identity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public_key(), again.public_key());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn an_exposed_or_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        Identity::generate().unwrap().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Exposed { .. })
        ));
        std::fs::write(&path, "hello\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Invalid { .. })
        ));
    }

    #[test]
    fn a_login_proof_binds_key_challenge_and_nick() {
        let alice = Identity::from_seed(&[1; 32]);
        let mallory = Identity::from_seed(&[2; 32]);
        let proof = alice.sign_login(&[7; 32], "alice");
        assert!(verify_login(&alice.public_key(), &[7; 32], "alice", &proof));
        assert!(!verify_login(
            &mallory.public_key(),
            &[7; 32],
            "alice",
            &proof
        ));
        assert!(!verify_login(
            &alice.public_key(),
            &[8; 32],
            "alice",
            &proof
        ));
        assert!(!verify_login(
            &alice.public_key(),
            &[7; 32],
            "alicf",
            &proof
        ));
        assert!(!verify_login(&[0; 32], &[7; 32], "alice", &[0; 64]));
    }

    #[test]
    fn a_room_signature_is_neither_a_login_proof_nor_another_transcript() {
        let alice = Identity::from_seed(&[1; 32]);
        let key = alice.public_key();
        let signature = alice.sign_room(&[b"ab", b"c"]);
        assert!(verify_room(&key, &[b"a", b"bc"], &signature));
        assert!(!verify_room(&key, &[b"abd"], &signature));
        let bob = Identity::from_seed(&[2; 32]);
        assert!(!verify_room(&bob.public_key(), &[b"abc"], &signature));
        // A login proof over the same bytes is not a room signature, and the other way round.
        let proof = alice.sign_login(&[7; 32], "alice");
        let mut login = vec![7; 32];
        login.extend_from_slice(b"alice");
        assert!(!verify_room(&key, &[&login], &proof));
        let room = alice.sign_room(&[&[7; 32], b"alice"]);
        assert!(!verify_login(&key, &[7; 32], "alice", &room));
    }
}
