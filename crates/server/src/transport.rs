//! What carries a session's frames: plain TCP, or TLS run by rustls's sans-IO
//! `ServerConnection` inside the session's own loop (no extra task, no extra buffers per
//! connection beyond rustls's own).
//!
//! With TLS the session still waits on the socket's readiness. When it is readable, one large
//! read of ciphertext goes into a per-thread scratch buffer and is fed to rustls record by
//! record; the plaintext is moved into the session's read buffer as it appears. Since a read is
//! at most `READ_SIZE` bytes of ciphertext, it yields at most that much plaintext: the read
//! buffer is bounded exactly as on plain TCP and nothing waits inside rustls between turns.
//! When writable, queued frames are handed to rustls, which packs them into records of up to
//! 16 KiB (many frames to a record), but only while its outgoing buffer is empty, and never more
//! than `TLS_OUT_LIMIT` at once; the records go out with vectored writes.

use std::cell::RefCell;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::sync::Arc;

use bytes::BytesMut;
use rustls::{ServerConfig, ServerConnection};
use tokio::net::TcpStream;

use crate::report::End;

/// Bytes asked of the kernel per read, on either transport. Large reads are what let one read
/// hand on a long run of messages at once.
pub(crate) const READ_SIZE: usize = 64 * 1024;
/// Most TLS bytes (records not yet written) one connection holds; queued frames are encrypted
/// only when the previous records have gone out, and at most this many at a time.
const TLS_OUT_LIMIT: usize = 64 * 1024;
/// What a TLS session that fails before its handshake completes is told in the log: the usual
/// cause is a client started with a different `--plaintext` setting from the relay.
const HANDSHAKE_HINT: &str =
    "(a client without TLS? it needs the same --plaintext setting as the relay)";

thread_local! {
    /// Ciphertext just read, before rustls has decrypted it. One per worker thread rather than
    /// one per connection: it is emptied within the read that filled it.
    static CIPHERTEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A session's transport.
pub(crate) enum Transport {
    Plain,
    Tls(Box<Tls>),
}

/// One TLS connection's state.
pub(crate) struct Tls {
    conn: ServerConnection,
    /// rustls reported an error: only its alert is still sent, no more data.
    failed: bool,
    /// The client sent `close_notify`: nothing more will come.
    peer_closed: bool,
}

impl Transport {
    /// Plain TCP without `config`, TLS with it.
    pub(crate) fn new(config: Option<&Arc<ServerConfig>>) -> Result<Self, rustls::Error> {
        Ok(match config {
            None => Self::Plain,
            Some(config) => Self::Tls(Box::new(Tls::new(config.clone())?)),
        })
    }

    /// Whether the session should wait for the socket to become writable, given whether it has
    /// frames queued (`has_out`).
    pub(crate) fn writing(&self, has_out: bool) -> bool {
        match self {
            Self::Plain => has_out,
            Self::Tls(tls) => tls.conn.wants_write() || (has_out && tls.may_send()),
        }
    }

    /// Whether reading the socket can make progress (rustls stops reading during its
    /// handshake until what it has to send is sent, and after `close_notify` or an error).
    pub(crate) fn wants_read(&self) -> bool {
        match self {
            Self::Plain => true,
            Self::Tls(tls) => !tls.failed && tls.conn.wants_read(),
        }
    }

    /// The client closed its side of TLS (`close_notify`).
    pub(crate) fn peer_closed(&self) -> bool {
        matches!(self, Self::Tls(tls) if tls.peer_closed)
    }
}

impl Tls {
    fn new(config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(TLS_OUT_LIMIT));
        Ok(Self {
            conn,
            failed: false,
            peer_closed: false,
        })
    }

    /// rustls has records to send.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Application data can go out: the handshake is done and nothing failed.
    fn may_send(&self) -> bool {
        !self.failed && !self.conn.is_handshaking()
    }

    /// Reads once from the socket and moves the plaintext it carried to the end of `rbuf`.
    /// The inner result is the socket read's (bytes of ciphertext, 0 at the end of the stream);
    /// the outer error is a TLS failure, which ends the session.
    pub(crate) fn read(
        &mut self,
        stream: &TcpStream,
        rbuf: &mut BytesMut,
    ) -> Result<io::Result<usize>, End> {
        CIPHERTEXT.with_borrow_mut(|scratch| {
            if scratch.len() < READ_SIZE {
                scratch.resize(READ_SIZE, 0);
            }
            let read = stream.try_read(scratch);
            if let Ok(n) = read {
                self.decrypt(&scratch[..n], rbuf)?;
            }
            Ok(read)
        })
    }

    /// Feeds `input` to rustls and moves the plaintext out as it appears. rustls takes at most
    /// one record's worth at a time and holds at most 16 KiB of plaintext, so the two alternate
    /// until `input` is used up (or the client has said `close_notify`).
    fn decrypt(&mut self, mut input: &[u8], rbuf: &mut BytesMut) -> Result<(), End> {
        while !input.is_empty() && !self.peer_closed {
            match self.conn.read_tls(&mut input) {
                // After `close_notify` rustls reads nothing more.
                Ok(0) => self.peer_closed = true,
                Ok(_) => {}
                Err(err) => return Err(self.fail(&err)),
            }
            if let Err(err) = self.conn.process_new_packets() {
                return Err(self.fail(&err));
            }
            self.take_plaintext(rbuf);
        }
        Ok(())
    }

    /// Moves every decrypted byte to `rbuf` (copying from rustls's chunks, no extra buffer).
    fn take_plaintext(&mut self, rbuf: &mut BytesMut) {
        let mut reader = self.conn.reader();
        loop {
            let taken = match reader.fill_buf() {
                Ok([]) => {
                    // `close_notify`, and everything before it taken.
                    self.peer_closed = true;
                    return;
                }
                Ok(chunk) => {
                    rbuf.extend_from_slice(chunk);
                    chunk.len()
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The stream ended without `close_notify`; the socket's end of stream
                    // says so on the next read.
                    return;
                }
            };
            reader.consume(taken);
        }
    }

    /// Marks the connection failed and says how the session ends.
    fn fail(&mut self, err: &dyn std::fmt::Display) -> End {
        self.failed = true;
        if self.conn.is_handshaking() {
            End::Refused(format!("TLS handshake failed: {err} {HANDSHAKE_HINT}"))
        } else {
            End::Refused(format!("TLS failed: {err}"))
        }
    }

    /// Writes rustls's pending records. `Ok(true)` once they are all out, `Ok(false)` if the
    /// socket is full; `progress` is told when bytes moved.
    pub(crate) fn flush(
        &mut self,
        stream: &TcpStream,
        mut progress: impl FnMut(),
    ) -> Result<bool, End> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Socket(stream)) {
                Ok(0) => return Err(End::WriterGone),
                Ok(_) => progress(),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(End::Reset(err)),
            }
        }
        Ok(true)
    }

    /// Encrypts as much of `slices` as may go now; returns the plaintext bytes taken (0 while
    /// the handshake is under way or after a failure).
    pub(crate) fn encrypt(&mut self, slices: &[IoSlice<'_>]) -> Result<usize, End> {
        if !self.may_send() {
            return Ok(0);
        }
        match self.conn.writer().write_vectored(slices) {
            Ok(taken) => Ok(taken),
            Err(err) => Err(self.fail(&err)),
        }
    }

    /// Queues `close_notify` (after the data already queued), unless the handshake never
    /// finished or an alert already went.
    pub(crate) fn close(&mut self) {
        if self.may_send() {
            self.conn.send_close_notify();
        }
    }
}

/// The socket as `std::io` for rustls: non-blocking reads and writes that say `WouldBlock`
/// when the socket is not ready (the session then waits for readiness in its select).
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends `frame` to a client that is being refused, then closes: over TLS it first completes
/// the handshake (so the client can read why), then sends `close_notify`. The caller bounds
/// the time it takes.
pub(crate) async fn refuse(
    mut stream: TcpStream,
    tls: Option<&Arc<ServerConfig>>,
    frame: &[u8],
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let Some(config) = tls else {
        stream.write_all(frame).await?;
        return stream.shutdown().await;
    };
    let mut tls = Tls::new(config.clone()).map_err(io::Error::other)?;
    // Kept by rustls until the handshake completes, then encrypted.
    tls.conn.writer().write_all(frame)?;
    loop {
        flush_all(&mut tls, &stream).await?;
        if !tls.conn.is_handshaking() {
            break;
        }
        stream.readable().await?;
        match tls.conn.read_tls(&mut Socket(&stream)) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {
                tls.conn.process_new_packets().map_err(io::Error::other)?;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    tls.conn.send_close_notify();
    flush_all(&mut tls, &stream).await?;
    stream.shutdown().await
}

/// Writes everything rustls has to send, waiting for the socket as needed.
async fn flush_all(tls: &mut Tls, stream: &TcpStream) -> io::Result<()> {
    while tls.conn.wants_write() {
        stream.writable().await?;
        match tls.conn.write_tls(&mut Socket(stream)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
