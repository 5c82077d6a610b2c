//! Feeds arbitrary message bodies and file chunks to a client's end-to-end checks
//! (`Channel::open`, `open_chunk`) and arbitrary bytes to the file control decoder, as a relay
//! or a companion gone bad could deliver them, and mutates genuine envelopes. It fails if
//! opening panics, if anything but the untouched envelope opens, or if what opens differs from
//! what was sealed.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use p2pchat_secure::{Channel, FileControl, Identity};

/// Alice's channel to Bob and Bob's from Alice, made once (key agreement is the slow part, and
/// not what is fuzzed here).
fn channels() -> &'static (Channel, Channel) {
    static CHANNELS: OnceLock<(Channel, Channel)> = OnceLock::new();
    CHANNELS.get_or_init(|| {
        let alice = Identity::from_seed(&[1; 32]);
        let bob = Identity::from_seed(&[2; 32]);
        match (
            Channel::new(&alice, &bob.public_key()),
            Channel::new(&bob, &alice.public_key()),
        ) {
            (Ok(to_bob), Ok(from_alice)) => (to_bob, from_alice),
            _ => panic!("fixed keys are valid"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (to_bob, from_alice) = channels();
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let id = [control; 16];
    // Arbitrary bytes as a body or a file chunk, from either side, and as a file control
    // message (what an authenticated but hostile companion could send).
    let _ = from_alice.open(control & 1 == 0, &id, rest);
    let _ = from_alice.open_chunk(control & 1 == 0, &id, u64::from(control), rest);
    if let Ok(file) = FileControl::decode(rest) {
        let mut again = Vec::new();
        file.encode(&mut again).expect("a decoded control message encodes");
        assert_eq!(FileControl::decode(&again), Ok(file));
    }

    // A genuine envelope of the input's lines, then one byte changed or the end cut off.
    let text = String::from_utf8_lossy(rest);
    let lines: Vec<&str> = text.split('\n').take(64).collect();
    let sealed = to_bob.seal(&id, u64::from(control), &lines).expect("seal");
    let opened = from_alice.open(false, &id, &sealed).expect("genuine envelope");
    assert_eq!(opened.texts, lines);
    assert_eq!(opened.counter, u64::from(control));
    let at = usize::from(control) % sealed.len();
    let mut altered = sealed.clone();
    altered[at] ^= 1 | control;
    assert!(from_alice.open(false, &id, &altered).is_err(), "altered byte {at} opened");
    assert!(from_alice.open(false, &id, &sealed[..at]).is_err(), "cut envelope opened");
    assert!(to_bob.open(false, &id, &sealed).is_err(), "reflected envelope opened");

    // A genuine chunk of the input's bytes, then moved to another offset.
    let mut chunk = Vec::new();
    to_bob.seal_chunk(&id, 7, rest, &mut chunk).expect("seal chunk");
    assert_eq!(from_alice.open_chunk(false, &id, 7, &chunk).as_deref(), Ok(rest));
    assert!(from_alice.open_chunk(false, &id, 8, &chunk).is_err(), "moved chunk opened");
});
