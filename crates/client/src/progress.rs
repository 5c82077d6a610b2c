//! Progress of file transfers on screen. The runner has the clock, so rates and time left are
//! worked out here from the app's `Progress` effects. Progress is printed as lines through the
//! same printer as chat lines, so the line editor is never disturbed: every 10% on a terminal,
//! and at 25, 50 and 75% at most in scripting mode (logs stay short), then a final line.

use std::collections::HashMap;
use std::time::Duration;

use p2pchat_secure::TransferId;
use tokio::time::Instant;

use crate::events::Progress;
use crate::transfers::human_size;

/// Transfers tracked at once; past it the oldest are forgotten (they only lose a line or two).
const MAX_TRACKED: usize = 64;

/// When each transfer started and the last step it printed.
pub(crate) struct Meter {
    /// Steps per transfer: 10 on a terminal, 4 in scripting mode.
    steps: u64,
    tracked: HashMap<TransferId, (Instant, u64)>,
}

impl Meter {
    /// A meter for a terminal (`interactive`) or for scripting mode.
    pub fn new(interactive: bool) -> Self {
        Self {
            steps: if interactive { 10 } else { 4 },
            tracked: HashMap::new(),
        }
    }

    /// The line to print for this progress, if it crossed a step (or ended).
    pub fn update(&mut self, progress: &Progress, now: Instant) -> Option<String> {
        if !self.tracked.contains_key(&progress.transfer) && self.tracked.len() >= MAX_TRACKED {
            self.tracked.clear();
        }
        let (start, shown) = self.tracked.entry(progress.transfer).or_insert((now, 0));
        let total = progress.total.max(1);
        let step =
            u64::try_from(u128::from(progress.done) * u128::from(self.steps) / u128::from(total))
                .unwrap_or(self.steps);
        let elapsed = now.saturating_duration_since(*start);
        if progress.done >= progress.total {
            self.tracked.remove(&progress.transfer);
            return Some(final_line(progress, elapsed));
        }
        if step <= *shown {
            return None;
        }
        *shown = step;
        Some(step_line(progress, elapsed))
    }

    /// The transfer stopped: no more lines for it.
    pub fn forget(&mut self, transfer: &TransferId) {
        self.tracked.remove(transfer);
    }
}

/// Bytes per second over `elapsed` (none before a moment has passed).
fn rate(bytes: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs >= 0.05).then(|| bytes as f64 / secs)
}

/// `📎 report.pdf: 50% (1.0 MB of 2.1 MB, 3.4 MB/s, 1s left)`
pub(crate) fn step_line(progress: &Progress, elapsed: Duration) -> String {
    let percent = u128::from(progress.done) * 100 / u128::from(progress.total.max(1));
    let mut text = format!(
        "📎 {}: {percent}% ({} of {}",
        progress.name,
        human_size(progress.done),
        human_size(progress.total)
    );
    if let Some(rate) = rate(progress.done, elapsed).filter(|rate| *rate >= 1.0) {
        let left = progress.total.saturating_sub(progress.done) as f64 / rate;
        text.push_str(&format!(
            ", {}/s, {} left",
            human_size(rate as u64),
            describe_secs(left)
        ));
    }
    text.push(')');
    text
}

/// `📎 report.pdf: 100% (2.1 MB in 1s, 3.4 MB/s)`
pub(crate) fn final_line(progress: &Progress, elapsed: Duration) -> String {
    let mut text = format!(
        "📎 {}: 100% ({} in {}",
        progress.name,
        human_size(progress.total),
        describe_secs(elapsed.as_secs_f64())
    );
    if let Some(rate) = rate(progress.total, elapsed) {
        text.push_str(&format!(", {}/s", human_size(rate as u64)));
    }
    text.push(')');
    text
}

/// `3s`, `2m 5s`, `1h 3m`.
fn describe_secs(secs: f64) -> String {
    let secs = secs.ceil().clamp(0.0, 1e9) as u64;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u64) -> Progress {
        Progress {
            transfer: [1; 16],
            name: "report.pdf".into(),
            done,
            total: 2_100_000,
        }
    }

    #[test]
    fn lines_read_as_designed() {
        assert_eq!(
            step_line(&at(1_050_000), Duration::from_millis(300)),
            "📎 report.pdf: 50% (1.1 MB of 2.1 MB, 3.5 MB/s, 1s left)"
        );
        assert_eq!(
            final_line(&at(2_100_000), Duration::from_secs(2)),
            "📎 report.pdf: 100% (2.1 MB in 2s, 1.1 MB/s)"
        );
    }

    #[test]
    fn scripting_mode_prints_at_quarters_and_at_the_end() {
        let mut meter = Meter::new(false);
        let now = Instant::now();
        let printed: Vec<u64> = (1..=20)
            .map(|i| i * 105_000)
            .filter(|done| meter.update(&at(*done), now).is_some())
            .collect();
        assert_eq!(printed, [525_000, 1_050_000, 1_575_000, 2_100_000]);
        let mut meter = Meter::new(true);
        let lines = (1..=20)
            .filter(|i| meter.update(&at(i * 105_000), now).is_some())
            .count();
        assert_eq!(lines, 10);
    }
}
