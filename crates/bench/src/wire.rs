//! Pure parsers and encoders for the three wire formats the bench speaks: p2pchat frames (also
//! sent raw through the splice relay and direct connections), Redis RESP and the NATS text
//! protocol. No I/O here: bytes in, events out.

use std::fmt;
use std::ops::Range;

use p2pchat_proto::{
    decode, peek_header, ChatMessage, DecodeError, Frame, FrameType, HEADER_LEN, MESSAGE_HEAD,
    SAID_HEAD,
};

/// Which wire format a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// p2pchat frames (`Message` frames carry the payload).
    Framed,
    /// Redis RESP2 (pub/sub pushes and command replies).
    Redis,
    /// NATS client protocol.
    Nats,
}

/// One thing parsed from the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A message; the range is its payload within the parsed buffer.
    Message(Range<usize>),
    /// A p2pchat room message (`Said`); the range is its body within the parsed buffer.
    Said(Range<usize>),
    /// A p2pchat frame other than `Message`.
    Frame(Frame),
    /// Redis integer reply (the answer to `PUBLISH`: number of receivers).
    Int(i64),
    /// Redis bulk string reply (the answer to `XADD`: the new entry's id); its range.
    Bulk(Range<usize>),
    /// Redis `subscribe` confirmation.
    Subscribed,
    /// Redis simple string (`+OK`, `+PONG`) or NATS `+OK`.
    Simple,
    /// NATS `PING` from the server (must be answered with `PONG`).
    Ping,
    /// NATS `PONG`.
    Pong,
    /// NATS `INFO {...}`.
    Info,
}

/// Bytes that cannot be parsed, or an error reported by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The p2pchat decoder refused a frame.
    Frame(DecodeError),
    /// The byte stream does not follow the protocol.
    Garbage(String),
    /// The server sent an error (`-ERR ...`).
    Server(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(err) => write!(f, "undecodable frame: {err}"),
            Self::Garbage(what) => write!(f, "unexpected bytes from the server: {what}"),
            Self::Server(text) => write!(f, "the server reported an error: {text}"),
        }
    }
}

impl std::error::Error for WireError {}

type ParseResult = Result<Option<(Parsed, usize)>, WireError>;

/// Longest control line accepted (NATS `INFO` can be a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// Parses one item from the start of `buf`; `Ok(None)` means more bytes are needed. `max` bounds
/// a message payload (and a p2pchat frame length).
pub fn parse(proto: Proto, buf: &[u8], max: usize) -> ParseResult {
    match proto {
        Proto::Framed => parse_framed(buf, max),
        Proto::Redis => parse_redis(buf, max),
        Proto::Nats => parse_nats(buf, max),
    }
}

fn parse_framed(buf: &[u8], max: usize) -> ParseResult {
    let Some(header) = peek_header(buf, max).map_err(WireError::Frame)? else {
        return Ok(None);
    };
    let len = header.frame_len();
    if buf.len() < len {
        return Ok(None);
    }
    if header.type_byte == FrameType::Message as u8 && len > HEADER_LEN + MESSAGE_HEAD {
        // The hot path: no allocation, the caller checks the text itself.
        return Ok(Some((Parsed::Message(HEADER_LEN + MESSAGE_HEAD..len), len)));
    }
    if header.type_byte == FrameType::Said as u8 && len > HEADER_LEN + SAID_HEAD {
        // The same for room messages: the body follows the author's name, whose length is the
        // last byte of the fixed fields. A body that would be empty goes to the decoder, which
        // refuses it.
        let body = HEADER_LEN + SAID_HEAD + usize::from(buf[HEADER_LEN + SAID_HEAD - 1]);
        if body < len {
            return Ok(Some((Parsed::Said(body..len), len)));
        }
    }
    match decode(buf, max).map_err(WireError::Frame)? {
        Some((frame, used)) => Ok(Some((Parsed::Frame(frame), used))),
        None => Ok(None),
    }
}

/// The line starting at `pos` (without `\r\n`) and the position after it.
fn line(buf: &[u8], pos: usize) -> Result<Option<(Range<usize>, usize)>, WireError> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(nl) if nl > 0 && rest[nl - 1] == b'\r' => Ok(Some((pos..pos + nl - 1, pos + nl + 1))),
        Some(_) => Err(WireError::Garbage("line not ended by CRLF".into())),
        None if rest.len() > MAX_LINE => Err(WireError::Garbage("line too long".into())),
        None => Ok(None),
    }
}

fn number(bytes: &[u8]) -> Result<i64, WireError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            WireError::Garbage(format!("bad number {:?}", String::from_utf8_lossy(bytes)))
        })
}

fn length(bytes: &[u8], max: usize) -> Result<usize, WireError> {
    let len = number(bytes)?;
    usize::try_from(len)
        .ok()
        .filter(|&len| len <= max)
        .ok_or_else(|| WireError::Garbage(format!("length {len} out of range")))
}

/// `$len\r\nbytes\r\n` at `pos`: the bytes' range and the position after.
fn bulk(buf: &[u8], pos: usize, max: usize) -> Result<Option<(Range<usize>, usize)>, WireError> {
    let Some((head, body)) = line(buf, pos)? else {
        return Ok(None);
    };
    if head.is_empty() || buf[head.start] != b'$' {
        return Err(WireError::Garbage("expected a RESP bulk string".into()));
    }
    let len = length(&buf[head.start + 1..head.end], max)?;
    let end = body + len;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(WireError::Garbage(
            "RESP bulk string not ended by CRLF".into(),
        ));
    }
    Ok(Some((body..end, end + 2)))
}

fn parse_redis(buf: &[u8], max: usize) -> ParseResult {
    let Some((head, mut pos)) = line(buf, 0)? else {
        return Ok(None);
    };
    if head.is_empty() {
        return Err(WireError::Garbage("empty RESP line".into()));
    }
    let text = &buf[head.start + 1..head.end];
    let parsed = match buf.first() {
        Some(b':') => Parsed::Int(number(text)?),
        Some(b'+') => Parsed::Simple,
        Some(b'$') => {
            if text == b"-1" {
                return Err(WireError::Garbage("RESP null bulk reply".into()));
            }
            let Some((body, next)) = bulk(buf, 0, MAX_LINE)? else {
                return Ok(None);
            };
            pos = next;
            Parsed::Bulk(body)
        }
        Some(b'-') => {
            return Err(WireError::Server(
                String::from_utf8_lossy(text).into_owned(),
            ))
        }
        Some(b'*') => {
            if number(text)? != 3 {
                return Err(WireError::Garbage(
                    "RESP array of other than 3 items".into(),
                ));
            }
            let Some((kind, next)) = bulk(buf, pos, MAX_LINE)? else {
                return Ok(None);
            };
            let Some((_channel, next)) = bulk(buf, next, MAX_LINE)? else {
                return Ok(None);
            };
            pos = next;
            match &buf[kind] {
                b"message" => {
                    let Some((payload, next)) = bulk(buf, pos, max)? else {
                        return Ok(None);
                    };
                    pos = next;
                    Parsed::Message(payload)
                }
                b"subscribe" => {
                    let Some((count, next)) = line(buf, pos)? else {
                        return Ok(None);
                    };
                    if count.is_empty() || buf[count.start] != b':' {
                        return Err(WireError::Garbage(
                            "subscribe count is not an integer".into(),
                        ));
                    }
                    pos = next;
                    Parsed::Subscribed
                }
                other => {
                    let kind = String::from_utf8_lossy(other);
                    return Err(WireError::Garbage(format!("unexpected RESP push {kind:?}")));
                }
            }
        }
        _ => return Err(WireError::Garbage("not a RESP2 reply".into())),
    };
    Ok(Some((parsed, pos)))
}

fn parse_nats(buf: &[u8], max: usize) -> ParseResult {
    let Some((head, pos)) = line(buf, 0)? else {
        return Ok(None);
    };
    let text = &buf[head];
    if let Some(args) = text.strip_prefix(b"MSG ") {
        // MSG <subject> <sid> [reply-to] <#bytes>
        let fields: Vec<&[u8]> = args
            .split(|&b| b == b' ')
            .filter(|f| !f.is_empty())
            .collect();
        if !(3..=4).contains(&fields.len()) {
            return Err(WireError::Garbage("malformed NATS MSG line".into()));
        }
        let len = length(fields[fields.len() - 1], max)?;
        let end = pos + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(WireError::Garbage("NATS payload not ended by CRLF".into()));
        }
        return Ok(Some((Parsed::Message(pos..end), end + 2)));
    }
    let parsed = match text {
        b"PING" => Parsed::Ping,
        b"PONG" => Parsed::Pong,
        b"+OK" => Parsed::Simple,
        _ if text.starts_with(b"INFO ") => Parsed::Info,
        _ if text.starts_with(b"-ERR") => {
            return Err(WireError::Server(
                String::from_utf8_lossy(text).into_owned(),
            ))
        }
        _ => {
            let text = String::from_utf8_lossy(&text[..text.len().min(80)]).into_owned();
            return Err(WireError::Garbage(format!("unexpected NATS line {text:?}")));
        }
    };
    Ok(Some((parsed, pos)))
}

/// Encodes messages of a fixed size to one destination: `prefix`, payload, `suffix`.
#[derive(Debug, Clone)]
pub struct Encoder {
    prefix: Vec<u8>,
    suffix: &'static [u8],
}

impl Encoder {
    /// Messages of `size` bytes sent as `proto` to `dest` (a channel or subject; unused for
    /// p2pchat frames, whose destination is the companion).
    pub fn new(proto: Proto, dest: &str, size: usize) -> Self {
        match proto {
            Proto::Framed => {
                // The reference encoder's header and fixed fields for a Message of this size
                // (the relay stamps seq and time; the bench does not need ids).
                let message = ChatMessage {
                    seq: 0,
                    sent_ms: 0,
                    id: [0; 16],
                    body: vec![b'x'; size],
                };
                let frame = p2pchat_proto::encode_to_vec(&Frame::Message(message));
                Self {
                    prefix: frame[..HEADER_LEN + MESSAGE_HEAD].to_vec(),
                    suffix: b"",
                }
            }
            Proto::Redis => Self {
                prefix: format!(
                    "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{dest}\r\n${size}\r\n",
                    dest.len()
                )
                .into_bytes(),
                suffix: b"\r\n",
            },
            Proto::Nats => Self {
                prefix: format!("PUB {dest} {size}\r\n").into_bytes(),
                suffix: b"\r\n",
            },
        }
    }

    /// Messages of `size` bytes appended to the Redis stream `key` as field `m` of a new entry
    /// with a server-chosen id: `XADD key * m <payload>`, answered by the id.
    pub fn xadd(key: &str, size: usize) -> Self {
        Self {
            prefix: format!(
                "*5\r\n$4\r\nXADD\r\n${}\r\n{key}\r\n$1\r\n*\r\n$1\r\nm\r\n${size}\r\n",
                key.len()
            )
            .into_bytes(),
            suffix: b"\r\n",
        }
    }

    /// Appends message `index` of conversation `conv` (see `payload`).
    pub fn message(&self, out: &mut Vec<u8>, conv: u32, index: u64, size: usize) {
        out.extend_from_slice(&self.prefix);
        crate::payload::write_payload(out, conv, index, size);
        out.extend_from_slice(self.suffix);
    }

    /// Appends a message with this exact payload (of the encoder's size).
    pub fn raw(&self, out: &mut Vec<u8>, payload: &[u8]) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(payload);
        out.extend_from_slice(self.suffix);
    }
}

/// A Redis stream entry id, `<ms>-<seq>`, as a pair that orders as the ids do.
pub fn stream_id(text: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let (ms, seq) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
