//! A session's reads and writes on its socket, over either transport, and the message rate
//! limit, which is applied where the session reads.
//!
//! Plain TCP reads straight into the session's read buffer and writes the queued frames with
//! one vectored write; TLS goes through `transport::Tls` with the same buffers and bounds.

use std::io::IoSlice;

use bytes::BytesMut;
use p2pchat_proto::{peek_header, ErrorCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use crate::limits::Charge;
use crate::mailbox::Queued;
use crate::report::End;
use crate::session::Session;
use crate::transport::{Transport, READ_SIZE};

/// Most buffers handed to one vectored write (or to rustls at once).
const MAX_IOV: usize = 64;

impl Session {
    /// Writes as much of `out` as the socket takes now.
    pub(crate) fn write_some(&mut self, stream: &TcpStream) -> Result<(), End> {
        if matches!(self.transport, Transport::Tls(_)) {
            return self.write_tls(stream);
        }
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let count = out_slices(&self.out, self.out_offset, &mut slices);
            match stream.try_write_vectored(&slices[..count]) {
                Ok(0) => return Err(End::WriterGone),
                Ok(written) => self.advance_out(written),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => return Err(End::Reset(err)),
            }
        }
        Ok(())
    }

    /// TLS: sends rustls's pending records, then encrypts more of `out` (up to rustls's bound)
    /// and sends that, until the socket is full or nothing is left.
    fn write_tls(&mut self, stream: &TcpStream) -> Result<(), End> {
        loop {
            let Transport::Tls(tls) = &mut self.transport else {
                return Ok(());
            };
            let mut moved = false;
            let flushed = tls.flush(stream, || moved = true)?;
            if moved {
                self.write_progress = Instant::now();
            }
            if !flushed || self.out.is_empty() {
                return Ok(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let count = out_slices(&self.out, self.out_offset, &mut slices);
            match tls.encrypt(&slices[..count])? {
                // Still handshaking: `writing` does not wait for writability then, so this
                // cannot spin.
                0 => return Ok(()),
                taken => self.advance_out(taken),
            }
        }
    }

    pub(crate) fn advance_out(&mut self, mut written: usize) {
        self.write_progress = Instant::now();
        let mut counted = 0;
        while written > 0 {
            let Some((front, is_data)) = self.out.front() else {
                break;
            };
            let left = front.len() - self.out_offset;
            let step = left.min(written);
            if *is_data {
                counted += step;
            } else {
                self.out_reply_bytes -= step;
            }
            written -= step;
            if step == left {
                self.out.pop_front();
                self.out_offset = 0;
                if self.out.is_empty() {
                    // Nothing left to write: free the queue rather than keep it for an idle client.
                    self.out = Default::default();
                }
            } else {
                self.out_offset += step;
            }
        }
        if counted > 0 {
            self.mailbox.written(counted);
        }
    }

    /// Reads once, acts on every complete frame, and charges the messages read against the
    /// rate limit.
    pub(crate) fn read_some(&mut self, stream: &TcpStream) -> Result<(), End> {
        let read = match &mut self.transport {
            Transport::Plain => {
                let wanted = match peek_header(&self.rbuf, self.shared.max_frame) {
                    Ok(Some(header)) => header.frame_len().saturating_sub(self.rbuf.len()),
                    _ => 0,
                };
                self.rbuf.reserve(wanted.max(READ_SIZE));
                stream.try_read_buf(&mut self.rbuf)
            }
            Transport::Tls(tls) => {
                let quiet = !tls.wants_write();
                let read = tls.read(stream, &mut self.rbuf)?;
                if quiet && tls.wants_write() {
                    // rustls has something to send (handshake, key update): the stall clock
                    // runs from now.
                    self.write_progress = Instant::now();
                }
                read
            }
        };
        match read {
            Ok(0) if self.rbuf.is_empty() => Err(End::Closed),
            Ok(0) => Err(End::MidFrame),
            Ok(_) => {
                let now = Instant::now();
                self.last_read = now;
                self.on_readable()?;
                self.charge_messages(now);
                if self.transport.peer_closed() {
                    // TLS `close_notify`: the client has said all it will.
                    return Err(match self.rbuf.is_empty() {
                        true => End::Closed,
                        false => End::MidFrame,
                    });
                }
                if self.rbuf.is_empty() {
                    // Give the buffer back while the client is quiet.
                    self.rbuf = BytesMut::new();
                }
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                // Readiness can be spurious (a fresh socket often reports it): don't keep a
                // read buffer for a connection that has nothing to say.
                if self.rbuf.is_empty() {
                    self.rbuf = BytesMut::new();
                }
                Ok(())
            }
            Err(err) => Err(End::Reset(err)),
        }
    }

    /// Charges the chat messages of the read just made (counted by `on_readable`) against
    /// `max_rate`; over it, reading pauses until the allowance is back, and the client is told
    /// once per episode. The clock was read once for the whole read.
    fn charge_messages(&mut self, now: Instant) {
        let count = std::mem::take(&mut self.messages_read);
        let rate = self.shared.config.max_rate;
        if rate == 0 {
            return;
        }
        let Charge::Pause { first: true, .. } = self.throttle.charge(count, rate, now) else {
            return;
        };
        info!(
            "🐌 {} sends more than {rate} messages a second: reading it more slowly",
            self.who
        );
        let text = format!(
            "you are sending more than {rate} messages a second; the relay is slowing you down"
        );
        self.reply_error(ErrorCode::RateLimited, text);
    }

    /// Whether there is anything to write: queued frames, or TLS records.
    pub(crate) fn writing(&self) -> bool {
        self.transport.writing(!self.out.is_empty())
    }

    /// Writes what is left (at the end of the session), then closes the sending side (over TLS
    /// with `close_notify` first).
    pub(crate) async fn flush(&mut self, stream: &mut TcpStream) {
        let _ = self.absorb_mailbox();
        while self.writing() {
            if stream.writable().await.is_err() || self.write_some(stream).is_err() {
                return;
            }
        }
        if let Transport::Tls(tls) = &mut self.transport {
            tls.close();
            while self.writing() {
                if stream.writable().await.is_err() || self.write_some(stream).is_err() {
                    return;
                }
            }
        }
        let _ = stream.shutdown().await;
    }
}

/// Fills `slices` with the unwritten bytes of the first frames of `out` (the first may be
/// partly written already); returns how many slices were filled.
fn out_slices<'a>(
    out: &'a std::collections::VecDeque<Queued>,
    offset: usize,
    slices: &mut [IoSlice<'a>; MAX_IOV],
) -> usize {
    let mut count = 0;
    for (i, (bytes, _)) in out.iter().take(MAX_IOV).enumerate() {
        let skip = if i == 0 { offset } else { 0 };
        slices[i] = IoSlice::new(&bytes[skip..]);
        count += 1;
    }
    count
}
