//! One connection (plain TCP, or TLS over TCP) split into a shared `Writer` and a `Reader` that
//! parses events, answers the server's pings by itself, and hands everything else to the caller.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use p2pchat_proto::{ErrorCode, Frame, MessageId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio_rustls::client::TlsStream;

use crate::wire::{parse, Parsed, Proto};

/// Spare room kept in a read buffer before each read.
const READ_CHUNK: usize = 64 * 1024;

/// A connected stream: plain TCP, or TLS over TCP.
pub enum Link {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS (boxed: the session state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

/// The read half of a `Link`. A TCP stream splits into independent halves; a TLS session is
/// shared by both (tokio's `split` locks it for each read or write).
enum ReadHalf {
    Tcp(OwnedReadHalf),
    /// With a buffer of plaintext read and copied on at once (see `read_buf`).
    Tls(tokio::io::ReadHalf<Box<TlsStream<TcpStream>>>, Box<[u8]>),
}

/// Bytes of plaintext taken from a TLS session per read: a whole record.
const TLS_READ: usize = 16 * 1024;

/// The write half of a `Link`.
enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<Box<TlsStream<TcpStream>>>),
}

impl ReadHalf {
    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Self::Tcp(half) => half.read_buf(buf).await,
            // Not `read_buf`: tokio-rustls zero-fills the spare capacity it is handed on every
            // call (64 KiB here), which cost more than the decryption on small messages.
            Self::Tls(half, scratch) => {
                let n = half.read(scratch).await?;
                buf.extend_from_slice(&scratch[..n]);
                Ok(n)
            }
        }
    }
}

impl WriteHalf {
    /// Writes all of `bytes` and, for TLS, flushes the records rustls still holds: without the
    /// flush a record it buffered when the socket was full would wait for the next write.
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(half) => half.write_all(bytes).await,
            Self::Tls(half) => {
                half.write_all(bytes).await?;
                half.flush().await
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Tcp(half) => half.write(bytes).await,
            Self::Tls(half) => half.write(bytes).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Tcp(_) => Ok(()),
            Self::Tls(half) => half.flush().await,
        }
    }
}

/// The write side of a connection; cloneable so a reader can answer pings while a sender task
/// writes, without ever interleaving two writes.
#[derive(Clone)]
pub struct Writer(Arc<Mutex<WriteHalf>>);

impl Writer {
    /// Writes all of `bytes`.
    pub async fn send(&self, bytes: &[u8]) -> Result<()> {
        let mut half = self.0.lock().await;
        half.write_all(bytes)
            .await
            .context("writing to the server failed")
    }

    /// Writes some of `bytes` (at least one byte unless empty); returns how many. Cancel-safe:
    /// if the future is dropped before it completes, nothing was written.
    async fn send_some(&self, bytes: &[u8]) -> Result<usize> {
        let mut half = self.0.lock().await;
        half.write(bytes)
            .await
            .context("writing to the server failed")
    }

    /// Pushes out what TLS still buffers (nothing to do for TCP).
    async fn flush(&self) -> Result<()> {
        let mut half = self.0.lock().await;
        half.flush().await.context("writing to the server failed")
    }

    /// Writes all of `bytes` unless another task is writing now; returns whether it wrote.
    pub async fn try_send(&self, bytes: &[u8]) -> Result<bool> {
        let Ok(mut half) = self.0.try_lock() else {
            return Ok(false);
        };
        half.write_all(bytes)
            .await
            .context("writing to the server failed")?;
        Ok(true)
    }
}

/// What a `Reader` hands to its caller.
#[derive(Debug)]
pub enum Event<'a> {
    /// A message payload (an envelope in end-to-end mode) and, for p2pchat frames, its id
    /// (zero for the other formats).
    Message { id: MessageId, body: &'a [u8] },
    /// A p2pchat room message's body (the author's, byte for byte).
    Said { body: &'a [u8] },
    /// A p2pchat frame other than `Message` and `Ping`.
    Frame(Frame),
    /// Redis integer reply.
    Ack(i64),
    /// Redis bulk string reply (an `XADD` entry id).
    Bulk(&'a [u8]),
    /// Redis subscribe confirmation.
    Subscribed,
    /// NATS `PONG`, Redis simple string.
    Pong,
    /// NATS `INFO`.
    Info,
}

/// The read side of a connection.
pub struct Reader {
    half: ReadHalf,
    buf: BytesMut,
    proto: Proto,
    max: usize,
    writer: Writer,
    replies: Vec<u8>,
    /// Whether p2pchat's `Ack` and `Conversation` frames reach the caller (else dropped).
    bookkeeping: bool,
}

/// Splits a connected stream speaking `proto`; `max` bounds a message (or frame) length.
pub fn split(link: Link, proto: Proto, max: usize) -> (Writer, Reader) {
    let (read, write) = match link {
        Link::Tcp(stream) => {
            let (read, write) = stream.into_split();
            (ReadHalf::Tcp(read), WriteHalf::Tcp(write))
        }
        Link::Tls(stream) => {
            let (read, write) = tokio::io::split(stream);
            (
                ReadHalf::Tls(read, vec![0; TLS_READ].into_boxed_slice()),
                WriteHalf::Tls(write),
            )
        }
    };
    let writer = Writer(Arc::new(Mutex::new(write)));
    let reader = Reader {
        half: read,
        buf: BytesMut::with_capacity(READ_CHUNK),
        proto,
        max,
        writer: writer.clone(),
        replies: Vec::new(),
        bookkeeping: false,
    };
    (writer, reader)
}

/// Connects to `addr` with TCP_NODELAY, from `source` (port chosen at connect time) when given.
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream> {
    let stream = match source {
        Some(ip) => {
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if ip.is_ipv4() {
                // Lets many sockets share a source port as long as the 4-tuple differs.
                setsockopt(&socket, IpBindAddressNoPort, &true)
                    .context("setting IP_BIND_ADDRESS_NO_PORT")?;
            }
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding a client socket to {ip}"))?;
            socket.connect(addr).await
        }
        None => TcpStream::connect(addr).await,
    }
    .with_context(|| match source {
        Some(ip) => format!("connecting to {addr} from {ip}"),
        None => format!("connecting to {addr}"),
    })?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Reader {
    /// Hands events to `f` until it returns `Some`, reading as needed; events after that one
    /// stay buffered for the next call. Pings are answered here and never reach `f`.
    ///
    /// Cancel-safe: dropping the future loses no bytes; events already handed to `f` are
    /// consumed (so `f` should record what it needs, not only return it).
    pub async fn next<T>(
        &mut self,
        mut f: impl FnMut(Event<'_>) -> Result<Option<T>>,
    ) -> Result<T> {
        loop {
            let mut pos = 0;
            let mut found = None;
            while found.is_none() {
                let rest = &self.buf[pos..];
                let Some((parsed, used)) = parse(self.proto, rest, self.max)? else {
                    break;
                };
                let event = match parsed {
                    Parsed::Message(range) => {
                        let id = match self.proto {
                            Proto::Framed => p2pchat_proto::message_id(rest).unwrap_or_default(),
                            Proto::Redis | Proto::Nats => MessageId::default(),
                        };
                        Some(Event::Message {
                            id,
                            body: &rest[range],
                        })
                    }
                    Parsed::Said(range) => Some(Event::Said { body: &rest[range] }),
                    Parsed::Frame(Frame::Ping(token)) => {
                        let pong = p2pchat_proto::encode_to_vec(&Frame::Pong(token));
                        self.replies.extend_from_slice(&pong);
                        None
                    }
                    Parsed::Frame(frame @ (Frame::Ack { .. } | Frame::Conversation(_)))
                        if self.bookkeeping =>
                    {
                        Some(Event::Frame(frame))
                    }
                    // Bookkeeping of protocol 2 that only the durable scenario measures.
                    Parsed::Frame(
                        Frame::Pong(_)
                        | Frame::Ack { .. }
                        | Frame::Delivered(_)
                        | Frame::Conversation(_),
                    ) => None,
                    Parsed::Frame(Frame::Error { code, text, .. }) => {
                        let hint = match code {
                            ErrorCode::RateLimited | ErrorCode::TooManyConnections => {
                                " (a load generator needs the relay's limits off: start it with \
                                 --max-rate 0 --max-per-ip 0)"
                            }
                            ErrorCode::RoomRefused => {
                                " (for a big room, start the relay with --max-room-members N)"
                            }
                            _ => "",
                        };
                        bail!("the relay sent an error ({code:?}): {text}{hint}")
                    }
                    Parsed::Frame(Frame::Shutdown(reason)) => {
                        bail!("the relay is shutting down: {reason}")
                    }
                    Parsed::Frame(frame) => Some(Event::Frame(frame)),
                    Parsed::Int(n) => Some(Event::Ack(n)),
                    Parsed::Bulk(range) => Some(Event::Bulk(&rest[range])),
                    Parsed::Subscribed => Some(Event::Subscribed),
                    Parsed::Simple | Parsed::Pong => Some(Event::Pong),
                    Parsed::Info => Some(Event::Info),
                    Parsed::Ping => {
                        self.replies.extend_from_slice(b"PONG\r\n");
                        None
                    }
                };
                pos += used;
                if let Some(event) = event {
                    found = f(event)?;
                }
            }
            self.buf.advance(pos);
            // Piece by piece, so that dropping this future never loses or repeats a reply.
            while !self.replies.is_empty() {
                let written = self.writer.send_some(&self.replies).await?;
                if written == 0 {
                    bail!("the server stopped taking bytes");
                }
                self.replies.drain(..written);
                if self.replies.is_empty() {
                    self.writer.flush().await?;
                }
            }
            if let Some(found) = found {
                return Ok(found);
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            let read = self
                .half
                .read_buf(&mut self.buf)
                .await
                .context("reading from the server failed")?;
            if read == 0 {
                bail!("the server closed the connection");
            }
        }
    }

    /// Whether p2pchat's `Ack` and `Conversation` frames reach the caller from now on, as
    /// `Event::Frame`, instead of being dropped.
    pub fn keep_bookkeeping(&mut self, keep: bool) {
        self.bookkeeping = keep;
    }

    /// The connection's write side (holding it keeps the connection open).
    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }

    /// Reads and discards whatever arrives (answering pings) until the connection fails; a
    /// message arriving here is an error. For connections a scenario does not read from.
    pub async fn drain(mut self, what: &'static str) -> Result<()> {
        self.next(|event| match event {
            Event::Message { .. } | Event::Said { .. } => bail!("unexpected message on {what}"),
            _ => Ok(None::<()>),
        })
        .await
        .with_context(|| format!("on {what}"))
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
