//! The shared platform call budget: [`robit_types::CallBudget`] on the store's token
//! buckets, so replicas sharing a database together stay inside a platform's rate limits.
//!
//! It fails open (see the trait): a store error is logged and the call goes ahead, because
//! the adapters still wait out any 429 the platform sends and a reply must not stall on a
//! database hiccup. It must not know platform limits: adapters pass the [`Rate`] of each
//! bucket they use.

use crate::metrics as m;
use async_trait::async_trait;
use robit_store::{Store, Take};
use robit_types::{CallBudget, Rate};
use std::sync::Arc;
use std::time::Duration;

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
