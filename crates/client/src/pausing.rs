//! Interrupted transfers in `App`. When the companion or the connection goes, a file being sent
//! pauses (its reader stops, the transfer is kept) and a file being received keeps its temporary
//! file and state file (`resume.rs`). When the companion is back (a `Conversation` frame with
//! their key) the downloads directory is looked through for their interrupted files, and each
//! is accepted again from the bytes already there; the sender goes on from that offset if its
//! file did not change. Nothing already received is sent again. Pure.

use p2pchat_proto::fold_nick;
use p2pchat_secure::{FileControl, TransferId};

use super::files::stop_effect;
use super::{show, App, Effect, Style};
use crate::events::FoundPart;
use crate::transfers::{share, Side, Stage, Transfer};

impl App {
    /// The companion accepts a file we offer, from `from` (0, or where an interrupted transfer
    /// stopped): reading starts there, even if it was already under way (they lost the rest).
    pub(super) fn on_accept(&mut self, transfer: TransferId, from: u64) -> Vec<Effect> {
        let offered = self
            .transfers
            .get(&transfer)
            .filter(|known| !known.receiving() && known.stage != Stage::Looking)
            .filter(|known| from <= known.size)
            .cloned();
        let Some(known) = offered else {
            // An old offer (from history, or made before the sender restarted): it is gone.
            return self.queue_control(FileControl::Cancel {
                transfer,
                reason: "this file is no longer offered; ask for it again".into(),
            });
        };
        let Side::Sending { path, stamp } = known.side else {
            return Vec::new();
        };
        let nick = self.companion_name();
        let text = if known.stage == Stage::Offered && from == 0 {
            format!("📎 {nick} accepted {}; sending…", known.name)
        } else {
            format!(
                "📎 Resuming {} for {nick} from {}",
                known.name,
                share(from, known.size)
            )
        };
        let mut effects = vec![show(Style::Notice, text)];
        if matches!(known.stage, Stage::Moving { .. }) {
            effects.push(Effect::PauseReading { transfer });
        }
        // Even with nothing left to send the reader runs: it brings the SHA-256 (`Sent`),
        // which a receiver that restarted has to hear again.
        effects.push(Effect::ReadFile {
            transfer,
            path,
            from,
            size: known.size,
            chunk: self.chunk_len(),
            stamp,
        });
        let stage = if from == known.size {
            Stage::Checking
        } else {
            Stage::Moving { next: from }
        };
        if let Some(known) = self.transfers.get_mut(&transfer) {
            known.stage = stage;
        }
        effects
    }

    /// The companion is away or the connection is gone (`why`): files being sent pause, files
    /// being received keep what arrived. Both go on when the companion is back.
    pub(super) fn pause_transfers(&mut self, why: &str) -> Vec<Effect> {
        let mut effects = self.pause_sending(why);
        effects.extend(self.pause_receiving(why));
        effects
    }

    /// Files being sent stop reading and wait for the companion to accept them again.
    pub(super) fn pause_sending(&mut self, why: &str) -> Vec<Effect> {
        let moving = self
            .transfers
            .ids_where(|known| !known.receiving() && matches!(known.stage, Stage::Moving { .. }));
        let mut effects = Vec::new();
        for transfer in moving {
            let Some(known) = self.transfers.get_mut(&transfer) else {
                continue;
            };
            let Stage::Moving { next } = known.stage else {
                continue;
            };
            known.stage = Stage::Paused { next };
            effects.push(Effect::PauseReading { transfer });
            effects.push(show(
                Style::Notice,
                format!(
                    "⏸ Sending {} paused at {}: {why}; it resumes when they accept it again",
                    known.name,
                    share(next, known.size)
                ),
            ));
        }
        effects
    }

    /// Files being received close their temporary files but keep them (and forget the
    /// transfer: it is found on disk again when the companion is back). That includes a file
    /// received whole whose SHA-256 has not come yet.
    fn pause_receiving(&mut self, why: &str) -> Vec<Effect> {
        let paused = self.transfers.take_where(Transfer::resumable);
        let mut effects = Vec::new();
        for known in paused {
            let next = match known.stage {
                Stage::Moving { next } => next,
                _ => known.size,
            };
            effects.push(Effect::ClosePart { transfer: known.id });
            effects.push(show(
                Style::Notice,
                format!(
                    "⏸ Receiving {} paused at {}: {why}; it resumes when they are back",
                    known.name,
                    share(next, known.size)
                ),
            ));
        }
        effects
    }

    /// The conversation changed or ended (`why`): files being received are kept to resume with
    /// that companion some other time; every other transfer stops.
    pub(super) fn stop_transfers(&mut self, why: &str) -> Vec<Effect> {
        let mut effects = self.pause_receiving(why);
        for known in self.transfers.take_all() {
            effects.push(stop_effect(&known));
            effects.push(show(
                Style::Error,
                format!("⚠️ The transfer of {} stopped: {why}", known.name),
            ));
            if !known.receiving() {
                effects.extend(self.auto_send_over(true));
            }
        }
        effects
    }

    /// What to look for on disk now that the companion's key is known: their interrupted
    /// downloads.
    pub(super) fn find_parts(&self) -> Option<Effect> {
        let (Some(companion), Some(channel)) = (&self.companion, &self.channel) else {
            return None;
        };
        Some(Effect::FindParts {
            dir: self.downloads.clone(),
            companion: fold_nick(companion),
            key: *channel.theirs(),
        })
    }

    /// Interrupted downloads from the companion: each is accepted again from the bytes already
    /// there (one already whole is checked and named at once).
    pub(super) fn on_parts_found(&mut self, found: Vec<FoundPart>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for part in found {
            if self.transfers.get(&part.transfer).is_some() {
                continue; // under way already
            }
            if self.transfers.is_full() {
                break;
            }
            let complete = part.have >= part.size;
            let dir = self.downloads.clone();
            self.transfers.insert(Transfer {
                id: part.transfer,
                side: Side::Receiving { dir: dir.clone() },
                name: part.name.clone(),
                size: part.size,
                sha256: None,
                stage: if complete {
                    Stage::Checking
                } else {
                    Stage::Moving { next: part.have }
                },
                order: 0,
                resyncing: true,
            });
            effects.push(show(
                Style::Notice,
                format!(
                    "📎 Resuming {} from {}",
                    part.name,
                    share(part.have, part.size)
                ),
            ));
            effects.push(Effect::ResumePart {
                transfer: part.transfer,
                dir,
                name: part.name,
                from: part.have,
            });
            // Even a whole file is asked for again: the sender answers with its SHA-256.
            effects.extend(self.queue_control(FileControl::Accept {
                transfer: part.transfer,
                from: part.have.min(part.size),
            }));
        }
        effects
    }
}

/// What the runner must do with a transfer's disk work when the client leaves: a file being
/// received is kept to resume; anything else stops.
pub(super) fn leave_effect(known: &Transfer) -> Effect {
    if known.resumable() {
        Effect::ClosePart { transfer: known.id }
    } else {
        stop_effect(known)
    }
}
