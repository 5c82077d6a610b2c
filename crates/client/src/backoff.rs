//! How long to wait before each reconnect attempt: exponential from `FIRST_DELAY`, capped at
//! `MAX_DELAY`, spread by jitter so that clients dropped together by a relay restart do not all
//! knock at the same instant. Pure: the caller supplies the randomness.

use std::time::Duration;

/// The wait before the first attempt (and the unit of the doubling).
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
/// No wait is longer than this, jitter included.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// The wait before attempt `attempt` (0 for the first). `jitter` in `[0, 1)` places it between
/// 50% and 150% of the doubled step (a value outside it, NaN included, means no jitter).
pub fn reconnect_delay(attempt: u32, jitter: f64) -> Duration {
    let step = FIRST_DELAY
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_DELAY);
    let jitter = if (0.0..=1.0).contains(&jitter) {
        jitter
    } else {
        0.5
    };
    step.mul_f64(0.5 + jitter).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn doubles_from_a_quarter_second_up_to_ten() {
        let middle: Vec<Duration> = (0..8).map(|n| reconnect_delay(n, 0.5)).collect();
        assert_eq!(
            middle,
            [
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(10_000),
                ms(10_000)
            ]
        );
        assert_eq!(reconnect_delay(u32::MAX, 0.5), MAX_DELAY);
    }

    #[test]
    fn jitter_spreads_half_to_one_and_a_half_steps_within_the_cap() {
        assert_eq!(reconnect_delay(2, 0.0), ms(500));
        assert_eq!(reconnect_delay(2, 0.99), ms(1490));
        assert_eq!(reconnect_delay(5, 0.99), MAX_DELAY);
        assert_eq!(reconnect_delay(0, f64::NAN), ms(250), "NaN means no jitter");
        assert_eq!(reconnect_delay(0, -3.0), ms(250));
    }
}
