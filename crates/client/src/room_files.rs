//! Files in a room, in `App`: an offer goes to the whole room and each member accepts or
//! declines it for themselves. The sender streams the file once, to the room (the relay hands
//! every chunk to each member in the room; members who did not accept drop it), sealed with
//! its sender key; an accept from behind the stream (a member who accepted late, or lost
//! pieces) makes it start again from there, and members already further on drop what they
//! have. The file stays offered until the sender stops it or leaves the room. Pure.

use p2pchat_secure::{FileControl, TransferId};

use super::rooming::RoomView;
use super::{printable, show, App, Effect, Style};
use crate::transfers::Stage;

impl RoomView {
    /// Opens a chunk of `author`'s transfer.
    pub(super) fn open_chunk(
        &self,
        author: &str,
        transfer: &TransferId,
        offset: u64,
        body: &[u8],
    ) -> Result<Vec<u8>, ()> {
        self.keys
            .open_chunk(author, transfer, offset, body)
            .map_err(|_| ())
    }

    /// Seals a chunk of a file this client sends to the room.
    pub(super) fn seal_chunk(
        &self,
        transfer: &TransferId,
        offset: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), p2pchat_secure::E2eError> {
        self.keys.seal_chunk(transfer, offset, data, out)
    }
}

impl App {
    /// Who sends the file of `transfer`, for lines about it: its room author, or the companion.
    pub(super) fn sender_name(&self, transfer: &TransferId) -> String {
        let author = self.transfers.get(transfer).and_then(|t| t.author.clone());
        let room_author = author.and_then(|author| self.room.as_ref().map(|r| r.shown(&author)));
        room_author.unwrap_or_else(|| self.companion_name())
    }

    /// A file control message from room member `author` (folded; `shown` as they spell it).
    pub(super) fn on_room_file_control(
        &mut self,
        author: &str,
        shown: &str,
        control: FileControl,
    ) -> Vec<Effect> {
        let shown = printable(shown);
        let known = self.transfers.get(control.transfer()).cloned();
        let from_sender = known
            .as_ref()
            .is_some_and(|k| k.author.as_deref() == Some(author));
        let mine = known.as_ref().is_some_and(|k| !k.receiving());
        match control {
            FileControl::Offer {
                transfer,
                name,
                size,
            } if known.is_none() => {
                self.offer_from(Some((author.to_owned(), shown)), transfer, &name, size)
            }
            FileControl::Sent { transfer, sha256 } if from_sender => self.on_sent(transfer, sha256),
            FileControl::Cancel { .. } if from_sender => self.on_file_control(control),
            FileControl::Accept { transfer, from } if mine => {
                self.room_accept(&shown, transfer, from)
            }
            FileControl::Decline { .. } if mine => {
                let name = known.map(|k| k.name).unwrap_or_default();
                vec![show(Style::Notice, format!("📎 {shown} declined {name}"))]
            }
            FileControl::Cancel { reason, .. } if mine => {
                let name = known.map(|k| k.name).unwrap_or_default();
                vec![show(
                    Style::Notice,
                    format!(
                        "📎 {shown} stopped receiving {name}: {}",
                        printable(&reason)
                    ),
                )]
            }
            FileControl::Received { .. } if mine => {
                let name = known.map(|k| k.name).unwrap_or_default();
                let line = show(
                    Style::Notice,
                    format!("✅ {shown} received {name} (SHA-256 verified)"),
                );
                [vec![line], self.auto_send_over(false)].concat()
            }
            // About someone else's file, or a repeat: not ours to act on.
            _ => Vec::new(),
        }
    }

    /// A member accepts a file we offer to the room, from `from`. The stream starts (or starts
    /// again from there, if it is further on); from ahead of the stream, it just goes on.
    fn room_accept(&mut self, shown: &str, transfer: TransferId, from: u64) -> Vec<Effect> {
        let Some(known) = self.transfers.get(&transfer) else {
            return Vec::new();
        };
        if let Stage::Moving { next } = known.stage {
            if from >= next {
                let line = format!("📎 {shown} accepted {}", known.name);
                return vec![show(Style::Notice, line)];
            }
        }
        self.on_accept(transfer, from, shown)
    }

    /// Back in the same room after a lost connection: files being received are asked for
    /// again from where they stopped.
    pub(super) fn resume_room_files(&mut self) -> Vec<Effect> {
        let moving: Vec<(TransferId, u64)> = self
            .transfers
            .ids_where(|t| t.receiving() && t.author.is_some())
            .into_iter()
            .filter_map(|id| match self.transfers.get(&id)?.stage {
                Stage::Moving { next } => Some((id, next)),
                _ => None,
            })
            .collect();
        let mut effects = Vec::new();
        for (transfer, from) in moving {
            if let Some(known) = self.transfers.get_mut(&transfer) {
                known.resyncing = true;
            }
            effects.extend(self.queue_control(FileControl::Accept { transfer, from }));
        }
        effects
    }
}

impl RoomView {
    /// How member `folded` spells their nickname (or the folded name, for a former member).
    pub(super) fn shown(&self, folded: &str) -> String {
        self.members
            .iter()
            .find(|m| m.folded == folded)
            .map_or_else(|| folded.to_owned(), |m| m.entry.nick.clone())
    }
}
