//! A session in a room: joining (the rules are `rooms`'), being told where it stands and what
//! was missed, forwarding runs to every member, receipts, leaving, the owner's orders and the
//! room list.
//!
//! A run is numbered, queued for the store and handed to every member's mailbox under the room's
//! lock, so every member gets the room's messages in the room's order. It is re-framed once, as
//! `Said` frames carrying the author, into one buffer that every mailbox shares (reference
//! counted, never copied per member). A member whose mailbox is full is too slow for the room:
//! it is disconnected rather than slowing everyone down, and catches up from the store when it
//! comes back.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use p2pchat_proto::{
    encode_to_bytes, fold_nick, peek_header, write_said, ErrorCode, Frame, MemberEntry, NewsKind,
    RoomAction, RoomEntry, RoomInfo, RoomNews, HEADER_LEN, MESSAGE_HEAD,
};
use p2pchat_store::{StoreError, StoredMessage};
use tracing::info;

use crate::catchup::Source;
use crate::mailbox::{Link, Refused};
use crate::relay::{Job, Numbered, Route, Unsent};
use crate::rooms::{Entered, Room, RoomError, RoomState};
use crate::session::Session;

/// Most members one `Members` frame lists (about 17 KiB with the longest nicknames).
const MEMBERS_PER_FRAME: usize = 100;
/// Most rooms one `RoomList` answer lists.
const LIST_LIMIT: usize = 100;

/// Why a room could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    Refused(RoomError),
    Store(StoreError),
}

impl Session {
    /// `Join`: finds or creates the room and reads its numbering, then enters it.
    pub(crate) fn join_room(&mut self, name: String) {
        let Some(me) = self.me.clone() else {
            return;
        };
        let (shared, generation) = (self.shared.clone(), self.generation);
        self.spawn(async move {
            let result = open(&shared, &name, &me).await;
            Job::RoomOpened { generation, result }
        });
    }

    /// The room is open: enter it if its rules allow, leaving wherever the session was.
    pub(crate) fn room_opened(&mut self, result: Result<Arc<Room>, OpenError>) {
        let room = match result {
            Ok(room) => room,
            Err(OpenError::Store(err)) => {
                return self.store_failed("could not open the room", &err)
            }
            Err(OpenError::Refused(err)) => return self.room_refused(err),
        };
        let nick = self.who.nick().map(|n| n.to_string()).unwrap_or_default();
        let same = matches!(&self.route, Route::Room { room: r, .. } if Arc::ptr_eq(r, &room));
        let store = self.shared.conversations.store().cloned();
        // The rules first: a refused client stays where it was.
        let allowed = {
            let state = room.lock();
            self.shared.rooms.admits(&state, &nick)
        };
        if let Err(err) = allowed {
            return self.room_refused(err);
        }
        if !same {
            self.leave_route();
        }
        let mut state = room.lock();
        let entered =
            self.shared
                .rooms
                .enter(&room, &mut state, &nick, (self.id, self.mailbox.clone()));
        let entered = match entered {
            Ok(entered) => entered,
            Err(err) => {
                drop(state);
                return self.room_refused(err);
            }
        };
        let me = fold_nick(&nick);
        let key = self.key;
        let kind = match entered {
            Entered::Joined => NewsKind::Joined,
            Entered::Returned => NewsKind::Online,
        };
        if let (Entered::Joined, Some(store)) = (entered, &store) {
            store.set_read(room.key.clone(), me.clone().into(), state.last_seq);
        }
        announce(&state, Some(&me), kind, &nick, key);
        let live_after = state.last_seq;
        let name = state.name.clone();
        drop(state);
        info!("🚪 {nick} is in room {name}");
        self.shared.hub.step_aside(self.id);
        self.backlog().deferred.get_or_insert_with(Default::default);
        self.generation += 1;
        self.route = Route::Room {
            room,
            live_after: Some(live_after),
        };
        let generation = self.generation;
        match store {
            Some(store) => self.spawn(async move {
                let result = store.flush().await;
                Job::RoomSettled { generation, result }
            }),
            None => self.room_settled(),
        }
    }

    /// Tells the client where it stands in the room and who is in it, sends what it missed,
    /// then what waited.
    pub(crate) fn room_settled(&mut self) {
        let Route::Room {
            room,
            live_after: Some(live_after),
        } = &self.route
        else {
            return;
        };
        let (room, live_after) = (room.clone(), *live_after);
        let me: Arc<str> = self.me.clone().unwrap_or_default();
        let (info, members) = {
            let state = room.lock();
            (room_info(&state, &me), self.member_frames(&state))
        };
        self.route = Route::Room {
            room: room.clone(),
            live_after: None,
        };
        let read_through = info.read_through;
        self.reply(&Frame::Room(info));
        for frame in members {
            self.reply_bytes(frame);
        }
        if self.shared.conversations.store().is_some() && read_through < live_after {
            self.replay_from(Source::Room { room, me }, read_through, live_after);
        }
        if !self.replaying() {
            self.release_deferred();
        }
        self.release_held();
    }

    fn member_frames(&self, state: &RoomState) -> Vec<Bytes> {
        let owners = &self.shared.owners;
        let entries: Vec<MemberEntry> = state
            .members
            .iter()
            .map(|m| MemberEntry {
                nick: m.nick.clone(),
                key: owners.key_of(&m.folded).unwrap_or_default(),
                online: m.session.is_some(),
            })
            .collect();
        let mut chunks: Vec<&[MemberEntry]> = entries.chunks(MEMBERS_PER_FRAME).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                encode_to_bytes(&Frame::Members {
                    more: i < last,
                    entries: chunk.to_vec(),
                })
            })
            .collect()
    }

    /// The room said no: the client hears why, and a session that was in no conversation
    /// goes back to pairing.
    fn room_refused(&mut self, err: RoomError) {
        let code = match err {
            RoomError::Invalid(_) => ErrorCode::RoomInvalid,
            _ => ErrorCode::RoomRefused,
        };
        info!("🚫 {} could not join a room: {err}", self.who);
        self.reply_error(code, err.to_string());
        if matches!(self.route, Route::Anyone { .. }) && self.shared.hub.is_aside(self.id) {
            let _ = self.shared.hub.chat_with(self.id, None);
        }
    }

    /// Numbers `run` in the room, queues it for the store and hands one shared copy, as `Said`
    /// frames, to every other member in the room now; all under the room's lock.
    pub(crate) fn send_room_run(&mut self, room: &Room, run: BytesMut) -> Result<(), Unsent> {
        let me = self.me.clone().unwrap_or_default();
        let mut state = room.lock();
        let Some(at) = state.serving(&me, self.id) else {
            // Replaced, kicked or banned meanwhile: not acknowledged, so not lost.
            return Ok(());
        };
        let Numbered {
            run,
            first_seq,
            count,
            last_id,
        } = self.number_run(&room.key, state.last_seq, run)?;
        state.last_seq += count;
        let last_seq = state.last_seq;
        let member = &mut state.members[at];
        member.last_sent = (last_seq, last_id);
        if member.read_through + count >= last_seq {
            member.read_through = last_seq;
        }
        let said = said_run(&run, count, &member.nick, self.shared.max_frame);
        let slow: Vec<Link> = state
            .online(Some(&me))
            .filter(|link| matches!(link.push_data(said.clone()), Err(Refused::Full(_))))
            .cloned()
            .collect();
        drop(state);
        for link in slow {
            link.too_slow();
        }
        self.ack_live(count, first_seq);
        Ok(())
    }

    /// A file chunk in a room: to every other member in the room now, live only (files are not
    /// history). Members decide for themselves which transfers they take. A member with no room
    /// for it holds the sender back (reading pauses), for at most a heartbeat.
    pub(crate) fn room_chunk(&mut self, room: &Room, frame: Bytes) {
        let me = self.me.clone().unwrap_or_default();
        let state = room.lock();
        if !state.serves(&me, self.id) {
            return;
        }
        // Behind chunks still waiting for some member, everything waits, to keep the order.
        let behind = self
            .backlog
            .as_ref()
            .is_some_and(|b| !b.chunk_waits.is_empty());
        let full: Vec<(Link, Bytes)> = state
            .online(Some(&me))
            .filter_map(|link| {
                if behind {
                    return Some((link.clone(), frame.clone()));
                }
                match link.push_data(frame.clone()) {
                    Err(Refused::Full(bytes)) => Some((link.clone(), bytes)),
                    _ => None,
                }
            })
            .collect();
        drop(state);
        if !full.is_empty() {
            let backlog = self.backlog();
            backlog.chunk_waits.extend(full);
            backlog
                .chunks_waiting_since
                .get_or_insert_with(tokio::time::Instant::now);
        }
    }

    /// Pushes waiting chunks to the members that now have room.
    pub(crate) fn flush_chunk_waits(&mut self) {
        let Some(backlog) = self.backlog.as_mut() else {
            return;
        };
        let waits = std::mem::take(&mut backlog.chunk_waits);
        // Once a member has no room, its later chunks wait too (they must not overtake).
        let mut blocked: Vec<Link> = Vec::new();
        for (link, bytes) in waits {
            if blocked.iter().any(|b| Arc::ptr_eq(b, &link)) {
                backlog.chunk_waits.push_back((link, bytes));
                continue;
            }
            if let Err(Refused::Full(bytes)) = link.push_data(bytes) {
                blocked.push(link.clone());
                backlog.chunk_waits.push_back((link, bytes));
            }
        }
        if backlog.chunk_waits.is_empty() {
            backlog.chunks_waiting_since = None;
            self.resumed();
        }
    }

    /// Members that took no chunk for a whole heartbeat are too slow for the room: they are let
    /// go (and resume the file when back), and the sender goes on.
    pub(crate) fn give_up_chunk_waits(
        &mut self,
        now: tokio::time::Instant,
        heartbeat: std::time::Duration,
    ) {
        let Some(backlog) = self.backlog.as_mut() else {
            return;
        };
        if backlog
            .chunks_waiting_since
            .is_none_or(|since| since + heartbeat > now)
        {
            return;
        }
        for (link, _) in std::mem::take(&mut backlog.chunk_waits) {
            link.too_slow();
        }
        backlog.chunks_waiting_since = None;
        self.resumed();
    }

    /// `Received` in a room.
    pub(crate) fn room_received(&mut self, room: &Room, seq: u64) {
        let me = self.me.clone().unwrap_or_default();
        let mut state = room.lock();
        let last_seq = state.last_seq;
        let Some(member) = state.member_mut(&me) else {
            return;
        };
        let seq = seq.min(last_seq);
        if seq <= member.read_through {
            return;
        }
        member.read_through = seq;
        drop(state);
        if let Some(store) = self.shared.conversations.store() {
            store.set_read(room.key.clone(), me, seq);
        }
    }

    /// Leaves the room route (if on one): the member stays a member, the others hear that
    /// they went.
    pub(crate) fn leave_room(&mut self) {
        let Route::Room { room, .. } = &self.route else {
            return;
        };
        let me = self.me.clone().unwrap_or_default();
        let mut state = room.lock();
        if !state.serves(&me, self.id) {
            return;
        }
        let Some(member) = state.member_mut(&me) else {
            return;
        };
        member.session = None;
        let nick = member.nick.clone();
        announce(&state, Some(&me), NewsKind::Offline, &nick, [0; 32]);
    }

    /// The room the session is in, or `None` after telling the client it is in none.
    fn current_room(&mut self) -> Option<Arc<Room>> {
        if let Route::Room { room, .. } = &self.route {
            return Some(room.clone());
        }
        self.reply_error(ErrorCode::NotInRoom, "you are not in a room".into());
        None
    }

    /// `Part`: stops being a member of the current room and goes back to pairing.
    pub(crate) fn part(&mut self) {
        let Some(room) = self.current_room() else {
            return;
        };
        self.stop_being_member(&room);
        self.route = Route::Anyone { last: None };
        self.generation += 1;
        let _ = self.shared.hub.chat_with(self.id, None);
    }

    /// The member leaves every room it is in (its nickname was released).
    pub(crate) fn leave_all_rooms(&mut self) {
        for room in self.shared.rooms.all() {
            self.stop_being_member(&room);
        }
        if let Route::Room { .. } = self.route {
            self.route = Route::Anyone { last: None };
            self.generation += 1;
            let _ = self.shared.hub.chat_with(self.id, None);
        }
    }

    /// This member is one of `room`'s no more; the others hear it.
    fn stop_being_member(&mut self, room: &Room) {
        let me = self.me.clone().unwrap_or_default();
        let mut state = room.lock();
        let (removed, new_owner) = self.shared.rooms.remove(room, &mut state, &me);
        if let Some(member) = removed {
            announce(&state, None, NewsKind::Left, &member.nick, [0; 32]);
            info!("🚪 {} left room {}", member.nick, state.name);
        }
        if let Some(owner) = new_owner {
            announce(&state, None, NewsKind::Owner, &owner, [0; 32]);
        }
    }

    /// `RoomAdmin`: an order from the room's owner.
    pub(crate) fn room_admin(&mut self, action: RoomAction, nick: String) {
        let Some(room) = self.current_room() else {
            return;
        };
        let me = self.me.clone().unwrap_or_default();
        let mut state = room.lock();
        let order = self
            .shared
            .rooms
            .order(&room, &mut state, &me, action, &nick);
        let order = match order {
            Ok(order) => order,
            Err(err) => {
                drop(state);
                let code = match err {
                    RoomError::NotOwner { .. } => ErrorCode::NotOwner,
                    RoomError::NotMember(..) => ErrorCode::NotInRoom,
                    _ => ErrorCode::RoomInvalid,
                };
                return self.reply_error(code, err.to_string());
            }
        };
        let kind = match action {
            RoomAction::Invite => NewsKind::Invited,
            RoomAction::Kick => NewsKind::Kicked,
            RoomAction::Ban => NewsKind::Banned,
            RoomAction::Unban => return, // nothing to tell the room
            RoomAction::InviteOnly => NewsKind::InviteOnly,
            RoomAction::Open => NewsKind::Open,
        };
        let about = match action.takes_nick() {
            true => nick.clone(),
            false => state.owner_nick(),
        };
        announce(&state, None, kind, &about, [0; 32]);
        info!("🛡️ room {}: {kind:?} {about}", state.name);
        drop(state);
        if let Some((_, link)) = order.removed.and_then(|m| m.session) {
            let news = news_frame(kind, &about, [0; 32]);
            link.removed_from_room(news);
        }
    }

    /// The relay removed this session's member from its room (kick, ban): back to pairing.
    pub(crate) fn removed_from_room(&mut self) {
        if let Route::Room { .. } = &self.route {
            self.route = Route::Anyone { last: None };
            self.generation += 1;
            let _ = self.shared.hub.chat_with(self.id, None);
        }
    }

    /// `Rooms`: the open rooms and the client's own.
    pub(crate) fn list_rooms(&mut self) {
        let me = self.me.clone().unwrap_or_default();
        let (total, listed) = self.shared.rooms.list(&me, LIST_LIMIT);
        let entries = listed
            .into_iter()
            .map(|room| RoomEntry {
                room: room.name,
                members: u32::try_from(room.members).unwrap_or(u32::MAX),
                online: u32::try_from(room.online).unwrap_or(u32::MAX),
                invite_only: room.invite_only,
                member: room.member,
            })
            .collect();
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        self.reply(&Frame::RoomList { total, entries });
    }
}

async fn open(shared: &crate::Shared, name: &str, me: &str) -> Result<Arc<Room>, OpenError> {
    let room = shared
        .rooms
        .get_or_create(name, me)
        .map_err(OpenError::Refused)?;
    if room.lock().loaded {
        return Ok(room);
    }
    let loaded = match shared.conversations.store() {
        Some(store) => store
            .load(room.key.clone())
            .await
            .map_err(OpenError::Store)?,
        None => Default::default(),
    };
    let mut state = room.lock();
    if !state.loaded {
        state.loaded = true;
        state.last_seq = state.last_seq.max(loaded.last_seq);
        for stored in loaded.members {
            if let Some(member) = state.member_mut(&stored.key) {
                member.read_through = stored.read_through.min(loaded.last_seq);
                member.last_sent = (stored.last_sent_seq, stored.last_sent_id);
            }
        }
    }
    drop(state);
    Ok(room)
}

fn room_info(state: &RoomState, me: &str) -> RoomInfo {
    let member = state.member(me);
    RoomInfo {
        room: state.name.clone(),
        owner: state.owner_nick(),
        invite_only: state.invite_only,
        last_seq: state.last_seq,
        read_through: member.map_or(state.last_seq, |m| m.read_through),
        last_from_you: member.map_or(0, |m| m.last_sent.0),
        last_id_from_you: member.map_or([0; 16], |m| m.last_sent.1),
    }
}

fn news_frame(kind: NewsKind, nick: &str, key: [u8; 32]) -> Bytes {
    encode_to_bytes(&Frame::RoomNews(RoomNews {
        kind,
        nick: nick.to_owned(),
        key,
    }))
}

/// Tells every member in the room now (but `except`) the news, in order with its messages.
/// A mailbox too full for it belongs to a member too slow for the room.
fn announce(state: &RoomState, except: Option<&str>, kind: NewsKind, nick: &str, key: [u8; 32]) {
    let frame = news_frame(kind, nick, key);
    for link in state.online(except) {
        if let Err(Refused::Full(_)) = link.push_data(frame.clone()) {
            link.too_slow();
        }
    }
}

/// The `count` stamped `Message` frames of `run` as `Said` frames by `author`, in one buffer.
fn said_run(run: &[u8], count: u64, author: &str, max_frame: usize) -> Bytes {
    // Each frame grows by the author and its length byte.
    let grows = (count as usize).saturating_mul(1 + author.len().min(u8::MAX as usize));
    let mut out = BytesMut::with_capacity(run.len().saturating_add(grows));
    let mut offset = 0;
    while let Ok(Some(header)) = peek_header(&run[offset..], max_frame) {
        let end = offset + header.frame_len();
        let Some(frame) = run.get(offset..end) else {
            break;
        };
        push_said(&mut out, frame, author);
        offset = end;
    }
    out.freeze()
}

/// Appends a stamped `Message` frame as a `Said` frame by `author`.
fn push_said(out: &mut BytesMut, frame: &[u8], author: &str) {
    let Some(fields) = frame.get(HEADER_LEN..HEADER_LEN + MESSAGE_HEAD) else {
        return;
    };
    let seq = u64::from_be_bytes(fields[..8].try_into().unwrap_or_default());
    let sent_ms = i64::from_be_bytes(fields[8..16].try_into().unwrap_or_default());
    let id: [u8; 16] = fields[16..32].try_into().unwrap_or_default();
    write_said(
        out,
        seq,
        sent_ms,
        &id,
        author,
        &frame[HEADER_LEN + MESSAGE_HEAD..],
    );
}

/// Stored messages of a room as `Said` frames, leaving out `me`'s own.
pub(crate) fn said_frames(room: &Room, me: &str, messages: &[StoredMessage]) -> Bytes {
    let state = room.lock();
    let mut out = BytesMut::new();
    for message in messages.iter().filter(|m| &*m.sender != me) {
        let author = state.nick_of(&message.sender).unwrap_or(&message.sender);
        push_said(&mut out, &message.frame, author);
    }
    out.freeze()
}
