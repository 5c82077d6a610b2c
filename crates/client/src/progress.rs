//! Progress of file transfers on screen. The runner has the clock, so rates and time left are
//! worked out here from the app's `Progress` effects. Progress is printed as lines through the
//! same printer as chat lines, so the line editor is never disturbed: every 10% on a terminal,
//! and at 25, 50 and 75% at most in scripting mode (logs stay short), then a final line.
//! Each step line carries a bar drawn by indicatif into a captured line; indicatif never gets
//! the terminal, which belongs to the line editor.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use p2pchat_secure::TransferId;
use tokio::time::Instant;

use crate::events::Progress;
use crate::transfers::human_size;

/// Transfers tracked at once; past it the oldest are forgotten (they only lose a line or two).
const MAX_TRACKED: usize = 64;

/// `{prefix}` is the name and our own percentage: indicatif's `{percent}` rounds, so it would
/// say 100% before the end (and 26% at 25.6%). `{msg}` is our rate and time left: indicatif
/// reads its own clock, and the runner's clock is the one tests can drive. Plain ASCII in the
/// bar, so logs stay readable.
const TEMPLATE: &str = "📎 {prefix} [{bar:20}] {msg}";

/// When each transfer started and the last step it printed.
pub(crate) struct Meter {
    /// Steps per transfer: 10 on a terminal, 4 in scripting mode.
    steps: u64,
    /// Per transfer: when it was first seen, the bytes done then (a resumed transfer starts
    /// part way), and the last step printed.
    tracked: HashMap<TransferId, (Instant, u64, u64)>,
    style: ProgressStyle,
}

impl Meter {
    /// A meter for a terminal (`interactive`) or for scripting mode.
    pub fn new(interactive: bool) -> Self {
        Self {
            steps: if interactive { 10 } else { 4 },
            tracked: HashMap::new(),
            style: bar_style(),
        }
    }

    /// The line to print for this progress, if it crossed a step (or ended).
    pub fn update(&mut self, progress: &Progress, now: Instant) -> Option<String> {
        if !self.tracked.contains_key(&progress.transfer) && self.tracked.len() >= MAX_TRACKED {
            self.tracked.clear();
        }
        let (start, base, shown) =
            self.tracked
                .entry(progress.transfer)
                .or_insert((now, progress.done, 0));
        let total = progress.total.max(1);
        let step =
            u64::try_from(u128::from(progress.done) * u128::from(self.steps) / u128::from(total))
                .unwrap_or(self.steps);
        let elapsed = now.saturating_duration_since(*start);
        // Only what moved since it was first seen counts for the rate.
        let moved = progress.done.saturating_sub(*base);
        if progress.done >= progress.total {
            self.tracked.remove(&progress.transfer);
            return Some(final_line(progress, moved, elapsed));
        }
        if step <= *shown {
            return None;
        }
        *shown = step;
        Some(step_line(&self.style, progress, moved, elapsed))
    }

    /// The transfer stopped: no more lines for it.
    pub fn forget(&mut self, transfer: &TransferId) {
        self.tracked.remove(transfer);
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(TEMPLATE)
        .expect("the progress template is valid (the tests render it)")
        .progress_chars("#>-")
}

/// Bytes per second over `elapsed` (none before a moment has passed).
fn rate(bytes: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs >= 0.05).then(|| bytes as f64 / secs)
}

/// `📎 report.pdf: 50% [##########>---------] 1.1 MB of 2.1 MB, 3.5 MB/s, 1s left`
pub(crate) fn step_line(
    style: &ProgressStyle,
    progress: &Progress,
    moved: u64,
    elapsed: Duration,
) -> String {
    let percent = u128::from(progress.done) * 100 / u128::from(progress.total.max(1));
    // Sizes in the same words as every other line (`human_size`), not indicatif's.
    let mut pace = format!(
        "{} of {}",
        human_size(progress.done),
        human_size(progress.total)
    );
    if let Some(rate) = rate(moved, elapsed).filter(|rate| *rate >= 1.0) {
        let left = progress.total.saturating_sub(progress.done) as f64 / rate;
        pace.push_str(&format!(
            ", {}/s, {} left",
            human_size(rate as u64),
            describe_secs(left)
        ));
    }
    let screen = Screen::default();
    let bar = ProgressBar::with_draw_target(
        Some(progress.total),
        ProgressDrawTarget::term_like(Box::new(screen.clone())),
    )
    .with_style(style.clone())
    .with_prefix(format!("{}: {percent}%", progress.name))
    .with_message(pace)
    .with_position(progress.done);
    // One draw, position untouched; a bar dropped unfinished would draw a second time.
    bar.abandon();
    screen.take()
}

/// `📎 report.pdf: 100% (2.1 MB in 1s, 3.4 MB/s)`
pub(crate) fn final_line(progress: &Progress, moved: u64, elapsed: Duration) -> String {
    let mut text = format!(
        "📎 {}: 100% ({} in {}",
        progress.name,
        human_size(progress.total),
        describe_secs(elapsed.as_secs_f64())
    );
    if let Some(rate) = rate(moved, elapsed) {
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

/// A pretend terminal that keeps what indicatif draws, so the bar becomes a line for the chat's
/// printer. Cursor moves are ignored: every bar draws once, on a line of its own.
#[derive(Clone, Debug, Default)]
struct Screen(Arc<Mutex<String>>);

impl Screen {
    /// The line drawn, without the padding indicatif adds up to the width.
    fn take(&self) -> String {
        let mut drawn = std::mem::take(&mut *self.text());
        drawn.truncate(drawn.trim_end().len());
        drawn
    }

    fn text(&self) -> std::sync::MutexGuard<'_, String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TermLike for Screen {
    /// Only the padding depends on it (our template has no wide element), and it is trimmed.
    fn width(&self) -> u16 {
        80
    }

    /// indicatif skips bars taller than the terminal; a long file name must not hide the line.
    fn height(&self) -> u16 {
        u16::MAX
    }

    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        let mut text = self.text();
        text.push_str(s);
        text.push('\n');
        Ok(())
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.text().extend(s.chars().filter(|c| *c != '\r'));
        Ok(())
    }

    fn clear_line(&self) -> io::Result<()> {
        self.text().clear();
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
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
        let style = bar_style();
        assert_eq!(
            step_line(
                &style,
                &at(1_050_000),
                1_050_000,
                Duration::from_millis(300)
            ),
            "📎 report.pdf: 50% [##########>---------] 1.1 MB of 2.1 MB, 3.5 MB/s, 1s left"
        );
        assert_eq!(
            step_line(&style, &at(210_000), 210_000, Duration::ZERO),
            "📎 report.pdf: 10% [##>-----------------] 210.0 kB of 2.1 MB"
        );
        assert_eq!(
            final_line(&at(2_100_000), 2_100_000, Duration::from_secs(2)),
            "📎 report.pdf: 100% (2.1 MB in 2s, 1.1 MB/s)"
        );
    }

    #[test]
    fn the_meter_works_out_rate_and_time_left_from_the_runners_clock() {
        let mut meter = Meter::new(true);
        let start = Instant::now();
        assert_eq!(meter.update(&at(0), start), None);
        let line = meter
            .update(&at(630_000), start + Duration::from_secs(3))
            .expect("30% is a step");
        assert_eq!(
            line,
            "📎 report.pdf: 30% [######>-------------] 630.0 kB of 2.1 MB, 210.0 kB/s, 7s left"
        );
        let line = meter
            .update(&at(2_100_000), start + Duration::from_secs(10))
            .expect("the end is always shown");
        assert_eq!(line, "📎 report.pdf: 100% (2.1 MB in 10s, 210.0 kB/s)");
        // A transfer resumed half way: only what moved since counts for the rate.
        let mut meter = Meter::new(true);
        assert!(meter.update(&at(1_050_000), start).is_some());
        let line = meter
            .update(&at(1_260_000), start + Duration::from_secs(1))
            .expect("60% is a step");
        assert!(line.ends_with(", 210.0 kB/s, 4s left"), "{line}");
    }

    #[test]
    fn a_long_name_still_gives_one_whole_line() {
        let mut progress = at(1_050_000);
        progress.name = "x".repeat(5_000);
        let line = step_line(&bar_style(), &progress, 1_050_000, Duration::from_secs(1));
        assert!(
            line.starts_with(&format!("📎 {}: 50% [", progress.name)),
            "{line}"
        );
        assert!(
            line.ends_with("1.1 MB of 2.1 MB, 1.1 MB/s, 1s left"),
            "{line}"
        );
        assert!(!line.contains('\n'));
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
