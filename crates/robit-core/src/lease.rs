//! Conversation leases: with several replicas on one database, only the replica holding a
//! conversation's lease runs its turns, so turns stay one at a time across processes.
//!
//! The lease is taken before a turn starts (waiting while another replica holds it),
//! renewed while the turn runs, and released at the end. A replica that dies leaves its
//! lease to expire; another replica then takes it over and carries on from the store, since
//! nothing a turn needs lives in a replica's memory.

use robit_store::{ConversationId, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Who this replica is and how long its leases last.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Unique per process (host name + pid + start time works).
    pub holder: String,
    /// How long a lease lives without renewal: how long a dead replica's conversations wait.
    pub ttl: Duration,
}

/// Holds a lease until dropped (renewal stops) and [`LeaseGuard::release`] is awaited.
pub(crate) struct LeaseGuard {
    store: Arc<dyn Store>,
    conversation: ConversationId,
    holder: String,
    stop_renewing: CancellationToken,
}

/// Waits for the conversation's lease. `None` when `shutdown` fires first.
pub(crate) async fn acquire(
    store: &Arc<dyn Store>,
    config: &LeaseConfig,
    shutdown: &CancellationToken,
    conversation: ConversationId,
) -> Option<LeaseGuard> {
    let poll = (config.ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut waited = false;
    loop {
        match store
            .try_lease(conversation, &config.holder, config.ttl)
            .await
        {
            Ok(true) => break,
            Ok(false) => {
                if !waited {
                    tracing::info!(
                        conversation = conversation.0,
                        "another replica holds this conversation; waiting"
                    );
                    waited = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "taking the conversation lease failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.cancelled() => return None,
        }
    }
    let stop_renewing = CancellationToken::new();
    let renew = {
        let store = store.clone();
        let holder = config.holder.clone();
        let ttl = config.ttl;
        let stop = stop_renewing.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(ttl / 3) => {}
                    _ = stop.cancelled() => return,
                }
                match store.try_lease(conversation, &holder, ttl).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        conversation = conversation.0,
                        "lost the conversation lease to another replica"
                    ),
                    Err(e) => tracing::warn!(error = %e, "renewing the conversation lease failed"),
                }
            }
        }
    };
    tokio::spawn(renew);
    Some(LeaseGuard {
        store: store.clone(),
        conversation,
        holder: config.holder.clone(),
        stop_renewing,
    })
}

impl LeaseGuard {
    pub(crate) async fn release(self) {
        self.stop_renewing.cancel();
        if let Err(e) = self
            .store
            .release_lease(self.conversation, &self.holder)
            .await
        {
            tracing::warn!(error = %e, "releasing the conversation lease failed; it will expire");
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop_renewing.cancel();
    }
}
