use super::*;
use crate::OnlineEntry;
use crate::{login_transcript, LOGIN_CONTEXT, PROTOCOL_VERSION};
use proptest::prelude::*;

const MAX: usize = 64 * 1024 + 64;

fn msg(text: &str) -> Frame {
    Frame::Message(ChatMessage {
        seq: 0,
        sent_ms: 0,
        id: [7; 16],
        body: text.as_bytes().to_vec(),
    })
}

fn all_kinds() -> Vec<Frame> {
    vec![
        Frame::Hello {
            version: PROTOCOL_VERSION,
            features: 0,
            client: "p2pchat 0.1.0".into(),
        },
        Frame::Welcome {
            version: 1,
            features: 0,
            max_message: 65536,
            heartbeat_ms: 30_000,
            challenge: [5; 32],
            server: "p2pchat 0.1.0".into(),
        },
        Frame::Nick {
            nick: "Nick1".into(),
            key: [1; 32],
            proof: [2; 64],
        },
        Frame::NickOk {
            nick: "Nick1".into(),
            token: [9; 16],
        },
        Frame::Resume {
            nick: "Nick1".into(),
            token: [9; 16],
            key: [1; 32],
            proof: [2; 64],
        },
        Frame::Release,
        Frame::Released("Nick1".into()),
        Frame::Chunk(crate::FileChunk {
            transfer: [6; 16],
            offset: 1 << 33,
            body: vec![1, 2, 3],
        }),
        Frame::Conversation(ConversationInfo {
            companion: "Nick2".into(),
            companion_key: [4; 32],
            last_seq: 10,
            read_through: 8,
            their_read_through: 9,
            last_from_you: 7,
            last_id_from_you: [3; 16],
        }),
        Frame::Ack {
            count: 3,
            first_seq: 41,
        },
        Frame::Received(41),
        Frame::Delivered(41),
        Frame::History {
            before: 0,
            limit: 20,
        },
        Frame::Earlier(EarlierMessage {
            seq: 5,
            sent_ms: 1_764_000_000_000,
            mine: true,
            id: [1; 16],
            body: b"earlier".to_vec(),
        }),
        Frame::HistoryEnd {
            count: 1,
            more: false,
        },
        Frame::Waiting,
        Frame::Paired("Nick2".into()),
        Frame::Message(ChatMessage {
            seq: 42,
            sent_ms: -1,
            id: [0xAB; 16],
            body: "Sup 😀 你好 שלום".as_bytes().to_vec(),
        }),
        Frame::Left {
            reason: LeftReason::ConnectionLost,
            nick: "Nick2".into(),
        },
        Frame::Ping(7),
        Frame::Pong(u64::MAX),
        Frame::Bye,
        Frame::Shutdown("server is shutting down".into()),
        Frame::Error {
            code: ErrorCode::NickTaken,
            fatal: false,
            text: "taken".into(),
        },
        Frame::Who,
        Frame::Online {
            total: 3,
            entries: vec![
                OnlineEntry {
                    nick: "Nick1".into(),
                    chatting: true,
                },
                OnlineEntry {
                    nick: "Зоя".into(),
                    chatting: false,
                },
            ],
        },
        Frame::ChatWith("Nick2".into()),
        Frame::WaitingFor("Nick2".into()),
    ]
    .into_iter()
    .chain(room_kinds())
    .collect()
}

fn room_kinds() -> Vec<Frame> {
    use crate::{MemberEntry, NewsKind, RoomAction, RoomEntry, RoomInfo, RoomMessage, RoomNews};
    vec![
        Frame::Join("Café".into()),
        Frame::Part,
        Frame::Rooms,
        Frame::Room(RoomInfo {
            room: "Café".into(),
            owner: "Зоя".into(),
            invite_only: true,
            last_seq: 9,
            read_through: 4,
            last_from_you: 3,
            last_id_from_you: [3; 16],
        }),
        Frame::Members {
            more: true,
            entries: vec![
                MemberEntry {
                    nick: "Nick1".into(),
                    key: [1; 32],
                    online: true,
                },
                MemberEntry {
                    nick: "Зоя".into(),
                    key: [2; 32],
                    online: false,
                },
            ],
        },
        Frame::Members {
            more: false,
            entries: Vec::new(),
        },
        Frame::Said(RoomMessage {
            seq: 5,
            sent_ms: 1_700_000_000_000,
            id: [5; 16],
            author: "Nick1".into(),
            body: vec![2, 0x11, 9],
        }),
        Frame::RoomNews(RoomNews {
            kind: NewsKind::Banned,
            nick: "Nick2".into(),
            key: [0; 32],
        }),
        Frame::RoomAdmin {
            action: RoomAction::Kick,
            nick: "Nick2".into(),
        },
        Frame::RoomList {
            total: 2,
            entries: vec![RoomEntry {
                room: "lobby".into(),
                members: 3,
                online: 1,
                invite_only: false,
                member: true,
            }],
        },
    ]
}

#[test]
fn a_said_frame_written_from_fields_decodes_to_the_same_message() {
    let mut out = Vec::new();
    crate::write_said(&mut out, 7, 11, &[4; 16], "Зоя", b"body");
    assert_eq!(out.len(), crate::said_len("Зоя", 4));
    let expected = Frame::Said(crate::RoomMessage {
        seq: 7,
        sent_ms: 11,
        id: [4; 16],
        author: "Зоя".into(),
        body: b"body".to_vec(),
    });
    assert_eq!(decode(&out, MAX), Ok(Some((expected, out.len()))));
}

#[test]
fn room_frames_with_bad_fields_are_skippable() {
    // Unknown news kind, author longer than the frame, a flag that is not 0 or 1.
    for payload in [
        vec![0x21, 99],
        vec![
            0x20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
            11, 12, 13, 14, 15, 16, 200, b'x',
        ],
        vec![0x1F, 2],
    ] {
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        let err = decode(&bytes, MAX).unwrap_err();
        assert_eq!(err.skip_len(), Some(bytes.len()), "{err}");
    }
}

#[test]
fn every_kind_round_trips() {
    for frame in all_kinds() {
        let bytes = encode_to_vec(&frame);
        assert_eq!(decode(&bytes, MAX), Ok(Some((frame, bytes.len()))));
    }
}

#[test]
fn message_frame_layout_matches_the_docs() {
    let mut expected = vec![0, 0, 0, 36, 0x07];
    expected.extend([0; 16]);
    expected.extend([7; 16]);
    expected.extend(b"Sup");
    assert_eq!(encode_to_vec(&msg("Sup")), expected);
    assert_eq!(encode_to_vec(&Frame::Waiting), [0, 0, 0, 1, 0x05]);
}

#[test]
fn partial_input_asks_for_more() {
    let bytes = encode_to_vec(&msg("hello"));
    for cut in 0..bytes.len() {
        assert_eq!(decode(&bytes[..cut], MAX), Ok(None), "cut at {cut}");
    }
}

#[test]
fn oversized_length_is_refused_before_the_payload_arrives() {
    let header = [0xFF, 0xFF, 0xFF, 0xFF, 0x07];
    assert_eq!(
        decode(&header, MAX),
        Err(DecodeError::TooLarge {
            len: u32::MAX as usize,
            max: MAX
        })
    );
    assert_eq!(decode(&[0, 0, 0, 0, 7], MAX), Err(DecodeError::EmptyFrame));
}

#[test]
fn unknown_type_can_be_skipped() {
    let bytes = [0, 0, 0, 3, 0x7F, 1, 2];
    let err = decode(&bytes, MAX).unwrap_err();
    assert_eq!(err.skip_len(), Some(7));
    assert_eq!(err.error_code(), ErrorCode::UnknownType);
}

#[test]
fn invalid_utf8_is_reported_not_replaced() {
    let mut bytes = encode_to_vec(&Frame::Paired("ab".into()));
    let len = bytes.len();
    bytes[len - 2..].copy_from_slice(&[0xC3, 0x28]);
    let err = decode(&bytes, MAX).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::InvalidUtf8);
    assert_eq!(err.skip_len(), Some(len));
}

#[test]
fn stamping_writes_seq_and_time_in_place() {
    let mut bytes = encode_to_vec(&msg("hi"));
    stamp_message(&mut bytes, 77, 1_764_000_000_123);
    assert_eq!(message_seq(&bytes), Some(77));
    assert_eq!(message_id(&bytes), Some([7; 16]));
    let Ok(Some((Frame::Message(message), _))) = decode(&bytes, MAX) else {
        panic!("stamped frame does not decode");
    };
    assert_eq!((message.seq, message.sent_ms), (77, 1_764_000_000_123));
    assert_eq!(message.body, b"hi");
}

#[test]
fn a_message_body_is_opaque_bytes() {
    let frame = Frame::Message(ChatMessage {
        seq: 0,
        sent_ms: 0,
        id: [7; 16],
        body: vec![0xC3, 0x28, 0, 0xFF],
    });
    let bytes = encode_to_vec(&frame);
    assert_eq!(decode(&bytes, MAX), Ok(Some((frame, bytes.len()))));
}

#[test]
fn the_login_transcript_binds_challenge_and_nick() {
    let a = login_transcript(&[1; 32], "Nick1");
    assert!(a.starts_with(LOGIN_CONTEXT));
    assert_ne!(a, login_transcript(&[2; 32], "Nick1"));
    assert_ne!(a, login_transcript(&[1; 32], "Nick2"));
}

#[test]
fn a_message_without_text_is_malformed() {
    let mut bytes = encode_to_vec(&msg("x"));
    bytes.pop();
    bytes[3] -= 1;
    assert!(matches!(
        decode(&bytes, MAX),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn short_and_surplus_fields_are_malformed() {
    let short_ping = [0, 0, 0, 3, 0x09, 0, 1];
    assert!(matches!(
        decode(&short_ping, MAX),
        Err(DecodeError::Malformed { .. })
    ));
    let long_bye = [0, 0, 0, 2, 0x0B, 0];
    assert!(matches!(
        decode(&long_bye, MAX),
        Err(DecodeError::Malformed { .. })
    ));
    let bad_magic = [0, 0, 0, 11, 0x01, b'H', b'T', b'T', b'P', 0, 1, 0, 0, 0, 0];
    assert!(matches!(
        decode(&bad_magic, MAX),
        Err(DecodeError::Malformed { .. })
    ));
    let long_nick = encode_to_vec(&Frame::Nick {
        nick: "n".repeat(2000),
        key: [0; 32],
        proof: [0; 64],
    });
    assert!(matches!(
        decode(&long_nick, MAX),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn back_to_back_frames_decode_in_order() {
    let mut bytes = Vec::new();
    for frame in all_kinds() {
        bytes.extend(encode_to_vec(&frame));
    }
    let mut rest = &bytes[..];
    let mut seen = Vec::new();
    while let Some((frame, used)) = decode(rest, MAX).unwrap() {
        seen.push(frame);
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    assert_eq!(seen, all_kinds());
}

/// A 64-byte signature-shaped field from 32 arbitrary bytes (proptest has no 64-byte arrays).
fn signature(half: [u8; 32]) -> [u8; 64] {
    let mut out = [0; 64];
    out[..32].copy_from_slice(&half);
    out[32..].copy_from_slice(&half);
    out
}

fn any_frame() -> impl Strategy<Value = Frame> {
    let short = "\\PC{0,40}";
    prop_oneof![
        (any::<u16>(), any::<u32>(), short).prop_map(|(version, features, client)| Frame::Hello {
            version,
            features,
            client
        }),
        (
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<[u8; 32]>(),
            short
        )
            .prop_map(
                |(version, features, max_message, heartbeat_ms, challenge, server)| {
                    Frame::Welcome {
                        version,
                        features,
                        max_message,
                        heartbeat_ms,
                        challenge,
                        server,
                    }
                }
            ),
        (short, any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(nick, key, half)| Frame::Nick {
            nick,
            key,
            proof: signature(half),
        }),
        (short, any::<[u8; 16]>()).prop_map(|(nick, token)| Frame::NickOk { nick, token }),
        (short, any::<[u8; 16]>(), any::<[u8; 32]>()).prop_map(|(nick, token, key)| {
            Frame::Resume {
                nick,
                token,
                key,
                proof: signature(key),
            }
        }),
        Just(Frame::Release),
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 1..100)
        )
            .prop_map(|(transfer, offset, body)| Frame::Chunk(crate::FileChunk {
                transfer,
                offset,
                body
            })),
        short.prop_map(Frame::Released),
        (any::<u64>(), any::<u32>()).prop_map(|(first_seq, count)| Frame::Ack { count, first_seq }),
        any::<u64>().prop_map(Frame::Received),
        (
            any::<u64>(),
            any::<u64>(),
            any::<i64>(),
            any::<bool>(),
            any::<[u8; 16]>(),
            proptest::collection::vec(any::<u8>(), 1..100)
        )
            .prop_map(|(before, seq, sent_ms, mine, id, body)| {
                if before % 2 == 0 {
                    Frame::History {
                        before,
                        limit: seq as u32,
                    }
                } else {
                    Frame::Earlier(EarlierMessage {
                        seq,
                        sent_ms,
                        mine,
                        id,
                        body,
                    })
                }
            }),
        Just(Frame::Waiting),
        short.prop_map(Frame::Paired),
        (
            any::<u64>(),
            any::<i64>(),
            any::<[u8; 16]>(),
            proptest::collection::vec(any::<u8>(), 1..100)
        )
            .prop_map(|(seq, sent_ms, id, body)| Frame::Message(ChatMessage {
                seq,
                sent_ms,
                id,
                body
            })),
        (0u8..4, short).prop_map(|(r, nick)| Frame::Left {
            reason: LeftReason::from_u8(r).unwrap(),
            nick
        }),
        any::<u64>().prop_map(Frame::Ping),
        any::<u64>().prop_map(Frame::Pong),
        Just(Frame::Bye),
        short.prop_map(Frame::Shutdown),
        (any::<u16>(), any::<bool>(), short).prop_map(|(code, fatal, text)| Frame::Error {
            code: ErrorCode::from_u16(code),
            fatal,
            text
        }),
        Just(Frame::Who),
        (
            any::<u32>(),
            proptest::collection::vec(("\\PC{0,32}", any::<bool>()), 0..20)
        )
            .prop_map(|(total, entries)| Frame::Online {
                total,
                entries: entries
                    .into_iter()
                    .map(|(nick, chatting)| OnlineEntry { nick, chatting })
                    .collect()
            }),
        short.prop_map(Frame::ChatWith),
        short.prop_map(Frame::WaitingFor),
    ]
}

proptest! {
    #[test]
    fn decode_inverts_encode(frame in any_frame()) {
        let bytes = encode_to_vec(&frame);
        prop_assert_eq!(decode(&bytes, usize::MAX), Ok(Some((frame, bytes.len()))));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes, 256);
    }

    #[test]
    fn error_codes_round_trip(code in any::<u16>()) {
        prop_assert_eq!(ErrorCode::from_u16(code).to_u16(), code);
    }
}

/// The room frames of docs/PROTOCOL.md section 8, byte for byte.
#[test]
fn room_frames_encode_as_the_protocol_document_shows() {
    use crate::{MemberEntry, NewsKind, RoomAction, RoomEntry, RoomInfo, RoomNews};
    let hex = |text: &str| -> Vec<u8> {
        text.split_whitespace()
            .filter(|part| *part != "|")
            .map(|byte| u8::from_str_radix(byte, 16).unwrap())
            .collect()
    };
    let key_a = hex("8a 88 e3 dd 74 09 f1 95 fd 52 db 2d 3c ba 5d 72 ca 67 09 bf 1d 94 12 1b f3 74 88 01 b4 0f 6f 5c");
    let key_b = hex("81 39 77 0e a8 7d 17 5f 56 a3 54 66 c3 4c 7e cc cb 8d 8a 91 b4 ee 37 a2 5d f6 0f 5b 8f c9 b3 94");
    let ids: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
    let cases = [
        (
            Frame::Join("lobby".into()),
            "00 00 00 06 | 1d | 6c 6f 62 62 79".to_owned(),
        ),
        (
            Frame::Room(RoomInfo {
                room: "lobby".into(),
                owner: "ann".into(),
                invite_only: false,
                last_seq: 7,
                read_through: 5,
                last_from_you: 6,
                last_id_from_you: ids,
            }),
            "00 00 00 33 | 1e | 00 00 00 00 00 00 00 07 | 00 00 00 00 00 00 00 05 | 00 00 00 00 00 00 00 06 | a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af | 00 | 03 61 6e 6e | 6c 6f 62 62 79".to_owned(),
        ),
        (
            Frame::Members {
                more: false,
                entries: vec![MemberEntry {
                    nick: "ann".into(),
                    key: key_a.clone().try_into().unwrap(),
                    online: true,
                }],
            },
            format!("00 00 00 27 | 1f | 00 | 01 | {} | 03 61 6e 6e", to_hex(&key_a)),
        ),
        (
            Frame::RoomNews(RoomNews {
                kind: NewsKind::Joined,
                nick: "bob".into(),
                key: key_b.clone().try_into().unwrap(),
            }),
            format!("00 00 00 25 | 21 | 00 | {} | 62 6f 62", to_hex(&key_b)),
        ),
        (
            Frame::RoomAdmin {
                action: RoomAction::Kick,
                nick: "bob".into(),
            },
            "00 00 00 05 | 23 | 01 | 62 6f 62".to_owned(),
        ),
        (Frame::Part, "00 00 00 01 | 22".to_owned()),
        (Frame::Rooms, "00 00 00 01 | 24".to_owned()),
        (
            Frame::RoomList {
                total: 1,
                entries: vec![RoomEntry {
                    room: "lobby".into(),
                    members: 2,
                    online: 1,
                    invite_only: false,
                    member: true,
                }],
            },
            "00 00 00 14 | 25 | 00 00 00 01 | 00 00 00 02 | 00 00 00 01 | 02 | 05 6c 6f 62 62 79"
                .to_owned(),
        ),
    ];
    for (frame, expected) in cases {
        assert_eq!(encode_to_vec(&frame), hex(&expected), "{frame:?}");
    }
    // A Said frame: seq 8, sent_ms 1767225600000, id a0 … af, author "ann", then the body.
    let mut said = Vec::new();
    crate::write_said(&mut said, 8, 1_767_225_600_000, &ids, "ann", &[0x02, 0x11]);
    assert_eq!(
        said,
        hex("00 00 00 27 | 20 | 00 00 00 00 00 00 00 08 | 00 00 01 9b 76 da a8 00 | a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af | 03 61 6e 6e | 02 11")
    );
}

fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
