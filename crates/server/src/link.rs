//! How the hub reaches a session: its outbox for the frame the client must see, and a note
//! channel so the session's own task updates its routing (whom to forward to) in the same order.

use bytes::{Bytes, BytesMut};
use p2pchat_proto::{encode, Frame};
use tokio::sync::mpsc;

use crate::hub::{Note, Peer};
use crate::outbox::Outbox;

/// A session as the hub and its companion see it.
#[derive(Clone)]
pub struct Link {
    /// Frames to this session's client.
    pub outbox: Outbox,
    notes: mpsc::UnboundedSender<Note<Link>>,
}

impl Link {
    /// A link and the receiving end of its notes, which the session's task drains. The channel
    /// is unbounded but carries only hub events (a handful per pairing), never chat data.
    pub fn new(outbox: Outbox) -> (Self, mpsc::UnboundedReceiver<Note<Link>>) {
        let (notes, rx) = mpsc::unbounded_channel();
        (Self { outbox, notes }, rx)
    }
}

impl Peer for Link {
    fn notify(&self, note: Note<Self>) {
        let frame = match &note {
            Note::NickAccepted(nick) => Frame::NickOk(nick.clone()),
            Note::Waiting => Frame::Waiting,
            Note::Paired { nick, .. } => Frame::Paired(nick.clone()),
            Note::CompanionLeft { nick, reason } => Frame::Left {
                reason: *reason,
                nick: nick.clone(),
            },
        };
        self.outbox.push_note(encode_frame(&frame));
        let _ = self.notes.send(note);
    }
}

/// One frame, encoded into its own buffer.
pub fn encode_frame(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    encode(frame, &mut out);
    out.freeze()
}
