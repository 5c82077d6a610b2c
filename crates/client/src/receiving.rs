//! The receiving half of file transfers in `App`: an offer (shown, declined when there are too
//! many, or accepted at once with `--auto-accept`), `/accept` and `/decline`, each chunk opened
//! and checked against the offset expected before the runner writes it, and the end: once every
//! byte is here and the sender's SHA-256 (`Sent`) too, the runner's check and final name,
//! answered with `Received` or `Cancel`. Nothing is ever
//! left under the final name unless its SHA-256 matched. Resuming is `pausing.rs`. Pure.

use p2pchat_proto::{safe_file_name, FileChunk};
use p2pchat_secure::{FileControl, TransferId};

use super::{printable, show, App, Effect, Style};
use crate::events::{PartRecord, Progress, SaveError};
use crate::transfers::{human_size, Side, Stage, Transfer, RESYNC_AFTER};

impl App {
    pub(super) fn on_offer(&mut self, transfer: TransferId, name: &str, size: u64) -> Vec<Effect> {
        self.offer_from(None, transfer, name, size)
    }

    /// An offer from the companion, or (`author`: folded and as shown) from a room member.
    pub(super) fn offer_from(
        &mut self,
        author: Option<(String, String)>,
        transfer: TransferId,
        name: &str,
        size: u64,
    ) -> Vec<Effect> {
        let nick = match &author {
            Some((_, shown)) => shown.clone(),
            None => self.companion_name(),
        };
        let name = safe_file_name(name);
        if self.transfers.get(&transfer).is_some() {
            return Vec::new(); // the same offer again
        }
        if self.transfers.is_full() {
            let line = show(
                Style::Error,
                format!(
                    "📎 {nick} offered {name}, but too many transfers are pending; it was declined"
                ),
            );
            let mut effects = vec![line];
            effects.extend(self.queue_control(FileControl::Decline { transfer }));
            return effects;
        }
        let dir = self.downloads.clone();
        self.transfers.insert(Transfer {
            id: transfer,
            side: Side::Receiving { dir: dir.clone() },
            name: name.clone(),
            size,
            sha256: None,
            stage: Stage::Offered,
            order: 0,
            resyncing: false,
            strays: 0,
            author: author.map(|(folded, _)| folded),
        });
        if self.auto_accept {
            return self.accept_transfer(transfer);
        }
        let pending = self.transfers.ids_where(Transfer::pending_offer).len();
        let answer = if pending > 1 {
            format!("/accept {name} (or /accept all, {pending} are waiting)")
        } else {
            "/accept".to_owned()
        };
        vec![show(
            Style::Notice,
            format!(
                "📎 {nick} offers {name} ({}). Type {answer} to receive it in {}, or /decline.",
                human_size(size),
                printable(&dir.display().to_string())
            ),
        )]
    }

    /// `/accept [NAME|N|all]`.
    pub(super) fn accept_file(&mut self, choice: Option<&str>) -> Vec<Effect> {
        let chosen = self.chosen_offers(choice);
        if chosen.is_empty() {
            return vec![no_offer(choice)];
        }
        chosen
            .into_iter()
            .flat_map(|transfer| self.accept_transfer(transfer))
            .collect()
    }

    /// `/decline [NAME|N|all]`.
    pub(super) fn decline_file(&mut self, choice: Option<&str>) -> Vec<Effect> {
        let chosen = self.chosen_offers(choice);
        if chosen.is_empty() {
            return vec![no_offer(choice)];
        }
        let mut effects = Vec::new();
        for transfer in chosen {
            let Some(known) = self.transfers.remove(&transfer) else {
                continue;
            };
            effects.push(show(Style::Notice, format!("📎 Declined {}", known.name)));
            effects.extend(self.queue_control(FileControl::Decline { transfer: known.id }));
        }
        effects
    }

    /// The offers to us that `/accept` or `/decline` `choice` names: `all` of them, or one.
    fn chosen_offers(&self, choice: Option<&str>) -> Vec<TransferId> {
        if choice.is_some_and(|choice| choice.eq_ignore_ascii_case("all")) {
            return self.transfers.ids_where(Transfer::pending_offer);
        }
        self.transfers.pending_offer(choice).into_iter().collect()
    }

    fn accept_transfer(&mut self, transfer: TransferId) -> Vec<Effect> {
        let nick = self.sender_name(&transfer);
        let Some(known) = self.transfers.get_mut(&transfer) else {
            return Vec::new();
        };
        // In a room the stream may be under way for others: what comes before it restarts
        // for us is dropped (see `on_chunk`).
        known.resyncing = known.author.is_some();
        let Side::Receiving { dir } = &known.side else {
            return Vec::new();
        };
        let dir = dir.clone();
        let (name, size) = (known.name.clone(), known.size);
        // A 0-byte file is complete at once: it is checked and named when `Sent` comes.
        known.stage = if size == 0 {
            Stage::Checking
        } else {
            Stage::Moving { next: 0 }
        };
        let mut effects = vec![
            show(
                Style::Notice,
                format!(
                    "📎 Receiving {name} ({}) from {nick} into {}…",
                    human_size(size),
                    printable(&dir.display().to_string())
                ),
            ),
            Effect::CreatePart {
                transfer,
                dir,
                name,
                record: PartRecord {
                    companion: self.partner.clone().unwrap_or_default(),
                    key: self.channel.as_ref().map_or([0; 32], |c| *c.theirs()),
                    size,
                },
            },
        ];
        effects.extend(self.queue_control(FileControl::Accept { transfer, from: 0 }));
        effects
    }

    /// A `Chunk` from the relay: opened, checked to be the next piece, handed to the runner.
    pub(super) fn on_chunk(&mut self, chunk: FileChunk) -> Vec<Effect> {
        let FileChunk {
            transfer,
            offset,
            body,
        } = chunk;
        let Some(known) = self.transfers.get(&transfer) else {
            return Vec::new(); // a late piece of a transfer that was stopped
        };
        let Stage::Moving { next } = known.stage else {
            return Vec::new();
        };
        if !known.receiving() {
            return Vec::new();
        }
        let opened = match (&known.author, &self.room, &self.channel) {
            (Some(author), Some(room), _) => room.open_chunk(author, &transfer, offset, &body),
            (None, _, Some(channel)) => channel
                .open_chunk(false, &transfer, offset, &body)
                .map_err(|_| ()),
            _ => return Vec::new(),
        };
        let data = match opened {
            Ok(data) => data,
            Err(()) => {
                return self.fail_receiving(
                    &transfer,
                    "a piece failed its integrity check (altered in transit or by the relay)",
                    "a piece failed its integrity check",
                )
            }
        };
        if offset != next {
            // Behind: bytes we have (a sender that restarted where we asked, after the stream
            // we interrupted had already brought them). Ahead while resyncing: the rest of that
            // interrupted stream, before the sender acts on our new accept. Ahead otherwise is
            // a gap: something was lost, and the transfer stops.
            if offset < next {
                return Vec::new();
            }
            if known.resyncing {
                // Ahead while resyncing: what was left of the interrupted stream. So many
                // that the new one must have lost its first pieces on the way (a relay can drop
                // chunks while the companion comes and goes): ask again from here.
                let strays = known.strays + 1;
                if let Some(known) = self.transfers.get_mut(&transfer) {
                    known.strays = strays;
                }
                if strays % RESYNC_AFTER == 0 {
                    return self.queue_control(FileControl::Accept {
                        transfer,
                        from: next,
                    });
                }
                return Vec::new();
            }
            let why = format!("a piece arrived out of order (at byte {offset}, expected {next})");
            return self.fail_receiving(&transfer, &why, &why);
        }
        let end = next.saturating_add(data.len() as u64);
        if end > known.size {
            let why = "more bytes arrived than were offered";
            return self.fail_receiving(&transfer, why, why);
        }
        let (name, size, sha256) = (known.name.clone(), known.size, known.sha256);
        if let Some(known) = self.transfers.get_mut(&transfer) {
            known.resyncing = false;
            known.strays = 0;
        }
        let mut effects = vec![
            Effect::WriteChunk { transfer, data },
            Effect::Progress(Progress {
                transfer,
                name,
                done: end,
                total: size,
            }),
        ];
        let stage = if end == size {
            if let Some(sha256) = sha256 {
                effects.push(Effect::FinishFile { transfer, sha256 });
            }
            Stage::Checking
        } else {
            Stage::Moving { next: end }
        };
        if let Some(known) = self.transfers.get_mut(&transfer) {
            known.stage = stage;
        }
        effects
    }

    /// The sender read and sent the whole file; `sha256` is what it must hash to. Once every
    /// byte is here too, the runner checks it and names it. (It comes again after every resumed
    /// stream: the first one is kept.)
    pub(super) fn on_sent(&mut self, transfer: TransferId, sha256: [u8; 32]) -> Vec<Effect> {
        let Some(known) = self.transfers.get_mut(&transfer) else {
            return Vec::new();
        };
        if !known.receiving() || known.sha256.is_some() {
            return Vec::new();
        }
        known.sha256 = Some(sha256);
        match known.stage {
            Stage::Checking => vec![Effect::FinishFile { transfer, sha256 }],
            Stage::Moving { next } => {
                // The sender is through, and `sent` follows its chunks on the same path: the
                // ones still missing were lost on the way (a relay drops chunks while the
                // companion comes and goes). Ask again from here; stray pieces of the stream
                // that may still come are dropped meanwhile.
                known.resyncing = true;
                self.queue_control(FileControl::Accept {
                    transfer,
                    from: next,
                })
            }
            _ => Vec::new(),
        }
    }

    /// Stops a transfer we receive: the temporary file goes, the sender hears `reason`.
    fn fail_receiving(&mut self, transfer: &TransferId, why: &str, reason: &str) -> Vec<Effect> {
        let Some(known) = self.transfers.remove(transfer) else {
            return Vec::new();
        };
        let nick = self.companion_name();
        let mut effects = vec![
            Effect::DiscardPart {
                transfer: *transfer,
            },
            show(
                Style::Error,
                format!(
                    "❌ Receiving {} from {nick} stopped: {why}; nothing was saved",
                    known.name
                ),
            ),
        ];
        effects.extend(self.queue_control(FileControl::Cancel {
            transfer: *transfer,
            reason: reason.into(),
        }));
        effects
    }

    pub(super) fn on_write_failed(&mut self, transfer: TransferId, why: &str) -> Vec<Effect> {
        let why = format!("could not write it ({})", printable(why));
        self.fail_receiving(&transfer, &why, "the receiver could not write the file")
    }

    /// The runner checked a received file's SHA-256 and named it (or not).
    pub(super) fn on_file_saved(
        &mut self,
        transfer: TransferId,
        result: Result<String, SaveError>,
    ) -> Vec<Effect> {
        let Some(known) = self.transfers.get(&transfer) else {
            return Vec::new();
        };
        let Side::Receiving { dir } = &known.side else {
            return Vec::new();
        };
        let dir = printable(&dir.display().to_string());
        let size = human_size(known.size);
        match result {
            Ok(saved) => {
                self.transfers.remove(&transfer);
                let mut effects = vec![show(
                    Style::Notice,
                    format!(
                        "✅ Saved {} ({size}) in {dir} (SHA-256 verified)",
                        printable(&saved)
                    ),
                )];
                effects.extend(self.queue_control(FileControl::Received { transfer }));
                effects
            }
            Err(SaveError::Mismatch) => self.fail_receiving(
                &transfer,
                "its SHA-256 did not match the sender's, so it was deleted",
                "the file did not match its SHA-256",
            ),
            Err(SaveError::Io(why)) => {
                let why = format!("could not save it ({})", printable(&why));
                self.fail_receiving(&transfer, &why, "the receiver could not save the file")
            }
        }
    }
}

/// No offer matches `/accept` or `/decline`.
fn no_offer(choice: Option<&str>) -> Effect {
    let text = match choice {
        None => "❌ No file offer to answer".to_owned(),
        Some(all) if all.eq_ignore_ascii_case("all") => "❌ No file offer to answer".to_owned(),
        Some(choice) => format!("❌ No file offer called {}", printable(choice)),
    };
    show(Style::Error, text)
}
