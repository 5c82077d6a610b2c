//! What a session does with the frames its client sends: the handshake, the nickname, and chat
//! messages, which are checked by their header and text and handed on in runs.

use bytes::{Buf, BytesMut};
use p2pchat_proto::{
    decode, peek_header, DecodeError, ErrorCode, Frame, FrameType, NickError, OnlineEntry,
    ResumeToken, CHUNK_HEAD, FEATURE_HISTORY, HEADER_LEN, MESSAGE_HEAD, PROTOCOL_VERSION,
};
use tracing::{info, warn};

use crate::hub::{Claim, Joined};
use crate::owners::OwnerError;
use crate::report::{log_pairing, End, Who};
use crate::session::{Phase, Session};

/// A run at least this long is handed on as a slice of the read buffer itself; a shorter one is
/// copied so that a few bytes never pin a whole read buffer in a companion's mailbox (the copy of
/// a short run is cheap; the buffer it would pin is up to 64 KiB).
const ZERO_COPY_MIN: usize = 16 * 1024;
/// Bytes a chunk's end-to-end envelope adds to the file's bytes (version, nonce, tag).
const CHUNK_ENVELOPE: usize = 1 + 24 + 16;

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
                    self.forward_run(run);
                    return Err(self.refuse_stream(err));
                }
            };
            let frame_len = header.frame_len();
            if self.rbuf.len() - run < frame_len {
                break;
            }
            if header.type_byte == FrameType::Message as u8 && self.is_joined() {
                match self.check_message(&self.rbuf[run + HEADER_LEN..run + frame_len]) {
                    Ok(()) => {
                        run += frame_len;
                        // Charged against `max_rate` once per read, by `wire`.
                        self.messages_read += 1;
                    }
                    Err((code, text)) => {
                        self.forward_run(run);
                        run = 0;
                        self.rbuf.advance(frame_len);
                        warn!("⚠️ {} sent a bad message: {text}", self.who);
                        self.reply_error(code, text);
                    }
                }
                continue;
            }
            self.forward_run(run);
            run = 0;
            if header.type_byte == FrameType::Chunk as u8 && self.is_joined() {
                let frame = self.rbuf.split_to(frame_len).freeze();
                match self.check_chunk(&frame[HEADER_LEN..]) {
                    Ok(()) => self.forward_chunk(frame),
                    Err((code, text)) => {
                        warn!("⚠️ {} sent a bad file chunk: {text}", self.who);
                        self.reply_error(code, text);
                    }
                }
                continue;
            }
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
        self.forward_run(run);
        Ok(())
    }

    fn is_joined(&self) -> bool {
        matches!(self.phase, Phase::Joined)
    }

    /// A chat message's payload must be its fixed fields, then a non-empty body within the
    /// message limit.
    fn check_message(&self, payload: &[u8]) -> Result<(), (ErrorCode, String)> {
        let max = self.shared.config.max_message as usize;
        let Some(payload) = payload.get(MESSAGE_HEAD..) else {
            let text =
                format!("a Message frame starts with {MESSAGE_HEAD} bytes of seq, time and id");
            return Err((ErrorCode::MalformedFrame, text));
        };
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
        // The body is an end-to-end envelope: the relay cannot read it, so it checks nothing
        // more. The receiving client authenticates it.
        Ok(())
    }

    /// A file chunk's payload must be its transfer and offset, then a non-empty body, and end
    /// within the relay's file size limit (the body's envelope overhead aside).
    fn check_chunk(&self, payload: &[u8]) -> Result<(), (ErrorCode, String)> {
        let Some(body) = payload.get(CHUNK_HEAD..).filter(|body| !body.is_empty()) else {
            let text = format!(
                "a Chunk frame has {CHUNK_HEAD} bytes of transfer and offset, then its body"
            );
            return Err((ErrorCode::MalformedFrame, text));
        };
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&payload[16..24]);
        let end = u64::from_be_bytes(offset)
            .saturating_add((body.len() as u64).saturating_sub(CHUNK_ENVELOPE as u64));
        let max = self.shared.config.max_file;
        if end > max {
            let text =
                format!("files are limited to {max} bytes on this relay; the transfer was stopped");
            return Err((ErrorCode::FileTooLarge, text));
        }
        Ok(())
    }

    /// Hands the first `run` bytes of the read buffer (complete, checked `Message` frames) on.
    fn forward_run(&mut self, run: usize) {
        if run == 0 {
            return;
        }
        let chunk = if run >= ZERO_COPY_MIN {
            self.rbuf.split_to(run)
        } else {
            let chunk = BytesMut::from(&self.rbuf[..run]);
            self.rbuf.advance(run);
            chunk
        };
        self.forward(chunk);
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), End> {
        match (&self.phase, frame) {
            (Phase::Hello, Frame::Hello { version, .. }) if version >= PROTOCOL_VERSION => {
                let config = &self.shared.config;
                let features = match self.shared.conversations.store() {
                    Some(_) => FEATURE_HISTORY,
                    None => 0,
                };
                // Without randomness no login could be trusted: refuse rather than reuse a value.
                if getrandom::fill(&mut self.challenge).is_err() {
                    let text = "the relay has no randomness for a login challenge; try later".into();
                    return Err(self.refuse(ErrorCode::ServerFull, text));
                }
                let welcome = Frame::Welcome {
                    version: version.min(PROTOCOL_VERSION),
                    features,
                    max_message: config.max_message,
                    heartbeat_ms: u32::try_from(config.heartbeat.as_millis()).unwrap_or(u32::MAX),
                    challenge: self.challenge,
                    server: format!("p2pchat {}", env!("CARGO_PKG_VERSION")),
                };
                self.phase = Phase::Nick;
                self.reply(&welcome);
                Ok(())
            }
            (Phase::Hello, Frame::Hello { version, .. }) => Err(self.refuse(
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
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
            (Phase::Nick, Frame::Nick { nick, key, proof }) => {
                self.log_in(Login::new(nick, key, proof, None))
            }
            (
                Phase::Nick,
                Frame::Resume {
                    nick,
                    token,
                    key,
                    proof,
                },
            ) => self.log_in(Login::new(nick, key, proof, Some(token))),
            (Phase::Joined, Frame::Release) => {
                self.release();
                Ok(())
            }
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
            (Phase::Joined, Frame::ChatWith(target)) => self.chat_with(target),
            (Phase::Nick, Frame::Join(room)) => {
                match p2pchat_proto::validate_room(&room) {
                    Err(err) => {
                        let text = format!("cannot join {room:?}: {err}").replace("nickname", "room name");
                        self.reply_error(ErrorCode::RoomInvalid, text);
                    }
                    Ok(()) => self.room_wanted = Some(room),
                }
                Ok(())
            }
            (Phase::Joined, Frame::Join(room)) => {
                match p2pchat_proto::validate_room(&room) {
                    Err(err) => {
                        let text = format!("cannot join {room:?}: {err}").replace("nickname", "room name");
                        self.reply_error(ErrorCode::RoomInvalid, text);
                    }
                    Ok(()) => self.join_room(room),
                }
                Ok(())
            }
            (Phase::Joined, Frame::Part) => {
                self.part();
                self.absorb_mailbox()
            }
            (Phase::Joined, Frame::RoomAdmin { action, nick }) => {
                self.room_admin(action, nick);
                self.absorb_mailbox()
            }
            (Phase::Joined, Frame::Rooms) => {
                self.list_rooms();
                Ok(())
            }
            (Phase::Joined, Frame::Received(seq)) => {
                self.received(seq);
                Ok(())
            }
            (Phase::Joined, Frame::History { before, limit }) => {
                self.history(before, limit);
                Ok(())
            }
            (_, Frame::Who) => {
                self.reply(&online_frame(&self.shared));
                Ok(())
            }
            (Phase::Nick, Frame::Message(_)) => {
                let text = "choose a nickname before sending messages".into();
                self.reply_error(ErrorCode::NotLoggedIn, text);
                Ok(())
            }
            (_, Frame::Nick { .. } | Frame::Resume { .. }) => {
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

    /// `Nick` or `Resume`: the nickname must be valid, the proof must verify, and the key must
    /// own the nickname (or become its owner) before the hub hears of it.
    fn log_in(&mut self, login: Login) -> Result<(), End> {
        let Login {
            nick,
            key,
            proof,
            resume,
        } = login;
        let mut registered_now = false;
        let refused = if let Err(err) = p2pchat_proto::validate_nick(&nick) {
            Some((ErrorCode::NickInvalid, err.to_string()))
        } else if !p2pchat_secure::verify_login(&key, &self.challenge, &nick, &proof) {
            let text = format!(
                "the login proof for {nick} does not verify: it must be a signature by the key \
                 sent over this connection's challenge and the nickname"
            );
            Some((ErrorCode::BadProof, text))
        } else {
            match self.shared.owners.claim(&nick, &key) {
                Ok(registered) => {
                    registered_now = registered;
                    None
                }
                Err(err @ OwnerError::Owned(_)) => Some((
                    ErrorCode::NickOwned,
                    format!(
                        "{err}; choose another nickname, or log in with the identity key that \
                         registered it"
                    ),
                )),
                Err(err @ OwnerError::Full(_)) => Some((ErrorCode::NickInvalid, err.to_string())),
            }
        };
        if let Some((code, text)) = refused {
            info!("🚫 {} nickname {nick:?} rejected: {text}", self.who);
            self.reply_error(code, text);
            return Ok(());
        }
        // Registered before the hub hears of the login, so a companion paired at once already
        // finds the key; undone if the hub refuses the nickname (someone connected has it).
        self.key = key;
        let attempted = nick.clone();
        self.claim_nick(nick, resume)?;
        if self.who.nick().is_none() && registered_now {
            self.shared.owners.release(&attempted, &key);
        } else if registered_now {
            let print = p2pchat_secure::key_fingerprint(&key);
            info!("🔑 nickname {attempted} registered to key {print}");
        }
        Ok(())
    }

    /// `Release`: the nickname stops being owned by this client's key.
    fn release(&mut self) {
        let Some(nick) = self.who.nick() else {
            return;
        };
        if self.shared.owners.release(&nick, &self.key) {
            info!("🔓 {nick} released their nickname");
            // Whoever registers the nickname next must not find its rooms waiting for them.
            self.leave_all_rooms();
        }
        self.reply(&Frame::Released(nick.to_string()));
    }

    fn claim_nick(&mut self, nick: String, resume: Option<ResumeToken>) -> Result<(), End> {
        let mut token = [0; 16];
        // Without randomness the nickname simply cannot be resumed (an all-zero token never is).
        if getrandom::fill(&mut token).is_err() {
            token = [0; 16];
        }
        let wants = self.wants.clone();
        let claim = Claim {
            nick: &nick,
            wants: wants.as_deref(),
            token,
            resume,
            aside: self.room_wanted.is_some(),
        };
        match self.shared.hub.claim(self.id, self.mailbox.clone(), claim) {
            Ok((joined, replaced)) => {
                info!("👤 {} nickname: {nick}", Who::new(self.id));
                if replaced {
                    info!("🔁 {nick} resumed on a new connection (client {})", self.id);
                }
                log_joined(&nick, &joined);
                // Act on our own notes now: the frames after `Nick` in this read are messages
                // that must already see the new phase and companion.
                self.absorb_mailbox()?;
                if let Some(room) = self.room_wanted.take() {
                    self.join_room(room);
                }
                Ok(())
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

/// What `Nick` and `Resume` carry.
struct Login {
    nick: String,
    key: p2pchat_proto::PublicKey,
    proof: p2pchat_proto::Signature,
    resume: Option<ResumeToken>,
}

impl Login {
    fn new(
        nick: String,
        key: p2pchat_proto::PublicKey,
        proof: p2pchat_proto::Signature,
        resume: Option<ResumeToken>,
    ) -> Self {
        Self {
            nick,
            key,
            proof,
            resume,
        }
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
        Joined::Aside => {}
    }
}
