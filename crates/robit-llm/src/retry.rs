//! Retries of a request that failed before its answer started, as a [`Provider`] decorator.
//!
//! [`Retrying`] wraps any provider and tries `stream()` again when it fails with a transient
//! error (rate limited, 5xx including Anthropic's 529, could not connect), waiting an
//! exponential backoff with jitter, or the provider's `Retry-After` when it sent one. It must
//! never retry once a stream has been returned: by then tokens may have reached the user, and
//! a second answer would be glued onto the first. The backoff schedule is backon's; this file
//! only says what is worth retrying and how long a wait may be.

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatStream, Provider};
use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How [`Retrying`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 (or 0) means never retry.
    pub max_attempts: u32,
    /// The wait before the first retry; each later wait doubles, plus jitter of up to the
    /// same amount again.
    pub initial_backoff: Duration,
    /// No backoff wait (jitter included) is longer than this.
    pub max_backoff: Duration,
    /// The longest `Retry-After` we honour: a provider asking for longer is retried after
    /// this long anyway, because a user is waiting in the chat and the router may have
    /// another provider to fail over to once our attempts are used up.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, backoff from 500 ms up to 10 s, `Retry-After` honoured up to 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after `error` when the backoff schedule says `backoff`.
    fn wait(&self, error: &LlmError, backoff: Duration) -> Duration {
        match error {
            LlmError::RateLimited {
                retry_after: Some(after),
            } => (*after).min(self.max_retry_after),
            _ => backoff.min(self.max_backoff),
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }
}

/// A [`Provider`] that retries its inner provider's `stream()` on transient errors.
///
/// Works with a concrete client (`Retrying::new(anthropic, policy)`) or a shared one
/// (`Retrying::new(arc_dyn_provider, policy)`); its [`name`](Provider::name) is the inner
/// provider's.
#[derive(Debug)]
pub struct Retrying<P> {
    inner: P,
    policy: RetryPolicy,
}

impl<P: Provider> Retrying<P> {
    pub fn new(inner: P, policy: RetryPolicy) -> Self {
        Retrying { inner, policy }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    pub fn inner(&self) -> &P {
        &self.inner
    }
}

#[async_trait]
impl<P: Provider> Provider for Retrying<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        let policy = self.policy;
        let provider = self.inner.name();
        let mut attempt: u32 = 1;
        let attempts = (|| self.inner.stream(request.clone(), cancel.clone()))
            .retry(policy.backoff().build())
            .sleep(tokio::time::sleep)
            .when(LlmError::is_transient)
            // `None` means the attempts are used up; it must stay `None`.
            .adjust(|error, backoff| backoff.map(|backoff| policy.wait(error, backoff)))
            .notify(|error, wait| {
                tracing::warn!(
                    provider,
                    attempt,
                    max_attempts = policy.max_attempts,
                    wait_ms = wait.as_millis() as u64,
                    error = %error,
                    "provider request failed before the answer started; retrying"
                );
                attempt += 1;
            });
        // The inner provider stops on cancellation by itself; this covers the backoff waits.
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(LlmError::Cancelled),
            result = attempts => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let policy = RetryPolicy {
            max_retry_after: Duration::from_secs(30),
            ..RetryPolicy::default()
        };
        let limited = |secs| LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        };
        let backoff = Duration::from_millis(700);
        assert_eq!(policy.wait(&limited(2), backoff), Duration::from_secs(2));
        assert_eq!(policy.wait(&limited(600), backoff), Duration::from_secs(30));
        assert_eq!(
            policy.wait(&LlmError::RateLimited { retry_after: None }, backoff),
            backoff
        );
        assert_eq!(
            policy.wait(&LlmError::Connect("x".into()), Duration::from_secs(60)),
            policy.max_backoff
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_stops_after_max_attempts() {
        let policy = RetryPolicy::default();
        let waits: Vec<Duration> = policy.backoff().build().collect();
        assert_eq!(waits.len(), 2);
        assert!(waits[0] >= Duration::from_millis(500) && waits[0] <= Duration::from_secs(1));
        assert!(waits[1] >= Duration::from_secs(1) && waits[1] <= Duration::from_secs(2));
        let never = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(never.backoff().build().count(), 0);
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(LlmError::Connect("refused".into()).is_transient());
        assert!(LlmError::RateLimited { retry_after: None }.is_transient());
        for status in [500, 503, 529] {
            let error = LlmError::Status {
                status,
                message: String::new(),
            };
            assert!(error.is_transient(), "{status}");
        }
        assert!(!LlmError::Status {
            status: 400,
            message: String::new()
        }
        .is_transient());
        assert!(!LlmError::Auth {
            status: 401,
            message: String::new()
        }
        .is_transient());
        assert!(!LlmError::Cancelled.is_transient());
        assert!(!LlmError::Timeout("x").is_transient());
    }
}
