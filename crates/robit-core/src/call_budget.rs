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

/// A bucket's balance and when it was last brought up to date; the arithmetic is
/// [`Rate`]'s, the same the store does for [`StoreCallBudget`].
struct LocalBucket {
    tokens: f64,
    at: Instant,
}

impl LocalCallBudget {
    /// Runs `f` on `bucket`'s balance as of now (a new bucket starts full).
    fn with_bucket<T>(&self, bucket: &str, rate: Rate, f: impl FnOnce(&mut f64) -> T) -> T {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("budget poisoned");
        let b = buckets.entry(bucket.to_string()).or_insert(LocalBucket {
            tokens: rate.burst,
            at: now,
        });
        b.tokens = rate.refill(b.tokens, now - b.at);
        b.at = now;
        f(&mut b.tokens)
    }
}

#[async_trait]
impl CallBudget for LocalCallBudget {
    async fn acquire(&self, bucket: &str, rate: Rate) {
        loop {
            let wait = self.with_bucket(bucket, rate, |tokens| {
                let (left, wait) = rate.take(*tokens, 1.0);
                *tokens = left;
                wait
            });
            let Some(wait) = wait else { return };
            metrics::counter!(m::CALL_BUDGET_WAITS).increment(1);
            tokio::time::sleep(wait).await;
        }
    }

    async fn rate_limited(&self, bucket: &str, rate: Rate, retry_after: Duration) {
        self.with_bucket(bucket, rate, |tokens| {
            *tokens = rate.block(*tokens, retry_after)
        });
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
