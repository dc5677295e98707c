//! Drives a streamed (SSE) answer of any provider: reads events, enforces the first-token
//! and idle timeouts, stops on cancellation, and hands each event to the provider's
//! [`Decode`]r, which says what it means.
//!
//! SSE framing is eventsource-stream's job and the meaning of events is each provider's; this
//! module owns only the timing and the end of the stream. It must not retry or reconnect: a
//! broken stream is reported and the caller decides.

use crate::error::LlmError;
use crate::http::{error_chain, FIRST_TOKEN_TIMEOUT, IDLE_TIMEOUT};
use crate::types::{ChatStream, StreamEvent};
use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::{BoxStream, StreamExt};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type SseStream =
    BoxStream<'static, Result<eventsource_stream::Event, EventStreamError<reqwest::Error>>>;

/// Where the deadlines of a stream come from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// Until the first token: measured from when the request was sent, so time spent waiting
    /// for the response headers counts too.
    pub first_token: Instant,
    pub idle: Duration,
}

/// What one SSE event produced.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Progress {
    pub events: Vec<StreamEvent>,
    /// The answer is complete; nothing more will be read.
    pub finished: bool,
}

/// The protocol state of one answer, apart from any I/O so it can be tested with strings.
pub(crate) trait Decode: Send + 'static {
    /// One SSE event: its `event:` name (empty when absent) and its `data:` text.
    fn event(&mut self, kind: &str, data: &str) -> Result<Progress, LlmError>;

    /// The body ended (or went silent): finish the answer if it is complete, else report the
    /// break.
    fn end_of_body(&mut self) -> Result<Progress, LlmError>;

    /// Whether a token (or the end) has arrived; until then the first-token timeout applies.
    fn got_token(&self) -> bool;
}

/// Wraps a successful (2xx) response in a [`ChatStream`] decoded by `decoder`.
pub(crate) fn chat_stream<D: Decode>(
    response: reqwest::Response,
    decoder: D,
    deadlines: Deadlines,
    cancel: CancellationToken,
) -> ChatStream {
    let state = State {
        source: Some(response.bytes_stream().eventsource().boxed()),
        decoder,
        pending: VecDeque::new(),
        deadlines,
        got_first_token: false,
        cancel,
    };
    futures::stream::unfold(state, State::next).boxed()
}

struct State<D> {
    /// `None` once the stream is over; dropping it closes the HTTP connection, which is how
    /// cancellation and errors stop the provider from generating more.
    source: Option<SseStream>,
    decoder: D,
    pending: VecDeque<StreamEvent>,
    deadlines: Deadlines,
    got_first_token: bool,
    cancel: CancellationToken,
}

impl<D: Decode> State<D> {
    async fn next(mut self) -> Option<(Result<StreamEvent, LlmError>, State<D>)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            let source = self.source.as_mut()?;
            let (deadline, label) = if self.got_first_token {
                (Instant::now() + self.deadlines.idle, IDLE_TIMEOUT)
            } else {
                (self.deadlines.first_token, FIRST_TOKEN_TIMEOUT)
            };
            let item = tokio::select! {
                // Cancellation wins over data that is already buffered: once the caller has
                // cancelled, nothing more should reach it.
                biased;
                () = self.cancel.cancelled() => return self.fail(LlmError::Cancelled),
                item = tokio::time::timeout_at(deadline, source.next()) => item,
            };
            let outcome = match item {
                // Silence after the finish reason only costs us the usage that may follow:
                // the answer itself is complete, so it ends as if the body had.
                Err(_elapsed) => self
                    .decoder
                    .end_of_body()
                    .map_err(|_| LlmError::Timeout(label)),
                Ok(None) => self.decoder.end_of_body(),
                Ok(Some(Err(e))) => Err(sse_error(e)),
                Ok(Some(Ok(event))) => self.decoder.event(&event.event, &event.data),
            };
            match outcome {
                Ok(Progress { events, finished }) => {
                    self.got_first_token |= self.decoder.got_token();
                    self.pending.extend(events);
                    if finished {
                        self.source = None;
                    }
                }
                Err(e) => return self.fail(e),
            }
        }
    }

    /// Ends the stream with `error`: the connection is dropped and the next poll yields `None`.
    fn fail(mut self, error: LlmError) -> Option<(Result<StreamEvent, LlmError>, State<D>)> {
        self.source = None;
        self.pending.clear();
        Some((Err(error), self))
    }
}

fn sse_error(e: EventStreamError<reqwest::Error>) -> LlmError {
    match e {
        EventStreamError::Transport(e) => LlmError::Stream(error_chain(&e)),
        EventStreamError::Utf8(e) => LlmError::Protocol(format!("stream is not utf-8: {e}")),
        EventStreamError::Parser(e) => LlmError::Protocol(format!("malformed event stream: {e}")),
    }
}
