//! Progress for timeout messages, CPU metering, and the per-scenario report printed as a human
//! table or one JSON object per line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::sys;
use crate::targets::Ctx;

/// What a scenario is doing now, so a timeout can say what it was waiting for.
#[derive(Default)]
pub struct Progress {
    phase: Mutex<String>,
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    /// Enters a new phase of `total` steps.
    pub fn phase(&self, text: impl Into<String>, total: u64) {
        if let Ok(mut phase) = self.phase.lock() {
            *phase = text.into();
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Counts `n` steps done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// "waiting for X (n of m done)".
    pub fn describe(&self) -> String {
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        format!(
            "{phase} ({} of {} done)",
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed)
        )
    }
}

/// CPU and wall time from `start` to `stop`, for the bench and (if known) the server.
pub struct Meter {
    wall: Instant,
    own: Duration,
    server: Option<(u32, Duration)>,
}

/// Cores used on average over a metered interval.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// Bench CPU seconds per wall second.
    pub bench: f64,
    /// Server CPU seconds per wall second, if its pid was given.
    pub server: Option<f64>,
}

impl Meter {
    /// Starts metering now.
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            wall: Instant::now(),
            own: sys::own_cpu(),
            server: server_pid.and_then(|pid| Some((pid, sys::cpu_of(pid)?))),
        }
    }

    /// CPU use since `start`.
    pub fn stop(&self) -> CpuUse {
        let seconds = self.wall.elapsed().as_secs_f64().max(1e-9);
        let bench = (sys::own_cpu().saturating_sub(self.own)).as_secs_f64() / seconds;
        let server = self.server.and_then(|(pid, before)| {
            let after = sys::cpu_of(pid)?;
            Some(after.saturating_sub(before).as_secs_f64() / seconds)
        });
        CpuUse { bench, server }
    }
}

/// Cores this machine offers.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One scenario's results.
pub struct Report {
    json: Map<String, Value>,
    rows: Vec<(String, String)>,
    notes: Vec<String>,
}

impl Report {
    /// A report for `scenario` run with `ctx`: its target and security mode.
    pub fn new(scenario: &str, ctx: &Ctx) -> Self {
        Self::named(scenario, ctx.target.name(), ctx.security.mode.name())
    }

    /// A report for `scenario` run against `target` with traffic protected as `security` says
    /// (`tls+e2e`, `e2e` or `plaintext`).
    pub fn named(scenario: &str, target: &str, security: &str) -> Self {
        let mut json = Map::new();
        json.insert("scenario".into(), scenario.into());
        json.insert("target".into(), target.into());
        json.insert("security".into(), security.into());
        Self {
            json,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Relay frames written for the messages (one per message in plaintext, one per envelope
    /// in end-to-end mode) over `seconds`.
    pub fn frames(&mut self, frames: u64, seconds: f64) -> &mut Self {
        self.int("frames", "frames (envelopes) sent", frames).real(
            "frames_per_sec",
            "frames/s",
            frames as f64 / seconds.max(1e-9),
            0,
        )
    }

    /// An integer result.
    pub fn int(&mut self, key: &str, label: &str, value: u64) -> &mut Self {
        self.json.insert(key.into(), value.into());
        self.rows.push((label.into(), group(value)));
        self
    }

    /// A real-valued result shown with `decimals` digits.
    pub fn real(&mut self, key: &str, label: &str, value: f64, decimals: usize) -> &mut Self {
        let shown = if value >= 10_000.0 || (decimals == 0 && value >= 1000.0) {
            group(value.round() as u64)
        } else {
            format!("{value:.decimals$}")
        };
        self.json.insert(key.into(), round(value, 6).into());
        self.rows.push((label.into(), shown));
        self
    }

    /// An optional result (`null` in JSON, `-` in the table when absent).
    pub fn maybe(&mut self, key: &str, label: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(value) => self.int(key, label, value),
            None => {
                self.json.insert(key.into(), Value::Null);
                self.rows.push((label.into(), "-".into()));
                self
            }
        }
    }

    /// A line printed under the table (and kept in JSON under `notes`).
    pub fn note(&mut self, text: impl Into<String>) -> &mut Self {
        self.notes.push(text.into());
        self
    }

    /// Adds the CPU figures and the saturation notes.
    pub fn cpu(&mut self, cpu: CpuUse) -> &mut Self {
        let cores = cores();
        self.real("bench_cpu", "bench CPU (cores)", cpu.bench, 2);
        match cpu.server {
            Some(server) => self.real("server_cpu", "server CPU (cores)", server, 2),
            None => self.maybe("server_cpu", "server CPU (cores)", None),
        };
        self.json.insert("cores".into(), cores.into());
        let cores = cores as f64;
        if cpu.bench >= 0.85 * cores {
            self.note(format!(
                "the bench used {:.2} of {cores} cores: the load generator was likely the \
                 bottleneck",
                cpu.bench
            ));
        } else if cpu.bench + cpu.server.unwrap_or(0.0) >= 0.9 * cores {
            self.note(format!(
                "bench and server together used {:.2} of {cores} cores: the machine was \
                 saturated, so figures are CPU-bound for both",
                cpu.bench + cpu.server.unwrap_or(0.0)
            ));
        }
        self
    }

    /// The JSON object, one line.
    pub fn to_json(&self) -> String {
        let mut json = self.json.clone();
        if !self.notes.is_empty() {
            json.insert("notes".into(), self.notes.clone().into());
        }
        Value::Object(json).to_string()
    }

    /// The human table.
    pub fn to_table(&self) -> String {
        let text = |key: &str| {
            self.json
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let title = format!(
            "== {} · {} ({})",
            text("scenario"),
            text("target"),
            text("security")
        );
        let width = self
            .rows
            .iter()
            .map(|(label, _)| label.len())
            .max()
            .unwrap_or(0);
        let mut out = title;
        out.push('\n');
        for (label, value) in &self.rows {
            out.push_str(&format!("  {label:<width$}  {value:>14}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// 1234567 -> "1,234,567".
fn group(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn json_and_table_hold_the_same_figures() {
        let mut report = Report::named("throughput", "p2pchat", "tls+e2e");
        report
            .int("messages", "messages", 200_000)
            .real("mb_per_sec", "MB/s", 24.5678, 2);
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["messages"], 200_000);
        assert_eq!(json["mb_per_sec"], 24.5678);
        assert_eq!(json["security"], "tls+e2e");
        let table = report.to_table();
        assert!(
            table.contains("200,000") && table.contains("24.57") && table.contains("(tls+e2e)"),
            "{table}"
        );
    }
}
