use super::*;

use p2pchat_proto::{decode, Frame};
use p2pchat_secure::Identity;

use crate::wire::{parse, Parsed};

const SIZE: usize = 24;
const MAX: usize = 1 << 20;

/// Alice's codec sealing to Bob (`lines` per envelope) and Bob's codec opening from Alice.
fn pair(lines: u64) -> (Codec, Codec) {
    let alice = Identity::from_seed(&[1; 32]);
    let bob = Identity::from_seed(&[2; 32]);
    let to_bob = Channel::new(&alice, &bob.public_key()).unwrap();
    let to_alice = Channel::new(&bob, &alice.public_key()).unwrap();
    (
        Codec::sealed(SIZE, Arc::new(to_bob), lines),
        Codec::sealed(SIZE, Arc::new(to_alice), lines),
    )
}

/// The `(id, body)` of every `Message` frame in `buf`.
fn frames(buf: &[u8]) -> Vec<(MessageId, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some((frame, used)) = decode(&buf[pos..], MAX).unwrap() {
        let Frame::Message(message) = frame else {
            panic!("not a message: {frame:?}");
        };
        assert_eq!((message.seq, message.sent_ms), (0, 0), "left for the relay");
        out.push((message.id, message.body));
        pos += used;
    }
    assert_eq!(pos, buf.len(), "bytes left over");
    out
}

#[test]
fn plaintext_is_one_frame_per_message_checked_in_order() {
    let codec = Codec::plain(Encoder::new(Proto::Framed, "", SIZE), SIZE);
    assert_eq!((codec.per_frame(), codec.frames_for(5)), (1, 5));
    let mut buf = Vec::new();
    assert_eq!(codec.encode(&mut buf, 7, 0..3).unwrap(), 3);
    let mut verifier = codec.verifier(7, 3);
    for (k, (id, body)) in frames(&buf).into_iter().enumerate() {
        assert_eq!(body.len(), SIZE);
        let k = k as u64;
        assert_eq!(verifier.check(&id, &body), Ok(k..k + 1));
    }
    assert!(verifier.is_done());
}

#[test]
fn a_batch_round_trips_as_envelopes_of_at_most_per_frame_messages() {
    let (alice, bob) = pair(4);
    assert_eq!((alice.per_frame(), alice.frames_for(10)), (4, 3));
    let mut buf = Vec::new();
    assert_eq!(alice.encode(&mut buf, 3, 0..10).unwrap(), 3);
    // The bench's own parser finds the same frames, with the body where the reader takes it.
    let (Parsed::Message(body), used) = parse(Proto::Framed, &buf, MAX).unwrap().unwrap() else {
        panic!("not a message");
    };
    let sealed = frames(&buf);
    assert_eq!(&buf[body], &sealed[0].1[..]);
    assert_eq!(p2pchat_proto::message_id(&buf), Some(sealed[0].0));
    assert!(used < buf.len());
    let mut verifier = bob.verifier(3, 10);
    let got: Vec<_> = sealed
        .iter()
        .map(|(id, body)| verifier.check(id, body).unwrap())
        .collect();
    assert_eq!(got, [0..4, 4..8, 8..10]);
    assert!(verifier.is_done());
    // Bob answers in the other direction with one message per envelope.
    buf.clear();
    bob.encode(&mut buf, 3, 0..1).unwrap();
    let (id, body) = frames(&buf).remove(0);
    assert_eq!(alice.verifier(3, 1).check(&id, &body), Ok(0..1));
}

#[test]
fn a_tampered_envelope_is_an_error_and_counts_no_message() {
    let (alice, bob) = pair(8);
    let mut buf = Vec::new();
    alice.encode(&mut buf, 0, 0..8).unwrap();
    let (id, body) = frames(&buf).remove(0);
    let mut verifier = bob.verifier(0, 8);
    for at in [0, 30, body.len() / 2, body.len() - 1] {
        let mut bad = body.clone();
        bad[at] ^= 0x40;
        assert!(
            matches!(verifier.check(&id, &bad), Err(VerifyError::Envelope(_))),
            "byte {at}"
        );
    }
    let mut other_id = id;
    other_id[15] ^= 1;
    assert_eq!(
        verifier.check(&other_id, &body),
        Err(VerifyError::Envelope(E2eError::Forged))
    );
    assert_eq!(
        verifier.check(&id, &body[..10]),
        Err(VerifyError::Envelope(E2eError::Truncated))
    );
    assert_eq!(verifier.received(), 0);
    // The genuine envelope still opens; the same one again is a replay.
    assert_eq!(verifier.check(&id, &body), Ok(0..8));
    assert_eq!(
        verifier.check(&id, &body),
        Err(VerifyError::Replayed {
            counter: 1,
            last: 1
        })
    );
    assert_eq!(verifier.received(), 8);
}

#[test]
fn envelopes_for_someone_else_or_reflected_are_refused() {
    let (alice, bob) = pair(2);
    let mut buf = Vec::new();
    alice.encode(&mut buf, 0, 0..2).unwrap();
    let (id, body) = frames(&buf).remove(0);
    // Alice's own envelope handed back to her (the relay reflecting it).
    assert_eq!(
        alice.verifier(0, 2).check(&id, &body),
        Err(VerifyError::Envelope(E2eError::Forged))
    );
    // Carol shares no key with Alice's channel to Bob.
    let carol = Identity::from_seed(&[3; 32]);
    let alice_key = Identity::from_seed(&[1; 32]).public_key();
    let carol = Codec::sealed(SIZE, Arc::new(Channel::new(&carol, &alice_key).unwrap()), 2);
    assert_eq!(
        carol.verifier(0, 2).check(&id, &body),
        Err(VerifyError::Envelope(E2eError::Forged))
    );
    assert_eq!(bob.verifier(0, 2).check(&id, &body), Ok(0..2));
}

#[test]
fn lines_inside_an_envelope_are_checked_like_payloads() {
    let (alice, bob) = pair(4);
    let mut buf = Vec::new();
    // Messages 4..8 when 0 is expected: a gap.
    alice.encode(&mut buf, 5, 4..8).unwrap();
    // Conversation 6's messages on conversation 5.
    alice.encode(&mut buf, 6, 0..4).unwrap();
    let sealed = frames(&buf);
    let mut verifier = bob.verifier(5, 8);
    assert_eq!(
        verifier.check(&sealed[0].0, &sealed[0].1),
        Err(VerifyError::Payload(PayloadError::OutOfOrder {
            got: 4,
            want: 0
        }))
    );
    let mut verifier = bob.verifier(5, 8);
    assert_eq!(
        verifier.check(&sealed[1].0, &sealed[1].1),
        Err(VerifyError::Payload(PayloadError::WrongConversation {
            got: 6,
            want: 5
        }))
    );
    // More lines than expected.
    buf.clear();
    alice.encode(&mut buf, 5, 0..4).unwrap();
    let (id, body) = frames(&buf).remove(0);
    assert_eq!(
        bob.verifier(5, 3).check(&id, &body),
        Err(VerifyError::Payload(PayloadError::TooMany { total: 3 }))
    );
}

#[test]
fn envelopes_fit_the_relays_message_limit() {
    // 64 lines of 64 bytes: 64 × 68 + 52 bytes.
    assert_eq!(lines_that_fit(64, 64, 65_536), 64);
    assert_eq!(lines_that_fit(64, 64, 64 * 68 + 51), 63);
    assert_eq!(lines_that_fit(1, 64, 65_536), 1);
    assert_eq!(lines_that_fit(64, 64, 100), 0);
    assert_eq!(lines_that_fit(100_000, 18, u32::MAX), u64::from(u16::MAX));
    let (alice, _) = pair(64);
    let mut buf = Vec::new();
    alice.encode(&mut buf, 0, 0..64).unwrap();
    let (_, body) = frames(&buf).remove(0);
    assert_eq!(body.len(), sealed_len(std::iter::repeat_n(SIZE, 64)));
}
