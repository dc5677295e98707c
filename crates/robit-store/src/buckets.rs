//! Token-bucket arithmetic shared by both backends; the backends only load and save
//! `(tokens, updated_at)` under a row lock and call these functions in between.

use crate::model::Take;
use robit_types::Rate;
use std::time::Duration;

/// Tokens in the bucket at `now_ms`, given what it held at `updated_ms`.
pub(crate) fn refilled(tokens: f64, updated_ms: i64, now_ms: i64, rate: Rate) -> f64 {
    let elapsed = (now_ms - updated_ms).max(0) as f64 / 1000.0;
    (tokens + elapsed * rate.per_second).min(rate.burst)
}

/// Takes `cost` tokens from a bucket holding `current`: the new balance and the answer. A
/// cost above the burst is capped at it, or the call could never be granted.
pub(crate) fn take(current: f64, rate: Rate, cost: f64) -> (f64, Take) {
    let cost = cost.min(rate.burst).max(0.0);
    if current >= cost {
        (current - cost, Take::Granted)
    } else {
        (current, Take::Wait(rate.time_for(cost - current)))
    }
}

/// The balance that makes the next one-token take wait `pause` (never raises it).
pub(crate) fn blocked(current: f64, rate: Rate, pause: Duration) -> f64 {
    current.min(1.0 - pause.as_secs_f64() * rate.per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 5.0,
        per_second: 1.0,
    };

    #[test]
    fn refills_up_to_burst() {
        assert_eq!(refilled(0.0, 0, 2_000, RATE), 2.0);
        assert_eq!(refilled(4.0, 0, 60_000, RATE), 5.0);
        // A clock that went backwards refills nothing rather than draining.
        assert_eq!(refilled(3.0, 5_000, 1_000, RATE), 3.0);
    }

    #[test]
    fn takes_or_says_how_long_to_wait() {
        assert_eq!(take(2.0, RATE, 1.0), (1.0, Take::Granted));
        assert_eq!(
            take(0.5, RATE, 1.0),
            (0.5, Take::Wait(Duration::from_millis(500)))
        );
        assert_eq!(take(5.0, RATE, 50.0), (0.0, Take::Granted));
    }

    #[test]
    fn a_block_delays_the_next_take_by_its_pause() {
        let after = blocked(5.0, RATE, Duration::from_secs(3));
        assert_eq!(after, -2.0);
        assert_eq!(take(after, RATE, 1.0).1, Take::Wait(Duration::from_secs(3)));
        assert_eq!(blocked(-10.0, RATE, Duration::from_secs(1)), -10.0);
    }
}
