use super::*;

const MAX: usize = 1 << 20;

/// Parses everything in `buf`, returning the items and whether bytes were left over.
fn parse_all(proto: Proto, buf: &[u8]) -> (Vec<Parsed>, usize) {
    let mut items = Vec::new();
    let mut pos = 0;
    while let Some((item, used)) = parse(proto, &buf[pos..], MAX).expect("parses") {
        items.push(match item {
            Parsed::Message(range) => Parsed::Message(range.start + pos..range.end + pos),
            Parsed::Bulk(range) => Parsed::Bulk(range.start + pos..range.end + pos),
            Parsed::Said(range) => Parsed::Said(range.start + pos..range.end + pos),
            other => other,
        });
        pos += used;
    }
    (items, buf.len() - pos)
}

#[test]
fn resp_push_reply_and_confirmation() {
    let buf = b"*3\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n:1\r\n\
                *3\r\n$7\r\nmessage\r\n$3\r\nch1\r\n$5\r\nhello\r\n:2\r\n+OK\r\n";
    let (items, left) = parse_all(Proto::Redis, buf);
    assert_eq!(left, 0);
    assert_eq!(items.len(), 4);
    assert_eq!(items[0], Parsed::Subscribed);
    let Parsed::Message(range) = items[1].clone() else {
        panic!("not a message: {:?}", items[1]);
    };
    assert_eq!(&buf[range], b"hello");
    assert_eq!(items[2], Parsed::Int(2));
    assert_eq!(items[3], Parsed::Simple);
}

#[test]
fn resp_waits_for_partial_input_at_every_cut() {
    let buf = b"*3\r\n$7\r\nmessage\r\n$3\r\nch1\r\n$5\r\nhe\r\no\r\n";
    for cut in 0..buf.len() {
        assert_eq!(
            parse(Proto::Redis, &buf[..cut], MAX),
            Ok(None),
            "cut at {cut}"
        );
    }
    let (item, used) = parse(Proto::Redis, buf, MAX).unwrap().unwrap();
    assert_eq!(used, buf.len());
    // The payload may itself contain CRLF: the length decides.
    assert_eq!(item, Parsed::Message(buf.len() - 7..buf.len() - 2));
}

#[test]
fn resp_errors_and_garbage_are_reported() {
    assert!(matches!(
        parse(Proto::Redis, b"-ERR unknown command\r\n", MAX),
        Err(WireError::Server(text)) if text == "ERR unknown command"
    ));
    assert!(parse(Proto::Redis, b"\r\n", MAX).is_err());
    assert!(parse(
        Proto::Redis,
        b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$99\r\n",
        10
    )
    .is_err());
    assert!(parse(
        Proto::Redis,
        b"*3\r\n$3\r\nfoo\r\n$1\r\nc\r\n$1\r\nx\r\n",
        MAX
    )
    .is_err());
    assert!(parse(Proto::Redis, b"hello\r\n", MAX).is_err());
}

#[test]
fn nats_msg_ping_and_info() {
    let buf = b"INFO {\"server_id\":\"x\"}\r\nMSG subj.1 1 5\r\nhello\r\nPING\r\n\
                MSG subj.1 1 _INBOX.x 3\r\nabc\r\n+OK\r\nPONG\r\n";
    let (items, left) = parse_all(Proto::Nats, buf);
    assert_eq!(left, 0);
    assert_eq!(items[0], Parsed::Info);
    let Parsed::Message(first) = items[1].clone() else {
        panic!("not a message");
    };
    assert_eq!(&buf[first], b"hello");
    assert_eq!(items[2], Parsed::Ping);
    let Parsed::Message(second) = items[3].clone() else {
        panic!("not a message");
    };
    assert_eq!(&buf[second], b"abc");
    assert_eq!(items[4..], [Parsed::Simple, Parsed::Pong]);
}

#[test]
fn nats_partial_input_and_errors() {
    let buf = b"MSG s 1 4\r\nab\r\n\r\n";
    for cut in 0..buf.len() {
        assert_eq!(
            parse(Proto::Nats, &buf[..cut], MAX),
            Ok(None),
            "cut at {cut}"
        );
    }
    assert_eq!(
        parse(Proto::Nats, buf, MAX),
        Ok(Some((Parsed::Message(11..15), buf.len())))
    );
    assert!(matches!(
        parse(Proto::Nats, b"-ERR 'Slow Consumer'\r\n", MAX),
        Err(WireError::Server(_))
    ));
    assert!(parse(Proto::Nats, b"MSG s 1\r\n", MAX).is_err());
    assert!(parse(Proto::Nats, b"MSG s 1 4\r\nabcdXX", MAX).is_err());
    assert!(parse(Proto::Nats, b"WHAT\r\n", MAX).is_err());
}

#[test]
fn framed_messages_and_frames() {
    let encoder = Encoder::new(Proto::Framed, "", 20);
    let mut buf = Vec::new();
    encoder.message(&mut buf, 2, 9, 20);
    let reference = p2pchat_proto::encode_to_vec(&Frame::Message(p2pchat_proto::ChatMessage {
        seq: 0,
        sent_ms: 0,
        id: [0; 16],
        body: b"000002-0000000009-xx".to_vec(),
    }));
    assert_eq!(buf, reference);
    buf.extend_from_slice(&p2pchat_proto::encode_to_vec(&Frame::Ping(7)));
    let (items, left) = parse_all(Proto::Framed, &buf);
    assert_eq!(left, 0);
    assert_eq!(
        items,
        [Parsed::Message(37..57), Parsed::Frame(Frame::Ping(7))]
    );
    assert!(parse(Proto::Framed, &[0, 0, 0, 0, 7], MAX).is_err());
}

#[test]
fn redis_and_nats_encoders() {
    let mut buf = Vec::new();
    Encoder::new(Proto::Redis, "ch", 18).message(&mut buf, 1, 2, 18);
    assert_eq!(
        buf,
        b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$18\r\n000001-0000000002-\r\n"
    );
    buf.clear();
    Encoder::new(Proto::Nats, "s.1", 18).raw(&mut buf, b"000001-0000000002-");
    assert_eq!(buf, b"PUB s.1 18\r\n000001-0000000002-\r\n");
}

#[test]
fn xadd_encoder_and_id_replies() {
    let mut buf = Vec::new();
    Encoder::xadd("s:3", 18).message(&mut buf, 3, 7, 18);
    assert_eq!(
        buf,
        b"*5\r\n$4\r\nXADD\r\n$3\r\ns:3\r\n$1\r\n*\r\n$1\r\nm\r\n$18\r\n000003-0000000007-\r\n"
    );
    let replies = b"$15\r\n1700000000000-0\r\n$15\r\n1700000000000-1\r\n";
    let (items, left) = parse_all(Proto::Redis, replies);
    assert_eq!(left, 0);
    assert_eq!(items, [Parsed::Bulk(5..20), Parsed::Bulk(27..42)]);
    assert_eq!(stream_id(&replies[27..42]), Some((1_700_000_000_000, 1)));
    for cut in 0..22 {
        assert_eq!(
            parse(Proto::Redis, &replies[..cut], MAX),
            Ok(None),
            "cut at {cut}"
        );
    }
}

#[test]
fn bad_xadd_replies_are_refused() {
    assert!(parse(Proto::Redis, b"$-1\r\n", MAX).is_err());
    assert!(parse(Proto::Redis, b"$3\r\nabcd\r\n", MAX).is_err());
    assert!(matches!(
        parse(
            Proto::Redis,
            b"-ERR The ID specified in XADD is smaller\r\n",
            MAX
        ),
        Err(WireError::Server(_))
    ));
    for bad in [&b"12"[..], b"-1", b"1-", b"a-1", b"1-2-3", b"1-+2", b""] {
        assert_eq!(stream_id(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(stream_id(b"0-0"), Some((0, 0)));
}

#[test]
fn said_frames_yield_their_body_whatever_the_author() {
    for author in ["", "alice", "a-much-longer-nickname-of-32-ch"] {
        let body = vec![0xA5; 190];
        let said = p2pchat_proto::RoomMessage {
            seq: 7,
            sent_ms: 1_700_000_000_000,
            id: [3; 16],
            author: author.into(),
            body: body.clone(),
        };
        let frame = p2pchat_proto::encode_to_vec(&Frame::Said(said.clone()));
        let mut buf = frame.clone();
        buf.extend_from_slice(&frame);
        let (items, left) = parse_all(Proto::Framed, &buf);
        assert_eq!((items.len(), left), (2, 0));
        for item in items {
            let Parsed::Said(range) = item else {
                panic!("not a room message: {item:?}");
            };
            assert_eq!(&buf[range], &body[..]);
        }
        // The decoder agrees on what the frame holds.
        assert_eq!(
            decode(&frame, MAX).unwrap(),
            Some((Frame::Said(said), frame.len()))
        );
        for cut in 0..frame.len() {
            assert_eq!(
                parse(Proto::Framed, &frame[..cut], MAX),
                Ok(None),
                "cut {cut}"
            );
        }
    }
}
