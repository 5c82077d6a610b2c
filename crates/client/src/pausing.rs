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
use crate::events::{FileStamp, FoundPart, SavedOffer};
use crate::transfers::{share, Side, Stage, Transfer};

impl App {
    /// The companion (or room member `who`) accepts a file we offer, from `from` (0, or where an
    /// interrupted transfer stopped): reading starts there, even if it was already under way
    /// (they lost the rest).
    pub(super) fn on_accept(&mut self, transfer: TransferId, from: u64, who: &str) -> Vec<Effect> {
        let offered = self
            .transfers
            .get(&transfer)
            .filter(|known| !known.receiving() && known.stage != Stage::Looking)
            .filter(|known| from <= known.size)
            .cloned();
        let offered = match offered {
            None if self.revive(&transfer) => self.transfers.get(&transfer).cloned(),
            offered => offered,
        };
        let Some(known) = offered else {
            // An old offer (from history, or ended before the sender restarted): it is gone.
            return self.queue_control(FileControl::Cancel {
                transfer,
                reason: "this file is no longer offered; ask for it again".into(),
            });
        };
        let Side::Sending { path, stamp } = known.side else {
            return Vec::new();
        };
        let nick = who;
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

    /// What to look for on disk now that the companion's key is known: offers to them made
    /// before a restart, and their interrupted downloads.
    pub(super) fn find_parts(&self) -> Vec<Effect> {
        let (Some(companion), Some(channel)) = (&self.companion, &self.channel) else {
            return Vec::new();
        };
        let (companion, key) = (fold_nick(companion), *channel.theirs());
        vec![
            Effect::FindOffers {
                companion: companion.clone(),
                key,
            },
            Effect::FindParts {
                dir: self.downloads.clone(),
                companion,
                key,
            },
        ]
    }

    /// Offers to the companion recorded before a restart: kept aside until the companion
    /// accepts one (their receiver asks again from what it has) or `--send` takes one up.
    pub(super) fn on_offers_found(&mut self, found: Vec<SavedOffer>) -> Vec<Effect> {
        let transfers = &self.transfers;
        self.revived.retain(|id| transfers.get(id).is_some());
        self.restored = found
            .into_iter()
            .filter(|offer| self.transfers.get(&offer.transfer).is_none())
            .collect();
        // Offered again: one they never answered was lost if they restarted too (one they
        // have is ignored, one they were receiving they ask for again from what they have).
        let offers: Vec<FileControl> = self
            .restored
            .iter()
            .map(|offer| FileControl::Offer {
                transfer: offer.transfer,
                name: offer.name.clone(),
                size: offer.stamp.len,
            })
            .collect();
        self.queue_controls(offers)
    }

    /// Sends again the offers of the files we send that `pick` chooses.
    pub(super) fn offer_again(&mut self, pick: impl Fn(&Transfer) -> bool) -> Vec<Effect> {
        let offers: Vec<FileControl> = self
            .transfers
            .ids_where(|known| !known.receiving() && pick(known))
            .into_iter()
            .filter_map(|id| self.transfers.get(&id))
            .map(|known| FileControl::Offer {
                transfer: known.id,
                name: known.name.clone(),
                size: known.size,
            })
            .collect();
        self.queue_controls(offers)
    }

    /// Queues these control messages for the companion and sends what can go.
    fn queue_controls(&mut self, controls: Vec<FileControl>) -> Vec<Effect> {
        controls
            .into_iter()
            .flat_map(|control| self.queue_control(control))
            .collect()
    }

    /// Makes the recorded offer `transfer` a transfer again, paused at its start; whether
    /// there was one.
    pub(super) fn revive(&mut self, transfer: &TransferId) -> bool {
        let Some(index) = self.restored.iter().position(|o| &o.transfer == transfer) else {
            return false;
        };
        let offer = self.restored.remove(index);
        self.revived.push(offer.transfer);
        self.transfers.insert(Transfer {
            id: offer.transfer,
            side: Side::Sending {
                path: offer.path,
                stamp: Some(offer.stamp),
            },
            name: offer.name,
            size: offer.stamp.len,
            sha256: None,
            stage: Stage::Paused { next: 0 },
            order: 0,
            resyncing: false,
            strays: 0,
            author: None,
        });
        true
    }

    /// An offer of this same unchanged file made to the companion before a restart (still
    /// recorded, or already revived by their accept), taken up instead of a new offer.
    pub(super) fn take_up(
        &mut self,
        path: &std::path::Path,
        stamp: &FileStamp,
    ) -> Option<TransferId> {
        let revived = std::mem::take(&mut self.revived);
        let same = |known: &Transfer| {
            revived.contains(&known.id)
                && matches!(&known.side, Side::Sending { path: p, stamp: Some(s) } if p == path && s == stamp)
        };
        let found = self.transfers.ids_where(same).first().copied();
        // Taken up once: the same file sent again later is a new offer.
        self.revived = revived;
        if let Some(transfer) = found {
            self.revived.retain(|id| id != &transfer);
            return Some(transfer);
        }
        let transfer = self
            .restored
            .iter()
            .find(|offer| offer.path == path && &offer.stamp == stamp)?
            .transfer;
        self.revive(&transfer).then_some(transfer)
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
                strays: 0,
                author: None,
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
/// received is kept to resume, a file being sent keeps its record (a restarted client goes on
/// with it); anything else stops.
pub(super) fn leave_effect(known: &Transfer) -> Effect {
    match known.side {
        _ if known.resumable() => Effect::ClosePart { transfer: known.id },
        // Its record stays: a restarted client can still send it.
        Side::Sending { .. } => Effect::PauseReading { transfer: known.id },
        Side::Receiving { .. } => stop_effect(known),
    }
}
