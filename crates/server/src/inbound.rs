//! What a session does with the frames its client sends: the handshake, the nickname, and chat
//! messages, which are checked by their header and text and handed on in runs.

use bytes::{Buf, Bytes};
use p2pchat_proto::{
    decode, peek_header, DecodeError, ErrorCode, Frame, FrameType, NickError, OnlineEntry,
    HEADER_LEN, PROTOCOL_VERSION,
};
use tracing::{info, warn};

use crate::hub::Joined;
use crate::report::{log_pairing, End, Who};
use crate::session::{Phase, Session};

/// A run at least this long is handed on as a slice of the read buffer itself; a shorter one is
/// copied so that a few bytes never pin a whole read buffer in a companion's mailbox (the copy of
/// a short run is cheap; the buffer it would pin is up to 64 KiB).
const ZERO_COPY_MIN: usize = 16 * 1024;

impl Session {
    /// Acts on every complete frame in the read buffer, leaving a partial one for the next read.
    pub(crate) fn on_readable(&mut self) -> Result<(), End> {
        let max_frame = self.shared.max_frame;
        let mut run = 0;
        loop {
            let header = match peek_header(&self.rbuf[run..], max_frame) {
                Ok(Some(header)) => header,
                Ok(None) => break,
                Err(err) => {
                    self.forward(run);
                    return Err(self.refuse_stream(err));
                }
            };
            let frame_len = header.frame_len();
            if self.rbuf.len() - run < frame_len {
                break;
            }
            if header.type_byte == FrameType::Message as u8 && self.is_joined() {
                match self.check_message(&self.rbuf[run + HEADER_LEN..run + frame_len]) {
                    Ok(()) => run += frame_len,
                    Err((code, text)) => {
                        self.forward(run);
                        run = 0;
                        self.rbuf.advance(frame_len);
                        warn!("⚠️ {} sent a bad message: {text}", self.who);
                        self.reply_error(code, text);
                    }
                }
                continue;
            }
            self.forward(run);
            run = 0;
            match decode(&self.rbuf, max_frame) {
                Ok(Some((frame, used))) => {
                    self.rbuf.advance(used);
                    self.on_frame(frame)?;
                }
                Ok(None) => break,
                Err(err) => match err.skip_len() {
                    Some(skip) if !matches!(self.phase, Phase::Hello) => {
                        self.rbuf.advance(skip);
                        warn!("⚠️ {} sent a malformed frame: {err}", self.who);
                        self.reply_error(err.error_code(), err.to_string());
                    }
                    _ => return Err(self.refuse_stream(err)),
                },
            }
        }
        self.forward(run);
        Ok(())
    }

    fn is_joined(&self) -> bool {
        matches!(self.phase, Phase::Joined { .. })
    }

    /// A chat message's payload must be non-empty UTF-8 within the message limit.
    fn check_message(&self, payload: &[u8]) -> Result<(), (ErrorCode, String)> {
        let max = self.shared.config.max_message as usize;
        if payload.is_empty() {
            return Err((
                ErrorCode::EmptyMessage,
                "empty messages are not sent".into(),
            ));
        }
        if payload.len() > max {
            let text = format!(
                "message of {} bytes is over the limit of {max} bytes",
                payload.len()
            );
            return Err((ErrorCode::FrameTooLarge, text));
        }
        // Most chat text is ASCII, and `is_ascii` checks a word at a time: on 64-byte messages
        // full UTF-8 validation was three quarters of the relay's instructions (callgrind).
        if !payload.is_ascii() && std::str::from_utf8(payload).is_err() {
            let text = "message text is not valid UTF-8; it was not delivered".into();
            return Err((ErrorCode::InvalidUtf8, text));
        }
        Ok(())
    }

    /// Hands the first `run` bytes of the read buffer (complete, checked `Message` frames) on.
    fn forward(&mut self, run: usize) {
        if run == 0 {
            return;
        }
        let chunk = if run >= ZERO_COPY_MIN {
            self.rbuf.split_to(run).freeze()
        } else {
            let chunk = Bytes::copy_from_slice(&self.rbuf[..run]);
            self.rbuf.advance(run);
            chunk
        };
        self.deliver(chunk);
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), End> {
        match (&self.phase, frame) {
            (Phase::Hello, Frame::Hello { version, .. }) if version >= 1 => {
                let config = &self.shared.config;
                let welcome = Frame::Welcome {
                    version: version.min(PROTOCOL_VERSION),
                    features: 0,
                    max_message: config.max_message,
                    heartbeat_ms: u32::try_from(config.heartbeat.as_millis()).unwrap_or(u32::MAX),
                    server: format!("p2pchat {}", env!("CARGO_PKG_VERSION")),
                };
                self.phase = Phase::Nick;
                self.reply(&welcome);
                Ok(())
            }
            (Phase::Hello, Frame::Hello { version, .. }) => Err(self.refuse(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version} is not supported; this server speaks 1"),
            )),
            (Phase::Hello, _) => Err(self.refuse(
                ErrorCode::HelloRequired,
                "the first frame must be Hello (is this a p2pchat client?)".into(),
            )),
            (_, Frame::Ping(token)) => {
                self.reply(&Frame::Pong(token));
                Ok(())
            }
            (_, Frame::Pong(_)) => Ok(()),
            (_, Frame::Bye) => Err(End::Quit),
            (Phase::Nick, Frame::Nick(nick)) => self.claim_nick(nick),
            (Phase::Nick, Frame::ChatWith(target)) => {
                match p2pchat_proto::validate_nick(&target) {
                    Err(err) if !target.is_empty() => {
                        let text = format!("cannot chat with {target:?}: {err}");
                        self.reply_error(ErrorCode::NickInvalid, text);
                    }
                    _ => self.wants = Some(target).filter(|t| !t.is_empty()),
                }
                Ok(())
            }
            (Phase::Joined { .. }, Frame::ChatWith(target)) => self.chat_with(target),
            (_, Frame::Who) => {
                self.reply(&online_frame(&self.shared));
                Ok(())
            }
            (Phase::Nick, Frame::Message(_)) => {
                let text = "choose a nickname before sending messages".into();
                self.reply_error(ErrorCode::NotLoggedIn, text);
                Ok(())
            }
            (_, Frame::Nick(_)) => {
                let text = "you already have a nickname".into();
                self.reply_error(ErrorCode::UnexpectedFrame, text);
                Ok(())
            }
            (_, other) => {
                let kind = other.frame_type();
                warn!("⚠️ {} sent an unexpected {kind:?} frame", self.who);
                let text = format!("a client does not send {kind:?} frames");
                self.reply_error(ErrorCode::UnexpectedFrame, text);
                Ok(())
            }
        }
    }

    fn claim_nick(&mut self, nick: String) -> Result<(), End> {
        let wants = self.wants.clone();
        let joined = self
            .shared
            .hub
            .join(self.id, &nick, self.mailbox.clone(), wants.as_deref());
        match joined {
            Ok(joined) => {
                info!("👤 {} nickname: {nick}", Who::new(self.id));
                log_joined(&nick, &joined);
                // Act on our own notes now: the frames after `Nick` in this read are messages
                // that must already see the new phase and companion.
                self.absorb_mailbox()
            }
            Err(err) => {
                info!("🚫 {} nickname {nick:?} rejected: {err}", self.who);
                let code = match err {
                    NickError::Taken(_) => ErrorCode::NickTaken,
                    _ => ErrorCode::NickInvalid,
                };
                self.reply_error(code, err.to_string());
                Ok(())
            }
        }
    }

    fn chat_with(&mut self, target: String) -> Result<(), End> {
        let target = Some(target).filter(|t| !t.is_empty());
        match self.shared.hub.chat_with(self.id, target.as_deref()) {
            Ok(joined) => {
                if let Some(nick) = self.who.nick() {
                    log_joined(&nick, &joined);
                }
                self.absorb_mailbox()
            }
            Err(err) => {
                self.reply_error(ErrorCode::NickInvalid, err.to_string());
                Ok(())
            }
        }
    }

    /// Queues a fatal error for the client and returns how the session ends.
    fn refuse(&mut self, code: ErrorCode, text: String) -> End {
        warn!("⚠️ {} refused: {text}", self.who);
        self.reply(&Frame::Error {
            code,
            fatal: true,
            text: text.clone(),
        });
        End::Refused(text)
    }

    /// The byte stream cannot be trusted past this error.
    fn refuse_stream(&mut self, err: DecodeError) -> End {
        let code = match self.phase {
            Phase::Hello => ErrorCode::HelloRequired,
            _ => err.error_code(),
        };
        self.refuse(code, format!("malformed frame: {err}"))
    }
}

/// Most nicknames one `Online` answer lists.
const ONLINE_LIMIT: usize = 100;

fn online_frame(shared: &crate::Shared) -> Frame {
    let (total, listed) = shared.hub.online(ONLINE_LIMIT);
    Frame::Online {
        total: u32::try_from(total).unwrap_or(u32::MAX),
        entries: listed
            .into_iter()
            .map(|(nick, chatting)| OnlineEntry { nick, chatting })
            .collect(),
    }
}

fn log_joined(nick: &str, joined: &Joined) {
    match joined {
        Joined::Paired { companion } => log_pairing(companion, nick),
        Joined::Waiting => info!("⏳ {nick} is waiting for a companion"),
        Joined::WaitingFor(wanted) => info!("🎯 {nick} is waiting for {wanted}"),
    }
}
