//! Feeds arbitrary bytes to `p2pchat_proto::decode`, frame after frame, under several limits.
//!
//! For every frame that decodes it checks that re-encoding gives back exactly the bytes that were
//! decoded (the encoding is canonical, which the relay relies on when it forwards frames byte for
//! byte) and that those bytes decode to the same frame. It also checks that `peek_header` never
//! disagrees with `decode` about where a frame ends, and that a frame cut short asks for more.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat_proto::{
    decode, encode_to_vec, peek_header, DecodeError, DEFAULT_MAX_MESSAGE, FRAME_OVERHEAD,
};

/// A small limit (most frames are refused as too large), the relay's default, and no limit.
const LIMITS: [usize; 3] = [
    256,
    (DEFAULT_MAX_MESSAGE + FRAME_OVERHEAD) as usize,
    usize::MAX,
];

fuzz_target!(|data: &[u8]| {
    for max in LIMITS {
        decode_all(data, max);
    }
});

fn decode_all(data: &[u8], max: usize) {
    let mut rest = data;
    loop {
        let peeked = peek_header(rest, max);
        match decode(rest, max) {
            Ok(Some((frame, used))) => {
                let header = peeked
                    .expect("peek_header failed where decode succeeded")
                    .expect("peek_header wants more bytes where decode succeeded");
                assert_eq!(
                    header.frame_len(),
                    used,
                    "peek_header and decode disagree on length"
                );
                assert_eq!(header.frame_type(), Some(frame.frame_type()));
                assert!(used <= rest.len());

                let bytes = encode_to_vec(&frame);
                assert_eq!(
                    bytes,
                    &rest[..used],
                    "re-encoding {frame:?} changed its bytes"
                );
                assert_eq!(
                    decode(&bytes, max),
                    Ok(Some((frame, used))),
                    "round trip failed"
                );
                assert_eq!(
                    decode(&bytes[..used - 1], max),
                    Ok(None),
                    "cut frame not incomplete"
                );

                rest = &rest[used..];
            }
            Ok(None) => {
                // Either the header is not all there, or the frame it announces is not.
                match peeked {
                    Ok(None) => assert!(rest.len() < p2pchat_proto::HEADER_LEN),
                    Ok(Some(header)) => assert!(header.frame_len() > rest.len()),
                    Err(err) => panic!("peek_header refused ({err}) what decode waits on"),
                }
                return;
            }
            Err(err) => {
                let _ = err.error_code();
                match err.skip_len() {
                    // The frame boundary is lost: peek_header must have seen the same.
                    None => {
                        assert!(matches!(
                            err,
                            DecodeError::EmptyFrame | DecodeError::TooLarge { .. }
                        ));
                        assert_eq!(peeked, Err(err));
                        return;
                    }
                    // A bad frame that can be stepped over: peek_header agrees on its length.
                    Some(skip) => {
                        let header = peeked
                            .expect("peek_header failed where decode found a skippable frame")
                            .expect("peek_header wants more bytes where decode found a frame");
                        assert_eq!(header.frame_len(), skip, "peek_header and decode disagree");
                        assert!(skip <= rest.len() && skip >= p2pchat_proto::HEADER_LEN);
                        rest = &rest[skip..];
                    }
                }
            }
        }
    }
}
