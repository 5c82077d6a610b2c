use super::*;

fn pair() -> (Identity, Identity) {
    (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]))
}

#[test]
fn the_companion_opens_what_was_sealed_and_so_does_the_sender() {
    let (alice, bob) = pair();
    let a = Channel::new(&alice, &bob.public_key()).unwrap();
    let b = Channel::new(&bob, &alice.public_key()).unwrap();
    let sealed = a.seal(&[9; 16], 42, &["hello", "", "wörld"]).unwrap();
    assert_eq!(sealed.len(), sealed_len([5, 0, 6].into_iter()));
    let plain = b.open(false, &[9; 16], &sealed).unwrap();
    assert_eq!(plain.counter, 42);
    assert_eq!(plain.texts, ["hello", "", "wörld"]);
    assert_eq!(a.open(true, &[9; 16], &sealed).unwrap(), plain);
}

#[test]
fn nothing_readable_in_the_envelope() {
    let (alice, bob) = pair();
    let a = Channel::new(&alice, &bob.public_key()).unwrap();
    let sealed = a.seal(&[9; 16], 1, &["secret words"]).unwrap();
    assert!(!sealed.windows(6).any(|w| w == b"secret"));
    let again = a.seal(&[9; 16], 1, &["secret words"]).unwrap();
    assert_ne!(sealed, again, "a nonce was reused");
}

#[test]
fn altered_misdirected_or_relabelled_envelopes_are_refused() {
    let (alice, bob) = pair();
    let mallory = Identity::from_seed(&[3; 32]);
    let a = Channel::new(&alice, &bob.public_key()).unwrap();
    let b = Channel::new(&bob, &alice.public_key()).unwrap();
    let sealed = a.seal(&[9; 16], 1, &["hi"]).unwrap();
    for at in [1, 30, sealed.len() - 1] {
        let mut altered = sealed.clone();
        altered[at] ^= 1;
        assert_eq!(b.open(false, &[9; 16], &altered), Err(E2eError::Forged));
    }
    // Another message id, or reflected back to its author as if the companion sent it.
    assert_eq!(b.open(false, &[8; 16], &sealed), Err(E2eError::Forged));
    assert_eq!(a.open(false, &[9; 16], &sealed), Err(E2eError::Forged));
    // Someone else's channel with Bob.
    let m = Channel::new(&mallory, &bob.public_key()).unwrap();
    let forged = m.seal(&[9; 16], 1, &["hi"]).unwrap();
    assert_eq!(b.open(false, &[9; 16], &forged), Err(E2eError::Forged));
    assert_eq!(
        b.open(false, &[9; 16], b"plain text"),
        Err(E2eError::UnknownVersion(b'p'))
    );
    assert_eq!(
        b.open(false, &[9; 16], &[VERSION, 0, 0]),
        Err(E2eError::Truncated)
    );
}

#[test]
fn a_bad_public_key_is_refused() {
    let (alice, _) = pair();
    assert_eq!(Channel::new(&alice, &[0; 32]).err(), Some(E2eError::BadKey));
}

#[test]
fn counters_increase_strictly() {
    let mut counter = Counter::default();
    let first = counter.next();
    let second = counter.next();
    assert!(second > first);
}
