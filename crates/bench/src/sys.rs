//! Process measurements and limits: this process's CPU time (getrusage), another process's RSS
//! and CPU time (/proc/PID/status and /proc/PID/stat), and the open-file limit.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use nix::sys::time::TimeVal;
use nix::unistd::{sysconf, SysconfVar};

/// CPU time (user + system) this process has used so far.
pub fn own_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => timeval(usage.user_time()) + timeval(usage.system_time()),
        Err(_) => Duration::ZERO,
    }
}

fn timeval(tv: TimeVal) -> Duration {
    let micros = tv.tv_sec() as i128 * 1_000_000 + tv.tv_usec() as i128;
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// A process's resident set size in KiB (`VmRSS`), or `None` if it cannot be read.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A process's CPU time (user + system), or `None` if it cannot be read. Summed from every
/// thread's schedstat (nanoseconds) where the kernel has it: /proc/PID/stat counts in clock
/// ticks (10 ms), too coarse for scenarios that last a fraction of a second.
pub fn cpu_of(pid: u32) -> Option<Duration> {
    schedstat_cpu(pid).or_else(|| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat_cpu(&stat, clock_ticks())
    })
}

fn schedstat_cpu(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// The open-file limit (`Max open files`, soft) of another process.
pub fn open_files_limit_of(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

fn clock_ticks() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as u64,
        _ => 100,
    }
}

/// utime + stime from the text of /proc/PID/stat (fields 14 and 15, counted after the command
/// name, which is in parentheses and may contain spaces).
fn parse_stat_cpu(stat: &str, ticks_per_sec: u64) -> Option<Duration> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_micros(ticks * 1_000_000 / ticks_per_sec))
}

/// Raises this process's open-file soft limit to the hard limit, first trying to raise the hard
/// limit to `want` (works as root). Returns the soft limit now in force; fails if it is below
/// `need`, saying how to run with a higher limit.
pub fn raise_open_files(want: u64, need: u64) -> Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    let mut hard = hard;
    if hard < want {
        match setrlimit(Resource::RLIMIT_NOFILE, want, want) {
            Ok(()) => hard = want,
            Err(err) if hard >= need => eprintln!(
                "note: could not raise the open-file hard limit from {hard} to {want} ({err}); \
                 {hard} is enough for this run"
            ),
            Err(err) => eprintln!(
                "note: could not raise the open-file hard limit from {hard} to {want} ({err}); \
                 run under `ulimit -n {want}` or `prlimit --nofile={want}` as root"
            ),
        }
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("raising RLIMIT_NOFILE")?;
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    if soft < need {
        bail!(
            "{need} open files are needed but the limit is {soft}: run the bench under \
             `ulimit -n {want}` (or `prlimit --nofile={want} -- ...`), as root if the hard limit \
             is lower"
        );
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_skips_a_command_name_with_spaces() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 \
                    4 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kb(pid).is_some_and(|kb| kb > 0));
        assert!(cpu_of(pid).is_some());
        assert!(open_files_limit_of(pid).is_some());
    }
}
