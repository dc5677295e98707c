//! The streaming renderer: turns a growing reply into posts and edits on a [`ReplySink`].
//!
//! It owns the policy every platform shares: the first text is posted at once (time to first
//! reply matters most), later text is coalesced into edits no faster than the platform's
//! minimum edit interval, a reply longer than a message continues in new messages without
//! breaking code fences, and mentions are made inert. Where the sink can show buttons, the
//! last message of the reply carries the answer's controls (Stop while it streams, the votes
//! once done) and earlier parts lose them. It must not know which platform it writes to;
//! everything it needs is in [`Capabilities`].

mod sanitize;
mod split;

pub use sanitize::neutralize_mentions;
pub use split::{is_fence_line, split, split_message, Chunk, MIN_LIMIT};

use crate::metrics as m;
use robit_types::{AnswerControls, Capabilities, MessageRef, Platform, ReplySink, SinkError};
use std::sync::Arc;
use tokio::time::Instant;

/// Waits until `at`; a moment already past returns at once. tokio's timer rounds a deadline up
/// to its next millisecond tick, so sleeping until "now" cost up to a millisecond, most of the
/// time between an instant model's answer and its first post (`robit bench engine`).
pub async fn wait_until(at: Instant) {
    if at > Instant::now() {
        tokio::time::sleep_until(at).await;
    }
}

/// How many times one flush retries a rate-limited call before giving up on the reply.
const MAX_RATE_LIMIT_WAITS: u32 = 8;

pub struct StreamRenderer {
    sink: Arc<dyn ReplySink>,
    platform: Platform,
    caps: Capabilities,
    text: String,
    /// Messages posted so far, with the text and the buttons each one shows now.
    posted: Vec<(MessageRef, String, AnswerControls)>,
    /// The buttons the reply's last message should show.
    controls: AnswerControls,
    last_flush: Option<Instant>,
    dirty: bool,
    /// When the event being answered arrived, to measure time to first reply.
    received_at: Option<std::time::SystemTime>,
}

impl StreamRenderer {
    pub fn new(sink: Arc<dyn ReplySink>, platform: Platform) -> Self {
        let caps = sink.capabilities();
        Self {
            sink,
            platform,
            caps,
            text: String::new(),
            posted: Vec::new(),
            controls: AnswerControls::None,
            last_flush: None,
            dirty: false,
            received_at: None,
        }
    }

    /// Records time to first reply, from `received_at`, when the first message is posted.
    pub fn measure_first_reply_from(mut self, received_at: std::time::SystemTime) -> Self {
        self.received_at = Some(received_at);
        self
    }

    /// Adds text to the reply; nothing is sent until a flush.
    pub fn push(&mut self, delta: &str) {
        if !delta.is_empty() {
            self.text.push_str(delta);
            self.dirty = true;
        }
    }

    /// Sets the buttons of the reply's last message (where the sink can show buttons); they
    /// are drawn at the next flush. Nothing is posted for buttons alone.
    pub fn set_controls(&mut self, controls: AnswerControls) {
        if !self.caps.controls || controls == self.controls {
            return;
        }
        self.controls = controls;
        if !self.posted.is_empty() {
            self.dirty = true;
        }
    }

    /// The reply's text so far, as the model wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether anything has been shown to the user.
    pub fn has_posted(&self) -> bool {
        !self.posted.is_empty()
    }

    /// When the next flush may happen, if there is something to flush. `None`: nothing pending.
    pub fn next_flush_at(&self) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        Some(match self.last_flush {
            // Nothing posted yet: show the first text at once.
            None => Instant::now(),
            Some(t) => t + self.caps.min_edit_interval,
        })
    }

    /// Flushes if the pacing allows it now.
    pub async fn flush_if_due(&mut self) -> Result<(), SinkError> {
        match self.next_flush_at() {
            Some(at) if at <= Instant::now() => self.flush().await,
            _ => Ok(()),
        }
    }

    /// Sends what is pending once the pacing allows, and returns when the user sees the whole
    /// text. `note` is appended (as its own paragraph) first, for error and status notes.
    pub async fn finish(&mut self, note: Option<&str>) -> Result<(), SinkError> {
        if let Some(note) = note {
            if !self.text.is_empty() && !self.text.ends_with('\n') {
                self.text.push('\n');
            }
            if !self.text.is_empty() {
                self.text.push('\n');
            }
            self.text.push_str(note);
            self.dirty = true;
        }
        if let Some(at) = self.next_flush_at() {
            // The last edit is the one the user waits for. A sink that paces its own calls
            // sends it as soon as the platform's budget has room; otherwise the interval is
            // the only thing between us and a 429.
            if !self.caps.paced {
                wait_until(at).await;
            }
            self.flush().await?;
        }
        // A message posted by that flush shows no buttons yet (a post carries text only):
        // they take one more edit.
        if self.dirty {
            if !self.caps.paced {
                if let Some(at) = self.next_flush_at() {
                    wait_until(at).await;
                }
            }
            self.flush().await?;
        }
        Ok(())
    }

    /// Brings the platform's messages in line with the text: edits messages whose text
    /// changed and posts new ones past the length limit.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        let shown = neutralize_mentions(&self.text);
        let parts = if shown.trim().is_empty() {
            // Platforms refuse empty messages; a placeholder keeps the reply editable.
            vec!["…".to_string()]
        } else {
            split_message(&shown, self.caps.max_message_len)
        };
        let last = parts.len() - 1;
        // Buttons drawn on a message that got one later lose them there.
        let want: Vec<AnswerControls> = (0..parts.len())
            .map(|i| {
                if i == last {
                    self.controls
                } else {
                    AnswerControls::None
                }
            })
            .collect();
        let mut pending_controls = false;
        for (i, part) in parts.into_iter().enumerate() {
            if let Some((msg, current, shown)) = self.posted.get(i) {
                let controls = want[i];
                if *current != part || *shown != controls {
                    let msg = msg.clone();
                    if self.caps.controls {
                        self.call("edit", |sink| {
                            let (msg, part) = (msg.clone(), part.clone());
                            async move { sink.edit_controls(&msg, &part, &controls).await }
                        })
                        .await?;
                    } else {
                        self.call("edit", |sink| {
                            let (msg, part) = (msg.clone(), part.clone());
                            async move { sink.edit(&msg, &part).await }
                        })
                        .await?;
                    }
                    self.posted[i].1 = part;
                    self.posted[i].2 = controls;
                }
            } else {
                let msg = self
                    .call("post", |sink| {
                        let part = part.clone();
                        async move { sink.post(&part).await }
                    })
                    .await?;
                if self.posted.is_empty() {
                    if let Some(at) = self.received_at.take() {
                        let waited = at.elapsed().unwrap_or_default();
                        metrics::histogram!(m::FIRST_REPLY_SECONDS, "platform" => self.platform.as_str())
                            .record(waited.as_secs_f64());
                    }
                }
                pending_controls |= want[i] != AnswerControls::None;
                self.posted.push((msg, part, AnswerControls::None));
            }
        }
        self.last_flush = Some(Instant::now());
        self.dirty = pending_controls;
        Ok(())
    }

    /// One sink call, counted in the metrics, waiting out rate limits the sink could not
    /// absorb itself.
    async fn call<T, F, Fut>(&self, name: &'static str, f: F) -> Result<T, SinkError>
    where
        F: Fn(Arc<dyn ReplySink>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SinkError>>,
    {
        let platform = self.platform.as_str();
        wait_out_rate_limits(|| {
            metrics::counter!(m::PLATFORM_CALLS, "platform" => platform, "call" => name)
                .increment(1);
            let attempt = f(self.sink.clone());
            async move {
                let result = attempt.await;
                if matches!(result, Err(SinkError::RateLimited(_))) {
                    metrics::counter!(m::PLATFORM_RATE_LIMITED, "platform" => platform)
                        .increment(1);
                }
                result
            }
        })
        .await
    }
}

/// Runs `attempt` again after each rate limit the platform reports, waiting as told, up to
/// [`MAX_RATE_LIMIT_WAITS`] times; any other result is returned as is.
pub(crate) async fn wait_out_rate_limits<T, F, Fut>(mut attempt: F) -> Result<T, SinkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    let mut waits = 0;
    loop {
        match attempt().await {
            Err(SinkError::RateLimited(after)) if waits < MAX_RATE_LIMIT_WAITS => {
                waits += 1;
                tracing::debug!(?after, "platform rate limit, waiting");
                tokio::time::sleep(after).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Records when each call reached the sink, on tokio's (paused) clock.
    struct TimedSink {
        caps: Capabilities,
        calls: Mutex<Vec<(&'static str, String, Instant)>>,
    }

    impl TimedSink {
        fn new(paced: bool) -> Arc<Self> {
            Arc::new(Self {
                caps: Capabilities {
                    min_edit_interval: Duration::from_secs(1),
                    paced,
                    ..Capabilities::default()
                },
                calls: Mutex::new(Vec::new()),
            })
        }
    }

    #[async_trait]
    impl ReplySink for TimedSink {
        fn capabilities(&self) -> Capabilities {
            self.caps.clone()
        }
        async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(("post", text.to_string(), Instant::now()));
            Ok(MessageRef(calls.len().to_string()))
        }
        async fn edit(&self, _msg: &MessageRef, text: &str) -> Result<(), SinkError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(("edit", text.to_string(), Instant::now()));
            Ok(())
        }
    }

    /// Streams "Hello" (shown at once), then " world" 200 ms later, and finishes: returns
    /// how long after the stream's end the final edit reached the sink.
    async fn final_edit_delay(sink: Arc<TimedSink>) -> Duration {
        let mut renderer = StreamRenderer::new(sink.clone(), Platform::Discord);
        renderer.push("Hello");
        renderer.flush_if_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        renderer.push(" world");
        renderer.flush_if_due().await.unwrap();
        let ended = Instant::now();
        renderer.finish(None).await.unwrap();
        let calls = sink.calls.lock().unwrap();
        let kinds: Vec<_> = calls.iter().map(|(k, t, _)| (*k, t.as_str())).collect();
        assert_eq!(kinds, [("post", "Hello"), ("edit", "Hello world")]);
        calls[1].2 - ended
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_sink_gets_the_final_edit_when_the_stream_ends() {
        assert_eq!(final_edit_delay(TimedSink::new(true)).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unpaced_sink_gets_the_final_edit_after_the_edit_interval() {
        // Posted at 0 ms, stream ended at 200 ms: the interval allows the edit at 1,000 ms.
        assert_eq!(
            final_edit_delay(TimedSink::new(false)).await,
            Duration::from_millis(800)
        );
    }

    /// Off tokio's millisecond grid, where a sleep until "now" would wait for the next tick.
    async fn between_ticks() {
        tokio::time::advance(Duration::from_micros(300)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_until_a_moment_already_here_takes_no_time() {
        between_ticks().await;
        let now = Instant::now();
        wait_until(now).await;
        assert_eq!(Instant::now(), now);
        wait_until(now + Duration::from_millis(5)).await;
        assert!(Instant::now() >= now + Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_ends_before_anything_was_shown_is_posted_at_once() {
        between_ticks().await;
        let sink = TimedSink::new(false);
        let mut renderer = StreamRenderer::new(sink.clone(), Platform::Discord);
        renderer.push("Hello");
        let ended = Instant::now();
        renderer.finish(None).await.unwrap();
        let calls = sink.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].0, calls[0].1.as_str()), ("post", "Hello"));
        assert_eq!(calls[0].2, ended);
    }
}
