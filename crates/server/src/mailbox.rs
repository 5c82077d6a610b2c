//! A session's mailbox: the frames waiting to be written to its client, and the hub's notes
//! waiting to change its routing. Anyone may drop things in (the companion's session, the hub);
//! only the owning session takes them out, from its one task.
//!
//! Chat data is admitted against a byte limit: a companion that would go over it must wait for
//! `room`, which is how a receiver that stops reading slows its sender down through TCP instead of
//! growing the relay's memory. Notes from the hub bypass the limit because the hub sends them
//! under its lock and must never wait; there are a few small ones per pairing event.
//!
//! It is a mutex and two `Notify`s rather than channels because an idle connection must cost
//! little: a tokio channel allocates a block of slots up front, this allocates nothing until
//! something is queued.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use p2pchat_proto::{encode_to_bytes, ErrorCode, Frame};
use tokio::sync::Notify;

use crate::hub::{Note, Peer};

/// How a session is reached: a cheap, cloneable handle to its mailbox.
pub type Link = Arc<Mailbox>;

/// Why data was not queued; the data comes back so the caller can keep it.
#[derive(Debug)]
pub enum Refused {
    /// Over the byte limit: wait for `room()` and try again.
    Full(Bytes),
    /// The session has ended.
    Closed(Bytes),
}

/// A queued frame run and whether it counts against the data limit.
pub type Queued = (Bytes, bool);

#[derive(Default)]
struct State {
    frames: VecDeque<Queued>,
    /// Data bytes queued, or taken by the owner but not yet written (notes are not counted).
    data_bytes: usize,
    notes: VecDeque<Note<Link>>,
    closed: bool,
}

/// See the module documentation.
pub struct Mailbox {
    state: Mutex<State>,
    wake: Notify,
    room: Notify,
    limit: usize,
}

impl Mailbox {
    /// A mailbox admitting at most `limit` bytes of data at once.
    pub fn new(limit: usize) -> Link {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            room: Notify::new(),
            limit,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    /// Queues data (complete frames) unless that would go over the limit. A chunk larger than
    /// the limit is admitted when nothing else is queued, so it can never be refused forever.
    pub fn push_data(&self, bytes: Bytes) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed(bytes));
        }
        if state.data_bytes > 0 && state.data_bytes + bytes.len() > self.limit {
            return Err(Refused::Full(bytes));
        }
        state.data_bytes += bytes.len();
        state.frames.push_back((bytes, true));
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Resolves after the owner has written some data out (or closed): time to retry a push
    /// that was `Full`. A wake-up that comes before this is awaited is kept, not lost.
    pub async fn room(&self) {
        self.room.notified().await;
    }

    /// Resolves when something was queued since the owner last looked.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Moves everything queued into `frames` and `notes` (owner only).
    pub fn take(&self, frames: &mut VecDeque<Queued>, notes: &mut VecDeque<Note<Link>>) {
        let mut state = self.lock();
        // Swapping into an empty queue moves the allocation instead of copying into a second
        // one, so an idle session ends up holding no queue memory at all.
        if frames.is_empty() {
            std::mem::swap(frames, &mut state.frames);
        } else {
            frames.append(&mut state.frames);
        }
        if notes.is_empty() {
            std::mem::swap(notes, &mut state.notes);
        } else {
            notes.append(&mut state.notes);
        }
    }

    /// Records that `written` bytes of counted data left for the client, making room for the
    /// companion.
    pub fn written(&self, written: usize) {
        let mut state = self.lock();
        state.data_bytes = state.data_bytes.saturating_sub(written);
        drop(state);
        self.room.notify_one();
    }

    /// Refuses everything from now on and wakes a waiting sender so it finds out.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.frames.clear();
        state.notes.clear();
        drop(state);
        self.room.notify_one();
    }
}

impl Peer for Link {
    fn notify(&self, note: Note<Self>) {
        let frame = match &note {
            Note::NickAccepted { nick, token } => Frame::NickOk {
                nick: nick.clone(),
                token: *token,
            },
            // Sent through `nudge`, `too_slow` and `removed_from_room`, never by the hub.
            Note::CompanionHere | Note::TooSlow | Note::RemovedFromRoom => return,
            Note::Replaced => Frame::Error {
                code: ErrorCode::Replaced,
                fatal: true,
                text: "your nickname was resumed from another connection; this one is closed"
                    .into(),
            },
            Note::Waiting => Frame::Waiting,
            Note::WaitingFor(nick) => Frame::WaitingFor(nick.clone()),
            Note::Paired { nick, .. } => Frame::Paired(nick.clone()),
            Note::CompanionLeft { nick, reason } => Frame::Left {
                reason: *reason,
                nick: nick.clone(),
            },
        };
        self.push(encode_to_bytes(&frame), Some(note));
    }
}

impl Mailbox {
    /// Queues a frame that is not companion data (an acknowledgement from the store, a receipt).
    /// Not counted against the data limit: the session stops reading its client's requests
    /// while such frames pile up, which bounds them.
    pub fn push_reply(&self, bytes: Bytes) {
        self.push(bytes, None);
    }

    /// Tells the owner that its companion's session has joined their conversation.
    pub fn nudge(&self) {
        self.note(Note::CompanionHere);
    }

    /// Tells the owner it reads too slowly for its room (its mailbox is full).
    pub fn too_slow(&self) {
        self.note(Note::TooSlow);
    }

    /// Tells the owner the room's owner removed it, with the news frame saying so.
    pub fn removed_from_room(&self, news: Bytes) {
        self.push(news, Some(Note::RemovedFromRoom));
    }

    fn note(&self, note: Note<Link>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.notes.push_back(note);
        drop(state);
        self.wake.notify_one();
    }

    fn push(&self, bytes: Bytes, note: Option<Note<Link>>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.frames.push_back((bytes, false));
        state.notes.extend(note);
        drop(state);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_over_the_limit_waits_but_a_lone_big_chunk_passes() {
        let mailbox = Mailbox::new(10);
        assert!(mailbox.push_data(Bytes::from(vec![0; 25])).is_ok());
        assert!(matches!(
            mailbox.push_data(Bytes::from_static(b"x")),
            Err(Refused::Full(_))
        ));
        let (mut frames, mut notes) = (VecDeque::new(), VecDeque::new());
        mailbox.take(&mut frames, &mut notes);
        assert_eq!(frames.len(), 1);
        // Taken is not yet written: still counted.
        assert!(mailbox.push_data(Bytes::from_static(b"x")).is_err());
        mailbox.written(25);
        assert!(mailbox.push_data(Bytes::from(vec![0; 10])).is_ok());
    }

    #[test]
    fn notes_bypass_the_limit() {
        let mailbox = Mailbox::new(1);
        mailbox.push_data(Bytes::from_static(b"abc")).unwrap();
        mailbox.notify(Note::Waiting);
        let (mut frames, mut notes) = (VecDeque::new(), VecDeque::new());
        mailbox.take(&mut frames, &mut notes);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1], (Bytes::from_static(&[0, 0, 0, 1, 5]), false));
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn a_closed_mailbox_refuses_and_forgets() {
        let mailbox = Mailbox::new(100);
        mailbox.push_data(Bytes::from_static(b"abc")).unwrap();
        mailbox.close();
        assert!(matches!(
            mailbox.push_data(Bytes::from_static(b"x")),
            Err(Refused::Closed(_))
        ));
        mailbox.notify(Note::Waiting);
        let (mut frames, mut notes) = (VecDeque::new(), VecDeque::new());
        mailbox.take(&mut frames, &mut notes);
        assert!(frames.is_empty() && notes.is_empty());
    }
}
