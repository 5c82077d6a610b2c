//! Feeds arbitrary login proofs to the relay's check (`p2pchat_secure::verify_login`): key,
//! challenge, signature and nickname bytes straight from the input, as a hostile client would
//! send them in `Nick` or `Resume`. It fails if the check panics, is not deterministic, or
//! accepts a proof that a real key did not make for exactly that challenge and nickname.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat_secure::{verify_login, Identity};

fuzz_target!(|data: &[u8]| {
    if data.len() < 128 {
        return;
    }
    let key: [u8; 32] = data[..32].try_into().unwrap();
    let challenge: [u8; 32] = data[32..64].try_into().unwrap();
    let proof: [u8; 64] = data[64..128].try_into().unwrap();
    let nick = String::from_utf8_lossy(&data[128..]);
    let verdict = verify_login(&key, &challenge, &nick, &proof);
    assert_eq!(verdict, verify_login(&key, &challenge, &nick, &proof));

    // A genuine proof verifies, and stops verifying when any input byte differs.
    let identity = Identity::from_seed(&key);
    let genuine = identity.sign_login(&challenge, &nick);
    assert!(verify_login(&identity.public_key(), &challenge, &nick, &genuine));
    if proof != genuine {
        assert!(!verify_login(&identity.public_key(), &challenge, &nick, &proof));
    }
    let mut other = challenge;
    other[0] ^= 1;
    assert!(!verify_login(&identity.public_key(), &other, &nick, &genuine));
});
