//! Several files at once in `App`: `/send` with several paths or a directory, and `--send`.
//! The runner turns what was typed into a list of files (`Effect::ListFiles`: a directory is
//! sent as its files, found recursively); they wait in a bounded queue and start as transfer
//! slots free up (`MAX_TRANSFERS`). `--send` leaves once every file it listed is done, with
//! status 1 if any of them failed. Pure.

use std::path::PathBuf;

use super::{show, App, Effect, Style};
use crate::events::SendSpec;
use crate::transfers::{MAX_QUEUED, MAX_TRANSFERS};

/// Where `--send` is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum AutoSend {
    /// No `--send`.
    #[default]
    Off,
    /// Its paths, until a companion is there to take them.
    Waiting(Vec<PathBuf>),
    /// The runner is listing its files.
    Listing,
    /// Its files are queued or moving; `failed` of them (or of its paths) did not make it.
    Sending {
        /// How many failed so far.
        failed: usize,
    },
}

impl App {
    /// `/send PATH…` as typed (quoting is the runner's business: it knows which paths exist).
    pub(super) fn send_typed(&mut self, typed: &str) -> Vec<Effect> {
        if let Err(line) = self.file_companion() {
            return vec![show(Style::Error, line)];
        }
        vec![Effect::ListFiles {
            spec: SendSpec::Typed(typed.to_owned()),
        }]
    }

    /// `--send PATH…`: listed as soon as a companion is there to take them.
    pub(super) fn maybe_auto_send(&mut self) -> Vec<Effect> {
        if !matches!(self.auto_send, AutoSend::Waiting(_)) || self.file_companion().is_err() {
            return Vec::new();
        }
        let AutoSend::Waiting(paths) = std::mem::replace(&mut self.auto_send, AutoSend::Listing)
        else {
            return Vec::new();
        };
        vec![Effect::ListFiles {
            spec: SendSpec::Given(paths),
        }]
    }

    /// The runner listed the files to send (and what it could not send, in words).
    pub(super) fn on_files_listed(
        &mut self,
        files: Vec<PathBuf>,
        problems: Vec<String>,
    ) -> Vec<Effect> {
        let mut effects: Vec<Effect> = problems
            .iter()
            .map(|problem| show(Style::Error, format!("❌ Cannot send {problem}")))
            .collect();
        let mut failed = problems.len();
        if self.send_queue.len() + files.len() > MAX_QUEUED {
            effects.push(show(
                Style::Error,
                format!(
                    "❌ Cannot send {} files at once: at most {MAX_QUEUED} may wait; send fewer",
                    files.len()
                ),
            ));
            failed += files.len().max(1);
        } else {
            if files.len() > 1 {
                effects.push(show(
                    Style::Notice,
                    format!(
                        "📎 {} files to send; up to {} move at once",
                        files.len(),
                        MAX_TRANSFERS
                    ),
                ));
            }
            self.send_queue.extend(files);
        }
        if self.auto_send == AutoSend::Listing {
            self.auto_send = AutoSend::Sending { failed };
            effects.extend(self.pump_sends());
            effects.extend(self.auto_send_check());
        }
        effects
    }

    /// Starts queued files while there are free slots and a companion to take them.
    pub(super) fn pump_sends(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        while !self.send_queue.is_empty()
            && !self.transfers.is_full()
            && self.file_companion().is_ok()
        {
            let Some(path) = self.send_queue.pop_front() else {
                break;
            };
            effects.extend(self.send_file(path));
        }
        effects
    }

    /// A file `--send` listed is done (`failed` or not): leave once all are.
    pub(super) fn auto_send_over(&mut self, failed: bool) -> Vec<Effect> {
        if let AutoSend::Sending { failed: count } = &mut self.auto_send {
            *count += usize::from(failed);
        }
        self.auto_send_check()
    }

    /// Leaves, with status 1 if anything failed, once `--send` has nothing left to do.
    fn auto_send_check(&mut self) -> Vec<Effect> {
        let AutoSend::Sending { failed } = self.auto_send else {
            return Vec::new();
        };
        let sending = self.transfers.ids_where(|known| !known.receiving());
        if !self.send_queue.is_empty() || !sending.is_empty() {
            return Vec::new();
        }
        self.auto_send = AutoSend::Off;
        self.exit_code = i32::from(failed > 0);
        self.leave()
    }

    /// Whether `--send` still has files to send.
    pub(super) fn auto_sending(&self) -> bool {
        self.auto_send != AutoSend::Off
    }
}
