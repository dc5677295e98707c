//! Call budgets shared across replicas: the port adapters use to stay inside a platform's
//! rate limits when several robit processes post as the same bot.
//!
//! A per-process pacer cannot see what the other replicas send. The engine implements this
//! port on the shared store (see `robit-core`'s `budget` module); adapters call it before a
//! platform request and report the platform's 429s to it, so one replica's rate limit slows
//! every replica down.

use async_trait::async_trait;
use std::time::Duration;

/// A token bucket's shape: up to `burst` calls at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

impl Rate {
    /// `calls` per `window`, all of which may be spent at once (Discord's "5 per 5 s").
    pub fn per(calls: u32, window: Duration) -> Rate {
        let calls = f64::from(calls.max(1));
        Rate {
            burst: calls,
            per_second: calls / window.as_secs_f64().max(0.001),
        }
    }

    /// How long a bucket of this shape takes to earn `tokens`.
    pub fn time_for(&self, tokens: f64) -> Duration {
        if tokens <= 0.0 {
            return Duration::ZERO;
        }
        if self.per_second <= 0.0 {
            return Duration::MAX;
        }
        Duration::from_secs_f64((tokens / self.per_second).min(1e9))
    }

    /// What a bucket of this shape holding `tokens` holds `elapsed` later (never above the
    /// burst; a balance below zero, from [`Rate::block`], earns its way back first).
    pub fn refill(&self, tokens: f64, elapsed: Duration) -> f64 {
        (tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst)
    }

    /// Takes `cost` tokens from a bucket holding `current`: the new balance, and `None` when
    /// granted or how long until it would be. A cost above the burst is capped at it, or the
    /// call could never be granted.
    pub fn take(&self, current: f64, cost: f64) -> (f64, Option<Duration>) {
        let cost = cost.min(self.burst).max(0.0);
        if current >= cost {
            (current - cost, None)
        } else {
            (current, Some(self.time_for(cost - current)))
        }
    }

    /// The balance that makes the next one-token take wait `pause` (never raises it): how a
    /// platform's 429 holds a bucket off.
    pub fn block(&self, current: f64, pause: Duration) -> f64 {
        current.min(1.0 - pause.as_secs_f64() * self.per_second)
    }
}

/// A budget of platform calls shared by every process of one bot. Object safe; held as
/// `Arc<dyn CallBudget>`.
///
/// Implementations fail open: when the shared state cannot be reached, `acquire` returns
/// at once, because the platform's own 429s (which adapters wait out) are the backstop and a
/// reply should not stall on a database outage.
#[async_trait]
pub trait CallBudget: Send + Sync {
    /// Waits until one call on `bucket` fits `rate`, and takes it.
    async fn acquire(&self, bucket: &str, rate: Rate);

    /// The platform answered a call on `bucket` with a 429 asking to wait `retry_after`:
    /// every process sharing this budget holds off that long.
    async fn rate_limited(&self, bucket: &str, rate: Rate, retry_after: Duration);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_per_window() {
        let r = Rate::per(5, Duration::from_secs(5));
        assert_eq!(r.burst, 5.0);
        assert_eq!(r.per_second, 1.0);
        assert_eq!(r.time_for(2.0), Duration::from_secs(2));
        assert_eq!(r.time_for(-1.0), Duration::ZERO);
    }

    const RATE: Rate = Rate {
        burst: 5.0,
        per_second: 1.0,
    };

    #[test]
    fn refills_up_to_burst() {
        assert_eq!(RATE.refill(0.0, Duration::from_secs(2)), 2.0);
        assert_eq!(RATE.refill(4.0, Duration::from_secs(60)), 5.0);
        assert_eq!(RATE.refill(-2.0, Duration::from_secs(1)), -1.0);
    }

    #[test]
    fn takes_or_says_how_long_to_wait() {
        assert_eq!(RATE.take(2.0, 1.0), (1.0, None));
        assert_eq!(RATE.take(0.5, 1.0), (0.5, Some(Duration::from_millis(500))));
        assert_eq!(RATE.take(5.0, 50.0), (0.0, None));
    }

    #[test]
    fn a_block_delays_the_next_take_by_its_pause() {
        let after = RATE.block(5.0, Duration::from_secs(3));
        assert_eq!(after, -2.0);
        assert_eq!(RATE.take(after, 1.0).1, Some(Duration::from_secs(3)));
        assert_eq!(RATE.block(-10.0, Duration::from_secs(1)), -10.0);
    }
}
