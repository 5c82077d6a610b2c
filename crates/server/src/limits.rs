//! Abuse limits: how fast one connection may send chat messages (`Throttle`), how many
//! connections one address may hold at once (`PerAddress`), and warnings about either that are
//! logged at a bounded rate however fast the abuse comes (`LogBudget`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of its allowance a sender may get: `max_rate` messages a second with a burst of
/// as many is exactly one second's worth of messages, whatever the rate.
const BURST: Duration = Duration::from_secs(1);

/// A token bucket counted in `Message` frames, kept in its virtual-time form (GCRA): instead of
/// a token count refilled by the clock, `full_at` is when the bucket would be full again. Each
/// message moves it `1/rate` seconds later; a sender more than `BURST` ahead of the clock has
/// used up its burst and is not read until it is back within it. Two fields and no arithmetic
/// per frame: a read is charged once, for all the messages it brought.
#[derive(Default)]
pub(crate) struct Throttle {
    /// When the allowance is full again (`None`: it is full).
    full_at: Option<Instant>,
    /// Reading is paused until `full_at - BURST`.
    paused: bool,
    /// In a throttling episode: the client was told, and is not told again until its
    /// allowance has been full again (it sent slower than the rate for a whole burst).
    slowed: bool,
}

/// What charging a read decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Charge {
    /// Within the allowance: keep reading.
    Fine,
    /// Over it: stop reading until `resume_at`. `first` is set for the first pause of an
    /// episode, when the client is told.
    Pause { resume_at: Instant, first: bool },
}

impl Throttle {
    /// Charges `count` messages read at `now` against `rate` messages a second.
    pub(crate) fn charge(&mut self, count: u32, rate: u32, now: Instant) -> Charge {
        let full_at = match self.full_at {
            Some(at) if at > now => at,
            // Full again: whatever episode there was is over.
            _ => {
                self.slowed = false;
                now
            }
        };
        if count == 0 || rate == 0 {
            self.full_at = (full_at > now).then_some(full_at);
            return Charge::Fine;
        }
        let cost = Duration::from_nanos(u64::from(count) * 1_000_000_000 / u64::from(rate));
        let full_at = full_at + cost;
        self.full_at = Some(full_at);
        let resume_at = full_at.checked_sub(BURST).unwrap_or(now);
        if resume_at <= now {
            return Charge::Fine;
        }
        self.paused = true;
        let first = !self.slowed;
        self.slowed = true;
        Charge::Pause { resume_at, first }
    }

    /// When reading resumes, while it is paused.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        match (self.paused, self.full_at) {
            (true, Some(full_at)) => Some(full_at.checked_sub(BURST).unwrap_or(full_at)),
            _ => None,
        }
    }

    /// Ends the pause if it is over at `now`; returns whether it just ended.
    pub(crate) fn resume(&mut self, now: Instant) -> bool {
        match self.paused_until() {
            Some(until) if until <= now => {
                self.paused = false;
                true
            }
            _ => false,
        }
    }
}

/// Open connections per client address, to refuse one address holding more than `limit`.
/// IPv6 clients are counted by their /64 network: one host routinely has a whole /64 and can
/// pick a new address from it for every connection. Entries are removed when their count
/// reaches zero, so the map never holds more entries than there are open connections.
#[derive(Clone)]
pub(crate) struct PerAddress {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection's place in its address's count; giving it back (dropping it, when
/// the session's task ends however it ends) frees the place.
pub(crate) struct AddressSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl PerAddress {
    /// At most `limit` connections per address (0: no limit, and nothing is counted).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
        }
    }

    /// The limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A place for one more connection from `ip`; `Err` when its address is at the limit.
    /// `Ok(None)` when there is no limit.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Option<AddressSlot>, ()> {
        if self.limit == 0 {
            return Ok(None);
        }
        let key = address_key(ip);
        let mut open = crate::lock(&self.open);
        let count = open.entry(key).or_insert(0);
        if *count >= self.limit {
            return Err(());
        }
        *count += 1;
        Ok(Some(AddressSlot {
            open: self.open.clone(),
            key,
        }))
    }

    /// Addresses with connections open (for tests).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        crate::lock(&self.open).len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = crate::lock(&self.open);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What connections are counted under: the IPv4 address (an IPv4-mapped IPv6 address is the
/// IPv4 address it maps), or the IPv6 /64 network.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Allows one warning per `every`, counting the ones left out, so that a flood of refusals
/// costs a few log lines, not one per connection.
pub(crate) struct LogBudget {
    every: Duration,
    last: Option<Instant>,
    skipped: u64,
}

impl LogBudget {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            skipped: 0,
        }
    }

    /// `Some(warnings left out since the last one)` if a warning may be logged now.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + self.every) {
            self.skipped += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_and_what_follows_waits() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        // A full burst (one second's worth) at once is fine.
        assert_eq!(throttle.charge(1000, 1000, start), Charge::Fine);
        // One more is not: reading waits until one message's worth of time has passed.
        match throttle.charge(1, 1000, start) {
            Charge::Pause { resume_at, first } => {
                assert!(first);
                assert_eq!(resume_at, start + Duration::from_millis(1));
            }
            Charge::Fine => panic!("the burst was exceeded"),
        }
        assert!(!throttle.resume(start));
        assert!(throttle.resume(start + Duration::from_millis(1)));
        assert_eq!(throttle.paused_until(), None);
        // Still ahead of the clock: the next pause belongs to the same episode.
        let later = start + Duration::from_millis(1);
        assert!(matches!(
            throttle.charge(500, 1000, later),
            Charge::Pause { first: false, .. }
        ));
        // Quiet until the allowance is full again: a new episode.
        let quiet = later + Duration::from_secs(3);
        assert_eq!(throttle.charge(10, 1000, quiet), Charge::Fine);
        assert!(matches!(
            throttle.charge(2000, 1000, quiet),
            Charge::Pause { first: true, .. }
        ));
    }

    #[test]
    fn a_steady_sender_at_the_rate_is_never_paused() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        for tick in 0..1000u64 {
            let now = start + Duration::from_millis(tick * 10);
            assert_eq!(throttle.charge(10, 1000, now), Charge::Fine, "tick {tick}");
        }
    }

    #[test]
    fn addresses_are_counted_and_forgotten() {
        let limits = PerAddress::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let second = limits.admit(mapped).unwrap();
        assert!(
            limits.admit(a).is_err(),
            "a mapped address is the same address"
        );
        // One /64 is one client.
        let six: IpAddr = "2001:db8::1".parse().unwrap();
        let six_other: IpAddr = "2001:db8::2:3".parse().unwrap();
        let _six = (limits.admit(six).unwrap(), limits.admit(six_other).unwrap());
        assert!(limits.admit("2001:db8::99".parse().unwrap()).is_err());
        assert!(limits.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        drop(first);
        assert!(limits.admit(a).is_ok());
        drop(second);
        assert_eq!(
            limits.addresses(),
            1,
            "only the IPv6 network is still counted"
        );
        assert!(PerAddress::new(0).admit(a).unwrap().is_none());
    }

    #[test]
    fn warnings_are_rationed() {
        let mut budget = LogBudget::new(Duration::from_secs(60));
        assert_eq!(budget.allow(), Some(0));
        assert_eq!(budget.allow(), None);
        assert_eq!(budget.allow(), None);
    }
}
