//! The platform call budget: [`robit_types::CallBudget`] on the store's token buckets
//! ([`StoreCallBudget`]), so replicas sharing a database together stay inside a platform's
//! rate limits, and the same buckets in memory ([`LocalCallBudget`]) for a process alone.
//!
//! It fails open (see the trait): a store error is logged and the call goes ahead, because
//! the adapters still wait out any 429 the platform sends and a reply must not stall on a
//! database hiccup. It must not know platform limits: adapters pass the [`Rate`] of each
//! bucket they use.

use crate::metrics as m;
use async_trait::async_trait;
use robit_store::{Store, Take};
use robit_types::{CallBudget, Rate};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Longest single sleep before asking the store again; a block set by another replica may
/// be lifted sooner than our last answer said (never later).
const MAX_NAP: Duration = Duration::from_secs(5);

/// Bucket names are prefixed so turn limits and platform budgets never collide.
const PREFIX: &str = "call:";

pub struct StoreCallBudget {
    store: Arc<dyn Store>,
}

impl StoreCallBudget {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl CallBudget for StoreCallBudget {
    async fn acquire(&self, bucket: &str, rate: Rate) {
        let name = format!("{PREFIX}{bucket}");
        loop {
            match self.store.take_tokens(&name, rate, 1.0).await {
                Ok(Take::Granted) => return,
                Ok(Take::Wait(wait)) => {
                    metrics::counter!(m::CALL_BUDGET_WAITS).increment(1);
                    tokio::time::sleep(wait.min(MAX_NAP)).await;
                }
                Err(e) => {
                    tracing::warn!(bucket, error = %e, "shared call budget unavailable, not waiting");
                    return;
                }
            }
        }
    }

    async fn rate_limited(&self, bucket: &str, rate: Rate, retry_after: Duration) {
        let name = format!("{PREFIX}{bucket}");
        if let Err(e) = self.store.block_bucket(&name, rate, retry_after).await {
            tracing::warn!(bucket, error = %e, "could not share a rate limit with other replicas");
        }
    }
}

/// The buckets of [`StoreCallBudget`] kept in this process, for an adapter whose platform
/// client has no pacer of its own when no other replica shares the bot: its calls then wait
/// for room instead of meeting the platform's 429s, and a reply's last edit can go out the
/// moment the stream ends (`Capabilities::paced`).
#[derive(Default)]
pub struct LocalCallBudget {
    buckets: Mutex<HashMap<String, LocalBucket>>,
}

struct LocalBucket {
    tokens: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

impl LocalCallBudget {
    /// Takes a call from `bucket` now, or says how long until one is there.
    fn take(&self, bucket: &str, rate: Rate) -> Option<Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("budget poisoned");
        let b = buckets.entry(bucket.to_string()).or_insert(LocalBucket {
            tokens: rate.burst,
            at: now,
            blocked_until: None,
        });
        let earned = (now - b.at).as_secs_f64() * rate.per_second;
        b.tokens = (b.tokens + earned).min(rate.burst);
        b.at = now;
        if let Some(until) = b.blocked_until.filter(|u| *u > now) {
            return Some(until - now);
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            Some(rate.time_for(1.0 - b.tokens))
        }
    }
}

#[async_trait]
impl CallBudget for LocalCallBudget {
    async fn acquire(&self, bucket: &str, rate: Rate) {
        while let Some(wait) = self.take(bucket, rate) {
            metrics::counter!(m::CALL_BUDGET_WAITS).increment(1);
            tokio::time::sleep(wait).await;
        }
    }

    async fn rate_limited(&self, bucket: &str, _rate: Rate, retry_after: Duration) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("budget poisoned");
        let b = buckets.entry(bucket.to_string()).or_insert(LocalBucket {
            tokens: 0.0,
            at: now,
            blocked_until: None,
        });
        b.tokens = 0.0;
        b.at = now;
        b.blocked_until = Some(now + retry_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elapsed_ms(start: Instant) -> u128 {
        start.elapsed().as_millis()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_calls_wait_for_the_refill() {
        let budget = LocalCallBudget::default();
        let rate = Rate {
            burst: 3.0,
            per_second: 1.0,
        };
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire("ch", rate).await;
        }
        assert_eq!(elapsed_ms(start), 0);
        budget.acquire("ch", rate).await;
        assert_eq!(elapsed_ms(start), 1000);
        // Another bucket has its own burst.
        budget.acquire("other", rate).await;
        assert_eq!(elapsed_ms(start), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_the_bucket_for_the_platforms_wait() {
        let budget = LocalCallBudget::default();
        let rate = Rate::per(50, Duration::from_secs(60));
        budget.acquire("update", rate).await;
        budget
            .rate_limited("update", rate, Duration::from_secs(7))
            .await;
        let start = Instant::now();
        budget.acquire("update", rate).await;
        assert_eq!(elapsed_ms(start), 7000);
    }
}
