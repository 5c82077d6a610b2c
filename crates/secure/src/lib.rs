//! p2pchat's keys and cryptography, with no sockets and no async: a client's long-term
//! identity, the end-to-end envelopes messages travel in, safety numbers, and the TLS set-up of
//! both ends (self-signed certificates, trust on first use, pinning). The relay uses only the
//! identity check and the TLS server side; it never holds a key that opens an envelope.

pub mod e2e;
pub mod identity;
pub mod pinfile;
pub mod room;
pub mod safety;
pub mod tls;
pub mod transfer;
mod xchacha;

mod hex;

pub use e2e::{Channel, Counter, E2eError, Plain};
pub use hex::{from_hex, to_hex};
pub use identity::{verify_login, verify_room, Identity, IdentityError};
pub use pinfile::PinFile;
pub use room::{RoomError, RoomKeys};
pub use safety::{key_fingerprint, safety_number};
pub use transfer::{FileControl, TransferId};
pub mod files;

/// Locks a mutex, taking the data even if a thread panicked while holding it (every value
/// guarded here stays consistent between statements).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
