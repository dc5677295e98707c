//! Client-side pacing of message creates and edits, per Discord rate-limit bucket.
//!
//! Why the adapter paces itself: with `api_base` set, serenity's ratelimiter must be disabled
//! (it ignores the proxy otherwise), and serenity then neither waits nor retries, and its
//! error for a 429 carries neither the headers nor `retry_after`. Even against Discord, a
//! budget we keep ourselves means the steady state has no 429 at all, which is what Discord
//! asks of bots. So every create/edit first takes a slot here: a sliding window of `limit`
//! requests per `window` (plus a small margin for network jitter) per bucket key (`ch:<id>` for
//! a channel, `wh:<token>` for an interaction's webhook). A sliding window never exceeds the
//! server's fixed window, whichever instant the server's window starts at.
//!
//! A 429 that still happens (another replica using the same channel, a storm) blocks the
//! bucket for one average request interval (`window / limit`); the caller retries after that.
//! This pacing is per process; with several replicas the sinks also draw from the engine's
//! shared call budget (`Engine::call_budget`), a token bucket of the same rate in the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Added to the window so requests that arrive a little late never land in the server's
/// previous window.
const MARGIN: Duration = Duration::from_millis(150);

#[derive(Debug)]
pub(crate) struct Pacer {
    limit: usize,
    window: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Default)]
struct Bucket {
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Pacer {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1) as usize,
            window,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The budget as a token-bucket rate, for the budget shared with other replicas.
    pub fn rate(&self) -> robit_types::Rate {
        robit_types::Rate::per(self.limit as u32, self.window + MARGIN)
    }

    /// Waits until one more request to `key` fits the budget, and reserves it.
    pub async fn acquire(&self, key: &str) {
        loop {
            let wake = {
                let mut buckets = self.buckets.lock().expect("pacer poisoned");
                let bucket = buckets.entry(key.to_string()).or_default();
                let now = Instant::now();
                let span = self.window + MARGIN;
                while bucket.sent.front().is_some_and(|t| *t + span <= now) {
                    bucket.sent.pop_front();
                }
                let blocked = bucket.blocked_until.filter(|t| *t > now);
                match (blocked, bucket.sent.len() < self.limit) {
                    (None, true) => {
                        bucket.sent.push_back(now);
                        return;
                    }
                    (Some(t), _) => t,
                    (None, false) => bucket.sent[0] + span,
                }
            };
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Records a 429 on `key`; returns how long the bucket is now blocked.
    pub fn rate_limited(&self, key: &str) -> Duration {
        let pause = self.window / self.limit as u32;
        let mut buckets = self.buckets.lock().expect("pacer poisoned");
        let bucket = buckets.entry(key.to_string()).or_default();
        bucket.blocked_until = Some(Instant::now() + pause);
        pause
    }

    /// Forgets buckets idle for a whole window, so the map does not grow with every thread
    /// and interaction ever seen.
    pub fn prune(&self) {
        let now = Instant::now();
        let span = self.window + MARGIN;
        let mut buckets = self.buckets.lock().expect("pacer poisoned");
        buckets.retain(|_, b| {
            b.sent.back().is_some_and(|t| *t + span > now)
                || b.blocked_until.is_some_and(|t| t > now)
        });
    }
}

/// The pacer as the shared call policy's per-process pacing. Serenity hides a 429's
/// `retry_after`, so the bucket's own pause is the answer.
#[async_trait::async_trait]
impl robit_core::call_policy::Pace for Pacer {
    async fn acquire(&self, key: &str) {
        Pacer::acquire(self, key).await;
    }

    fn rate_limited(&self, key: &str, _retry_after: Option<Duration>) -> Duration {
        Pacer::rate_limited(self, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_limit_per_window() {
        let pacer = Pacer::new(5, Duration::from_secs(5));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            pacer.acquire("ch:1").await;
            times.push(Instant::now() - start);
        }
        // Any 5 s span holds at most 5 requests.
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(5))
                .count();
            assert!(in_window <= 5, "{times:?}");
        }
        assert!(times[4] < Duration::from_millis(1));
        assert!(times[5] >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_are_independent_and_429_blocks() {
        let pacer = Pacer::new(5, Duration::from_secs(5));
        for _ in 0..5 {
            pacer.acquire("ch:1").await;
        }
        let start = Instant::now();
        pacer.acquire("ch:2").await;
        assert_eq!(Instant::now(), start);
        assert_eq!(pacer.rate_limited("ch:2"), Duration::from_secs(1));
        pacer.acquire("ch:2").await;
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        pacer.prune();
    }
}
