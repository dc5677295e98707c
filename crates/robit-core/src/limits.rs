//! Rate limits and quotas on turns: per-user and per-channel token buckets, and a daily
//! token quota per workspace.
//!
//! The buckets are the store's shared ones (`Store::take_tokens`), so the limits hold across
//! restarts and across replicas, like the platform call budgets (prefix `call:`; these use
//! `turns:`). The quota is the workspace's recorded usage since 00:00 UTC, read from the
//! usage table. Both fail closed: when the store cannot answer, the turn is refused with a
//! message (as access rules are, see `access.rs`), because a limit that switches itself off
//! during a database hiccup is no limit. This file decides nothing about access.

use crate::access::Refusal;
use robit_store::{Store, Take};
use robit_types::{Inbound, Rate};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_MS: i64 = 86_400_000;

/// The limits; `None` turns one off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsConfig {
    /// Turns one user may start in one workspace.
    pub user_turns: Option<Rate>,
    /// Turns one channel may run.
    pub channel_turns: Option<Rate>,
    /// Prompt plus completion tokens a workspace may use per UTC day.
    pub workspace_daily_tokens: Option<u64>,
}

/// Takes one turn from the author's and the channel's buckets and checks the workspace's
/// quota; `Some` when the turn must not run. A user refused by the channel bucket has
/// still spent their own token: the buckets are separate rows and a refund would be a
/// second round trip for a rare case.
pub(crate) async fn check(
    store: &dyn Store,
    limits: &LimitsConfig,
    inbound: &Inbound,
) -> Option<Refusal> {
    let key = &inbound.key;
    let scope = format!("{}:{}", key.platform, key.workspace);
    if let Some(rate) = limits.user_turns {
        let bucket = format!("turns:user:{scope}:{}", inbound.author.id);
        let wait = match take(store, &bucket, rate).await {
            Ok(wait) => wait,
            Err(refusal) => return Some(refusal),
        };
        if let Some(wait) = wait {
            return Some(Refusal {
                reason: "user_rate",
                text: format!(
                    "⏳ You've reached your limit of {} requests for now. Try again in {}.",
                    rate.burst,
                    human(wait)
                ),
            });
        }
    }
    if let Some(rate) = limits.channel_turns {
        let bucket = format!("turns:channel:{scope}:{}", key.channel);
        let wait = match take(store, &bucket, rate).await {
            Ok(wait) => wait,
            Err(refusal) => return Some(refusal),
        };
        if let Some(wait) = wait {
            return Some(Refusal {
                reason: "channel_rate",
                text: format!(
                    "⏳ This channel has reached its limit of {} requests for now. Try again in \
                     {}.",
                    rate.burst,
                    human(wait)
                ),
            });
        }
    }
    if let Some(quota) = limits.workspace_daily_tokens {
        let now = now_ms();
        let midnight = now - now.rem_euclid(DAY_MS);
        match store
            .tokens_used_since(key.platform, &key.workspace, midnight)
            .await
        {
            Ok(used) if used >= quota => {
                let wait = Duration::from_millis((midnight + DAY_MS - now).max(0) as u64);
                return Some(Refusal {
                    reason: "quota",
                    text: format!(
                        "📉 This workspace has used its daily allowance of {quota} tokens. It \
                         resets at 00:00 UTC, in {}.",
                        human(wait)
                    ),
                });
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "reading the quota failed; refusing the turn");
                return Some(crate::access::unavailable());
            }
        }
    }
    None
}

/// `Ok(Some(wait))` when the bucket is empty; `Err` is the refusal when the store failed.
async fn take(store: &dyn Store, bucket: &str, rate: Rate) -> Result<Option<Duration>, Refusal> {
    match store.take_tokens(bucket, rate, 1.0).await {
        Ok(Take::Granted) => Ok(None),
        Ok(Take::Wait(wait)) => Ok(Some(wait)),
        Err(e) => {
            tracing::error!(error = %e, bucket, "rate limit check failed; refusing the turn");
            Err(crate::access::unavailable())
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// "1 s", "42 s", "3 min", "2 h 5 min", rounded up so the user is never told too early.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    match secs {
        0..=1 => "1 s".to_string(),
        2..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs.div_ceil(60)),
        _ => {
            let mins = secs.div_ceil(60);
            format!("{} h {} min", mins / 60, mins % 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(human(Duration::from_millis(300)), "1 s");
        assert_eq!(human(Duration::from_millis(41_200)), "42 s");
        assert_eq!(human(Duration::from_secs(125)), "3 min");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 5 * 60)), "2 h 5 min");
    }
}
