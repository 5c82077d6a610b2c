//! The sending half of file transfers in `App`, and what both halves share: `/send` (the file
//! is offered at once; its SHA-256 is worked out as the runner reads it for sending and follows
//! the last chunk), the offer and the companion's answers, the file's chunks sealed one by one
//! as the runner reads them, `/cancel`, and stopping
//! transfers that cannot go on (pausing and resuming are `pausing.rs`). The control messages
//! travel through the outbox like text; the chunks go straight out as `Chunk` frames (the relay
//! never stores them). Pure.

use std::path::PathBuf;

use p2pchat_proto::{fold_nick, safe_file_name, ErrorCode, FileChunk, Frame};
use p2pchat_secure::e2e::OVERHEAD;
use p2pchat_secure::room::CHUNK_OVERHEAD;
use p2pchat_secure::{FileControl, TransferId};

use super::{printable, show, App, Effect, Link, Style};
use crate::disk::FILE_CHANGED;
use crate::events::{FileFacts, Progress, SavedOffer};
use crate::transfers::{human_size, Side, Stage, Transfer, CHUNK};

impl App {
    /// File bytes per chunk: `CHUNK`, or less if the relay's messages are smaller.
    pub(super) fn chunk_len(&self) -> usize {
        let overhead = match self.room {
            Some(_) => CHUNK_OVERHEAD,
            None => OVERHEAD,
        };
        CHUNK.min(self.max_message.saturating_sub(overhead)).max(1)
    }

    /// The companion files can go to now (connected, with a key), printable; or why not.
    pub(super) fn file_companion(&self) -> Result<String, String> {
        if let Some(room) = &self.room {
            if self.link == Link::Up && !room.listing {
                return Ok(format!("room {}", printable(&room.name)));
            }
            return Err(
                "❌ Not connected to the room right now; try again once reconnected".into(),
            );
        }
        let ready = self.link == Link::Up && self.present && self.channel.is_some();
        match &self.companion {
            Some(nick) if ready => Ok(printable(nick)),
            _ => Err("❌ Files go only to a companion who is connected right now; /send works once you chat with someone who is online".into()),
        }
    }

    /// A new transfer id: from the same unguessable sequence as message ids, so unique.
    fn next_transfer_id(&mut self) -> TransferId {
        self.ids_made += 1;
        self.id_seed.wrapping_add(self.ids_made).to_be_bytes()
    }

    /// Queues a control message for the companion and sends what can go.
    pub(super) fn queue_control(&mut self, control: FileControl) -> Vec<Effect> {
        self.outbox.push_file(control);
        if self.deferring {
            return Vec::new();
        }
        self.send_unsent()
    }

    /// Starts sending the file at `path` (a queued one, with a slot free and the companion
    /// there): the runner looks it up first (`Event::FileLooked`).
    pub(super) fn send_file(&mut self, path: PathBuf) -> Vec<Effect> {
        let transfer = self.next_transfer_id();
        self.transfers.insert(Transfer {
            id: transfer,
            side: Side::Sending {
                path: path.clone(),
                stamp: None,
            },
            name: printable(&path.display().to_string()),
            size: 0,
            sha256: None,
            stage: Stage::Looking,
            order: 0,
            resyncing: false,
            strays: 0,
            author: None,
        });
        vec![Effect::LookAtFile { transfer, path }]
    }

    pub(super) fn on_file_looked(
        &mut self,
        transfer: TransferId,
        result: Result<FileFacts, String>,
    ) -> Vec<Effect> {
        let Some(known) = self.transfers.get(&transfer) else {
            return Vec::new(); // cancelled meanwhile
        };
        let shown = known.name.clone();
        let facts = match (result, self.file_companion()) {
            (Ok(facts), Ok(_)) => facts,
            (Err(why), _) => {
                self.transfers.remove(&transfer);
                let line = show(Style::Error, format!("❌ Cannot send {shown}: {why}"));
                return [vec![line], self.auto_send_over(true)].concat();
            }
            (Ok(_), Err(line)) => {
                self.transfers.remove(&transfer);
                return [vec![show(Style::Error, line)], self.auto_send_over(true)].concat();
            }
        };
        let name = safe_file_name(&facts.name);
        let nick = self
            .file_companion()
            .unwrap_or_else(|_| self.companion_name());
        let path = match &known.side {
            Side::Sending { path, .. } => path.clone(),
            Side::Receiving { .. } => return Vec::new(),
        };
        if self.take_up(&path, &facts.stamp).is_some() {
            self.transfers.remove(&transfer);
            return vec![show(
                Style::Notice,
                format!("📎 Still offering {name} to {nick} (offered before a restart); it goes on when they accept it"),
            )];
        }
        if let Some(known) = self.transfers.get_mut(&transfer) {
            known.name = name.clone();
            known.size = facts.size;
            known.stage = Stage::Offered;
            if let Side::Sending { stamp, .. } = &mut known.side {
                *stamp = Some(facts.stamp);
            }
        }
        let mut effects = vec![show(
            Style::Notice,
            format!("📎 Offering {name} ({}) to {nick}…", human_size(facts.size)),
        )];
        if let (Some(companion), Some(channel)) = (&self.companion, &self.channel) {
            effects.push(Effect::RememberOffer(SavedOffer {
                transfer,
                companion: fold_nick(companion),
                key: *channel.theirs(),
                name: name.clone(),
                path,
                stamp: facts.stamp,
            }));
        }
        effects.extend(self.queue_control(FileControl::Offer {
            transfer,
            name,
            size: facts.size,
        }));
        effects
    }

    /// The runner read a file we send to its end: its SHA-256 goes after the last chunk.
    pub(super) fn on_file_read(&mut self, transfer: TransferId, sha256: [u8; 32]) -> Vec<Effect> {
        let Some(known) = self.transfers.get_mut(&transfer) else {
            return Vec::new();
        };
        // Only the reader that brought the last chunk counts (not one stopped by a pause).
        if known.receiving() || known.stage != Stage::Checking || self.link != Link::Up {
            return Vec::new();
        }
        known.sha256 = Some(sha256);
        self.queue_control(FileControl::Sent { transfer, sha256 })
    }

    /// The companion's (printable) nickname for lines about transfers.
    pub(super) fn companion_name(&self) -> String {
        printable(self.companion.as_deref().unwrap_or("your companion"))
    }

    /// A control message from the companion (live).
    pub(super) fn on_file_control(&mut self, control: FileControl) -> Vec<Effect> {
        let nick = self.companion_name();
        match control {
            FileControl::Offer {
                transfer,
                name,
                size,
            } => self.on_offer(transfer, &name, size),
            FileControl::Sent { transfer, sha256 } => self.on_sent(transfer, sha256),
            FileControl::Accept { transfer, from } => self.on_accept(transfer, from, &nick),
            FileControl::Decline { transfer } => match self.take_sending(&transfer) {
                Some(known) => {
                    let line = show(Style::Notice, format!("📎 {nick} declined {}", known.name));
                    let over = self.auto_send_over(true);
                    [vec![Effect::StopReading { transfer }, line], over].concat()
                }
                None => self.forget_restored(&transfer),
            },
            FileControl::Cancel { transfer, reason } => {
                let Some(known) = self.transfers.remove(&transfer) else {
                    return self.forget_restored(&transfer);
                };
                let mut effects = vec![stop_effect(&known)];
                effects.push(show(
                    Style::Error,
                    format!(
                        "❌ {nick} stopped the transfer of {}: {}",
                        known.name,
                        printable(&reason)
                    ),
                ));
                if !known.receiving() {
                    effects.extend(self.auto_send_over(true));
                }
                effects
            }
            FileControl::Received { transfer } => match self.take_sending(&transfer) {
                Some(known) => {
                    let line = show(
                        Style::Notice,
                        format!("✅ {nick} received {} (SHA-256 verified)", known.name),
                    );
                    let over = self.auto_send_over(false);
                    [vec![Effect::StopReading { transfer }, line], over].concat()
                }
                None => Vec::new(),
            },
        }
    }

    /// The companion ended an offer recorded before a restart: its record goes.
    fn forget_restored(&mut self, transfer: &TransferId) -> Vec<Effect> {
        let before = self.restored.len();
        self.restored.retain(|offer| &offer.transfer != transfer);
        if self.restored.len() == before {
            return Vec::new();
        }
        vec![Effect::StopReading {
            transfer: *transfer,
        }]
    }

    /// Removes a transfer we send, if it is one.
    pub(super) fn take_sending(&mut self, transfer: &TransferId) -> Option<Transfer> {
        if self.transfers.get(transfer)?.receiving() {
            return None;
        }
        self.transfers.remove(transfer)
    }

    /// The runner read the next piece of a file we send: seal it and send it.
    pub(super) fn on_chunk_read(
        &mut self,
        transfer: TransferId,
        offset: u64,
        data: &[u8],
    ) -> Vec<Effect> {
        if self.channel.is_none() && self.room.is_none() {
            return Vec::new();
        }
        let Some(known) = self.transfers.get_mut(&transfer) else {
            return Vec::new(); // stopped: a piece read before it was
        };
        if known.receiving() || known.stage != (Stage::Moving { next: offset }) {
            return Vec::new();
        }
        if self.link != Link::Up {
            return Vec::new();
        }
        let mut body = Vec::with_capacity(data.len() + CHUNK_OVERHEAD.max(OVERHEAD));
        let sealed = match (&self.room, &self.channel) {
            (Some(room), _) => room.seal_chunk(&transfer, offset, data, &mut body),
            (None, Some(channel)) => channel.seal_chunk(&transfer, offset, data, &mut body),
            (None, None) => return Vec::new(),
        };
        if let Err(err) = sealed {
            let why = format!("could not encrypt it ({err})");
            return self.stop_sending(&transfer, &why, "the sender could not encrypt the file");
        }
        let next = offset + data.len() as u64;
        known.stage = if next >= known.size {
            Stage::Checking
        } else {
            Stage::Moving { next }
        };
        let progress = Progress {
            transfer,
            name: known.name.clone(),
            done: next,
            total: known.size,
        };
        vec![
            Effect::Send(Frame::Chunk(FileChunk {
                transfer,
                offset,
                body,
            })),
            Effect::Progress(progress),
        ]
    }

    pub(super) fn on_read_failed(&mut self, transfer: TransferId, why: &str) -> Vec<Effect> {
        if why == FILE_CHANGED {
            let why = "the file changed since it was offered, so it cannot be resumed";
            return self.stop_sending(
                &transfer,
                why,
                "the file changed on the sender's side since it was offered; ask for it again",
            );
        }
        let why = format!("could not read it ({})", printable(why));
        self.stop_sending(&transfer, &why, "the sender could not read the file")
    }

    /// Stops a transfer we send, telling the companion `reason`.
    pub(super) fn stop_sending(
        &mut self,
        transfer: &TransferId,
        why: &str,
        reason: &str,
    ) -> Vec<Effect> {
        let Some(known) = self.take_sending(transfer) else {
            return Vec::new();
        };
        let mut effects = vec![
            Effect::StopReading {
                transfer: *transfer,
            },
            show(
                Style::Error,
                format!("❌ Sending {} stopped: {why}", known.name),
            ),
        ];
        effects.extend(self.queue_control(FileControl::Cancel {
            transfer: *transfer,
            reason: reason.into(),
        }));
        effects.extend(self.auto_send_over(true));
        effects
    }

    /// The relay refused a chunk: `NotDelivered` (the companion is gone) pauses every file
    /// being sent until they accept it again; `FileTooLarge` stops them (the error does not say
    /// which; in practice it is all of them).
    pub(super) fn on_chunk_refused(&mut self, code: ErrorCode, text: &str) -> Vec<Effect> {
        let nick = self.companion_name();
        if code != ErrorCode::FileTooLarge {
            // With the companion back, a refusal is stale: it answers chunks sent before we
            // heard they had left, and their new accept already resumed the transfer. Had they
            // gone again, a `Left` would say so (and pause it).
            if self.present {
                return Vec::new();
            }
            return self.pause_sending(&format!("{nick} is not connected"));
        }
        let why = format!("the server refuses files this large ({})", printable(text));
        let sending = self
            .transfers
            .ids_where(|known| !known.receiving() && matches!(known.stage, Stage::Moving { .. }));
        let mut effects = Vec::new();
        for transfer in sending {
            effects.extend(self.stop_sending(&transfer, &why, &why));
        }
        effects
    }

    /// `/cancel`: stops every transfer under way (offers to us wait for /accept or /decline,
    /// and a file we received whole is being checked and named: too late to stop).
    pub(super) fn cancel_files(&mut self) -> Vec<Effect> {
        let stopped = self.transfers.take_where(Transfer::cancellable);
        if stopped.is_empty() {
            return vec![show(Style::Error, "❌ No file transfer to cancel")];
        }
        let mut effects = Vec::new();
        for known in stopped {
            effects.push(stop_effect(&known));
            effects.push(show(Style::Notice, format!("🛑 Cancelled {}", known.name)));
            if known.stage != Stage::Looking {
                effects.extend(self.queue_control(FileControl::Cancel {
                    transfer: known.id,
                    reason: "cancelled".into(),
                }));
            }
            if !known.receiving() {
                effects.extend(self.auto_send_over(true));
            }
        }
        effects
    }
}

/// What the runner must do to stop a transfer's disk work (a temporary file is deleted).
pub(super) fn stop_effect(known: &Transfer) -> Effect {
    match known.side {
        Side::Sending { .. } => Effect::StopReading { transfer: known.id },
        Side::Receiving { .. } => Effect::DiscardPart { transfer: known.id },
    }
}
