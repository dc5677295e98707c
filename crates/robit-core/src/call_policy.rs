//! The one platform call policy both chat adapters use: draw from the shared call budget and
//! the adapter's own pacer, make the call under a request timeout, wait out a 429 a bounded
//! number of times (telling the shared budget, so other replicas hold off too), and retry an
//! idempotent call after a transient failure (5xx, dropped connection, timeout) with a short
//! growing backoff.
//!
//! It lives here, not in `robit-types`, because it sleeps and times out (tokio), and not in
//! an adapter, because a rule two adapters share lives once, below them. It must not name a
//! platform nor know a platform's numbers: each adapter passes a [`CallPolicy`] with its
//! documented limits, a [`Verdict`] function for its client's errors, and the buckets of each
//! call. It keeps no state between calls: pacing state is the adapter's [`Pace`] and the
//! store's [`CallBudget`].

use async_trait::async_trait;
use robit_types::{CallBudget, Rate, SinkError};
use std::future::Future;
use std::time::Duration;

/// A platform's numbers for one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPolicy {
    /// 429s one call waits out; the next one is handed to the caller
    /// ([`CallError::RateLimited`]), whose renderer may wait again.
    pub rate_limit_waits: u32,
    /// Retries of an idempotent call after a transient failure.
    pub transient_retries: u32,
    /// How long one attempt may take. Platform clients may have no timeout of their own, and
    /// a hung request must not hang a turn.
    pub request_timeout: Option<Duration>,
    /// Retry *n* after a transient failure waits *n* times this.
    pub retry_backoff: Duration,
    /// The wait after a 429 that names none (and has no [`Pace`] to ask).
    pub default_retry_after: Duration,
}

/// What a failed attempt means for the policy; the adapter's classifier decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A 429, with the platform's `Retry-After` when the client exposes it.
    RateLimited(Option<Duration>),
    /// A 5xx or a connection that broke: another try may work, but the first may have landed,
    /// so only idempotent calls are tried again.
    Transient,
    /// The platform refused the request; the same request would be refused again.
    Final,
}

impl Verdict {
    /// The verdict for an error already in the engine's terms (a 429's wait is unknown here:
    /// the `Duration` in [`SinkError::RateLimited`] is the adapter's stand-in, not the
    /// platform's).
    pub fn of_sink_error(e: &SinkError) -> Verdict {
        match e {
            SinkError::RateLimited(_) => Verdict::RateLimited(None),
            SinkError::Unavailable(_) => Verdict::Transient,
            SinkError::Rejected(_) | SinkError::Unsupported(_) => Verdict::Final,
        }
    }
}

/// A per-process pacer an adapter keeps in front of the platform (Discord's sliding window
/// per bucket), consulted before each attempt.
#[async_trait]
pub trait Pace: Send + Sync {
    /// Waits until one more request on `key` fits, and reserves it.
    async fn acquire(&self, key: &str);

    /// Records a 429 on `key` (`retry_after` when the platform said) and returns how long the
    /// bucket is now held off.
    fn rate_limited(&self, key: &str, retry_after: Option<Duration>) -> Duration;
}

/// One call's identity: what it may draw from and whether it may be repeated.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    label: &'a str,
    idempotent: bool,
    shared: Option<(&'a dyn CallBudget, &'a str, Rate)>,
    pace: Option<(&'a dyn Pace, &'a str)>,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("label", &self.label)
            .field("idempotent", &self.idempotent)
            .field(
                "shared",
                &self.shared.map(|(_, bucket, rate)| (bucket, rate)),
            )
            .field("pace", &self.pace.map(|(_, key)| key))
            .finish()
    }
}

impl<'a> Call<'a> {
    /// A call named `label` in the logs: not idempotent, drawing from no budget.
    pub fn new(label: &'a str) -> Self {
        Self {
            label,
            idempotent: false,
            shared: None,
            pace: None,
        }
    }

    /// Whether repeating the call cannot do twice what once would (an edit, a read, a create
    /// the platform deduplicates).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Draws from `bucket` of the budget shared with other replicas, shaped `rate`.
    pub fn shared(mut self, budget: &'a dyn CallBudget, bucket: &'a str, rate: Rate) -> Self {
        self.shared = Some((budget, bucket, rate));
        self
    }

    /// Waits on the adapter's own pacer for `key` before each attempt.
    pub fn paced(mut self, pace: &'a dyn Pace, key: &'a str) -> Self {
        self.pace = Some((pace, key));
        self
    }
}

/// Why a call gave up.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The platform's error, passed on as it came.
    #[error(transparent)]
    Failed(E),
    /// Still rate limited after the policy's waits; the bucket is held off `retry_after`.
    #[error("still rate limited, retry after {retry_after:?}")]
    RateLimited {
        #[source]
        error: E,
        retry_after: Duration,
    },
    /// No answer within the policy's request timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

impl<E> CallError<E> {
    /// The engine's terms for this failure; `platform` maps a platform error that is neither a
    /// 429 the policy gave up on nor a timeout.
    pub fn into_sink_error(self, platform: impl FnOnce(E) -> SinkError) -> SinkError {
        match self {
            CallError::Failed(e) => platform(e),
            CallError::RateLimited { retry_after, .. } => SinkError::RateLimited(retry_after),
            CallError::TimedOut(after) => {
                SinkError::Unavailable(format!("no answer within {after:?}"))
            }
        }
    }
}

impl CallPolicy {
    /// Runs `attempt` until it succeeds or the policy gives up; `verdict` reads its errors.
    pub async fn run<T, E, F, Fut>(
        &self,
        call: Call<'_>,
        verdict: impl Fn(&E) -> Verdict,
        mut attempt: F,
    ) -> Result<T, CallError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (mut waits, mut retries) = (0u32, 0u32);
        loop {
            if let Some((budget, bucket, rate)) = call.shared {
                budget.acquire(bucket, rate).await;
            }
            if let Some((pace, key)) = call.pace {
                pace.acquire(key).await;
            }
            let outcome = match self.request_timeout {
                Some(limit) => tokio::time::timeout(limit, attempt())
                    .await
                    .map_err(|_| limit),
                None => Ok(attempt().await),
            };
            let (error, kind) = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => {
                    let kind = verdict(&e);
                    (CallError::Failed(e), kind)
                }
                Err(limit) => (CallError::TimedOut(limit), Verdict::Transient),
            };
            match (kind, error) {
                (Verdict::RateLimited(hint), CallError::Failed(error)) => {
                    let pause = match call.pace {
                        Some((pace, key)) => pace.rate_limited(key, hint),
                        None => hint.unwrap_or(self.default_retry_after),
                    };
                    if let Some((budget, bucket, rate)) = call.shared {
                        budget.rate_limited(bucket, rate, pause).await;
                    }
                    waits += 1;
                    if waits > self.rate_limit_waits {
                        return Err(CallError::RateLimited {
                            error,
                            retry_after: pause,
                        });
                    }
                    tracing::debug!(call = call.label, ?pause, waits, "rate limited, waiting");
                    // Sleeping here, not only through the budget: the shared budget fails
                    // open when the database is away.
                    tokio::time::sleep(pause).await;
                }
                (Verdict::Transient, error)
                    if call.idempotent && retries < self.transient_retries =>
                {
                    retries += 1;
                    let timed_out = matches!(error, CallError::TimedOut(_));
                    tracing::debug!(
                        call = call.label,
                        retries,
                        timed_out,
                        "transient failure, retrying"
                    );
                    tokio::time::sleep(self.retry_backoff * retries).await;
                }
                (_, error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use tokio::time::Instant;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Answer {
        Ok,
        TooMany(Option<u64>),
        ServerError,
        Refused,
        Hang,
    }

    #[derive(Debug, PartialEq, Eq)]
    enum PlatformError {
        TooMany(Option<u64>),
        ServerError,
        Refused,
    }

    fn verdict(e: &PlatformError) -> Verdict {
        match e {
            PlatformError::TooMany(s) => Verdict::RateLimited(s.map(Duration::from_secs)),
            PlatformError::ServerError => Verdict::Transient,
            PlatformError::Refused => Verdict::Final,
        }
    }

    /// A platform that answers from a script, one answer per attempt, and counts attempts.
    struct Platform {
        script: Mutex<VecDeque<Answer>>,
        attempts: Mutex<u32>,
    }

    impl Platform {
        fn new(script: &[Answer]) -> Self {
            Self {
                script: Mutex::new(script.iter().copied().collect()),
                attempts: Mutex::new(0),
            }
        }

        async fn call(&self) -> Result<&'static str, PlatformError> {
            *self.attempts.lock().unwrap() += 1;
            let next = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Ok);
            match next {
                Answer::Ok => Ok("done"),
                Answer::TooMany(s) => Err(PlatformError::TooMany(s)),
                Answer::ServerError => Err(PlatformError::ServerError),
                Answer::Refused => Err(PlatformError::Refused),
                Answer::Hang => std::future::pending().await,
            }
        }

        fn attempts(&self) -> u32 {
            *self.attempts.lock().unwrap()
        }
    }

    /// Records what the policy tells the shared budget.
    #[derive(Default)]
    struct Budget {
        acquired: Mutex<Vec<String>>,
        limited: Mutex<Vec<(String, Duration)>>,
    }

    #[async_trait]
    impl CallBudget for Budget {
        async fn acquire(&self, bucket: &str, _rate: Rate) {
            self.acquired.lock().unwrap().push(bucket.to_string());
        }

        async fn rate_limited(&self, bucket: &str, _rate: Rate, retry_after: Duration) {
            self.limited
                .lock()
                .unwrap()
                .push((bucket.to_string(), retry_after));
        }
    }

    /// A pacer that holds a bucket off for a fixed pause after a 429, as Discord's does.
    struct FixedPause(Duration, Mutex<Option<Instant>>);

    #[async_trait]
    impl Pace for FixedPause {
        async fn acquire(&self, _key: &str) {
            let until = *self.1.lock().unwrap();
            if let Some(until) = until {
                tokio::time::sleep_until(until).await;
            }
        }

        fn rate_limited(&self, _key: &str, _retry_after: Option<Duration>) -> Duration {
            *self.1.lock().unwrap() = Some(Instant::now() + self.0);
            self.0
        }
    }

    fn policy() -> CallPolicy {
        CallPolicy {
            rate_limit_waits: 3,
            transient_retries: 2,
            request_timeout: Some(Duration::from_secs(20)),
            retry_backoff: Duration::from_millis(250),
            default_retry_after: Duration::from_secs(1),
        }
    }

    const RATE: Rate = Rate {
        burst: 1.0,
        per_second: 1.0,
    };

    #[tokio::test(start_paused = true)]
    async fn a_429_is_waited_out_up_to_the_limit_for_as_long_as_it_asks() {
        let p = Platform::new(&[
            Answer::TooMany(Some(2)),
            Answer::TooMany(None),
            Answer::TooMany(Some(3)),
        ]);
        let budget = Budget::default();
        let start = Instant::now();
        let got = policy()
            .run(
                Call::new("post").shared(&budget, "b", RATE),
                verdict,
                || p.call(),
            )
            .await;
        assert_eq!(got.unwrap(), "done");
        assert_eq!(p.attempts(), 4);
        // Retry-After 2 s, then the default 1 s, then 3 s.
        assert_eq!(Instant::now() - start, Duration::from_secs(6));
        assert_eq!(budget.acquired.lock().unwrap().len(), 4);
        assert_eq!(
            *budget.limited.lock().unwrap(),
            vec![
                ("b".to_string(), Duration::from_secs(2)),
                ("b".to_string(), Duration::from_secs(1)),
                ("b".to_string(), Duration::from_secs(3)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_429_past_the_limit_is_handed_back_with_its_wait_and_reported() {
        let p = Platform::new(&[Answer::TooMany(Some(5)); 4]);
        let budget = Budget::default();
        let err = policy()
            .run(
                Call::new("post").shared(&budget, "b", RATE),
                verdict,
                || p.call(),
            )
            .await
            .unwrap_err();
        assert_eq!(p.attempts(), 4);
        match err {
            CallError::RateLimited { error, retry_after } => {
                assert_eq!(error, PlatformError::TooMany(Some(5)));
                assert_eq!(retry_after, Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        // The last 429 is shared too: other replicas hold off even though this call gave up.
        assert_eq!(budget.limited.lock().unwrap().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pacer_decides_the_pause_of_a_429() {
        let p = Platform::new(&[Answer::TooMany(None), Answer::TooMany(None)]);
        let pace = FixedPause(Duration::from_millis(1500), Mutex::new(None));
        let start = Instant::now();
        let err = CallPolicy {
            rate_limit_waits: 1,
            ..policy()
        }
        .run(Call::new("edit").paced(&pace, "ch:1"), verdict, || p.call())
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            CallError::RateLimited { retry_after, .. } if retry_after == Duration::from_millis(1500)
        ));
        assert_eq!(Instant::now() - start, Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_error_is_retried_only_when_the_call_is_idempotent() {
        let script = [Answer::ServerError, Answer::ServerError];

        let once = Platform::new(&script);
        let err = policy()
            .run(Call::new("create"), verdict, || once.call())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Failed(PlatformError::ServerError)));
        assert_eq!(once.attempts(), 1);

        let again = Platform::new(&script);
        let start = Instant::now();
        let got = policy()
            .run(Call::new("edit").idempotent(true), verdict, || again.call())
            .await;
        assert_eq!(got.unwrap(), "done");
        assert_eq!(again.attempts(), 3);
        // Backoff grows: 250 ms, then 500 ms.
        assert_eq!(Instant::now() - start, Duration::from_millis(750));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_retries_are_bounded_and_a_refusal_is_never_retried() {
        let p = Platform::new(&[Answer::ServerError; 5]);
        let err = policy()
            .run(Call::new("edit").idempotent(true), verdict, || p.call())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Failed(PlatformError::ServerError)));
        assert_eq!(p.attempts(), 3);

        let p = Platform::new(&[Answer::Refused]);
        let err = policy()
            .run(Call::new("edit").idempotent(true), verdict, || p.call())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Failed(PlatformError::Refused)));
        assert_eq!(p.attempts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_times_out_and_only_an_idempotent_one_is_tried_again() {
        let p = Platform::new(&[Answer::Hang]);
        let start = Instant::now();
        let err = policy()
            .run(Call::new("create"), verdict, || p.call())
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::TimedOut(d) if d == Duration::from_secs(20)));
        assert_eq!(Instant::now() - start, Duration::from_secs(20));
        assert_eq!(p.attempts(), 1);
        let err = err.into_sink_error(|_| unreachable!("a timeout is not a platform error"));
        assert!(
            matches!(&err, SinkError::Unavailable(m) if m == "no answer within 20s"),
            "{err:?}"
        );

        let p = Platform::new(&[Answer::Hang]);
        let got = policy()
            .run(Call::new("edit").idempotent(true), verdict, || p.call())
            .await;
        assert_eq!(got.unwrap(), "done");
        assert_eq!(p.attempts(), 2);
    }

    #[test]
    fn sink_errors_map_to_verdicts_and_back() {
        assert_eq!(
            Verdict::of_sink_error(&SinkError::RateLimited(Duration::from_secs(1))),
            Verdict::RateLimited(None)
        );
        assert_eq!(
            Verdict::of_sink_error(&SinkError::Unavailable("x".into())),
            Verdict::Transient
        );
        assert_eq!(
            Verdict::of_sink_error(&SinkError::Rejected("x".into())),
            Verdict::Final
        );
        let limited: CallError<SinkError> = CallError::RateLimited {
            error: SinkError::RateLimited(Duration::from_secs(1)),
            retry_after: Duration::from_secs(4),
        };
        assert!(matches!(
            limited.into_sink_error(|e| e),
            SinkError::RateLimited(d) if d == Duration::from_secs(4)
        ));
    }
}
