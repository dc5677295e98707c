//! Turns the SSE body of a streamed chat completion into [`StreamEvent`]s.
//!
//! SSE framing is eventsource-stream's job; this module owns what the frames mean: text deltas,
//! tool calls that arrive in pieces, usage, the end of the answer, in-stream errors, the
//! first-token and idle timeouts, and cancellation. It must not retry or reconnect: a broken
//! stream is reported and the caller decides.

use super::wire::{Chunk, ToolCallDelta, WireUsage};
use crate::error::LlmError;
use crate::types::{ChatStream, StreamEvent, ToolCall, Usage};
use eventsource_stream::{EventStreamError, Eventsource};
use futures::stream::{BoxStream, StreamExt};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Labels for [`LlmError::Timeout`]; the engine shows them to users, so they stay short.
pub(crate) const FIRST_TOKEN_TIMEOUT: &str = "waiting for the first token";
pub(crate) const IDLE_TIMEOUT: &str = "waiting for the next token";

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

/// Wraps a successful (2xx) response in a [`ChatStream`].
pub(crate) fn chat_stream(
    response: reqwest::Response,
    deadlines: Deadlines,
    cancel: CancellationToken,
) -> ChatStream {
    let state = State {
        source: Some(response.bytes_stream().eventsource().boxed()),
        decoder: Decoder::default(),
        pending: VecDeque::new(),
        deadlines,
        got_first_token: false,
        cancel,
    };
    futures::stream::unfold(state, State::next).boxed()
}

struct State {
    /// `None` once the stream is over; dropping it closes the HTTP connection, which is how
    /// cancellation and errors stop the provider from generating more.
    source: Option<SseStream>,
    decoder: Decoder,
    pending: VecDeque<StreamEvent>,
    deadlines: Deadlines,
    got_first_token: bool,
    cancel: CancellationToken,
}

impl State {
    async fn next(mut self) -> Option<(Result<StreamEvent, LlmError>, State)> {
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
                // Silence after the finish reason only costs us the usage chunk: the answer
                // itself is complete, so it ends as if the body had.
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
                    self.got_first_token |= self.decoder.got_token;
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
    fn fail(mut self, error: LlmError) -> Option<(Result<StreamEvent, LlmError>, State)> {
        self.source = None;
        self.pending.clear();
        Some((Err(error), self))
    }
}

fn sse_error(e: EventStreamError<reqwest::Error>) -> LlmError {
    match e {
        EventStreamError::Transport(e) => LlmError::Stream(super::error_chain(&e)),
        EventStreamError::Utf8(e) => LlmError::Protocol(format!("stream is not utf-8: {e}")),
        EventStreamError::Parser(e) => LlmError::Protocol(format!("malformed event stream: {e}")),
    }
}

/// What one SSE event produced.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Progress {
    pub events: Vec<StreamEvent>,
    /// The answer is complete; nothing more will be read.
    pub finished: bool,
}

/// The protocol state of one answer, apart from any I/O so it can be tested with strings.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    tool_calls: ToolCallAssembler,
    usage: Option<WireUsage>,
    finish_reason: Option<String>,
    /// Whether a text or tool-call token (or the end) has arrived; until then the first-token
    /// timeout applies. An initial `{"role":"assistant"}` chunk does not count, because
    /// servers send it at once and then think for a long time.
    pub got_token: bool,
    emitted_tool_calls: bool,
}

impl Decoder {
    pub fn event(&mut self, kind: &str, data: &str) -> Result<Progress, LlmError> {
        let data = data.trim();
        if kind == "error" {
            // Some compatible servers use a named SSE event for errors instead of a chunk.
            return Err(LlmError::Stream(error_text(data)));
        }
        if data == "[DONE]" {
            return Ok(self.finish());
        }
        if data.is_empty() {
            // Keep-alive events and comments carry no data.
            return Ok(Progress::default());
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| LlmError::Protocol(format!("unreadable chunk ({e}): {data}")))?;
        if let Some(error) = chunk.error {
            return Err(LlmError::Stream(error.message()));
        }
        let mut events = Vec::new();
        if let Some(usage) = chunk.usage {
            // Some servers repeat (growing) usage on every chunk: the last one wins and is
            // reported once, just before `Done`.
            self.usage = Some(usage);
        }
        // Robit asks for one choice; if a server sends more, only the first is the answer.
        if let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                self.got_token = true;
                events.push(StreamEvent::TextDelta(text));
            }
            if !choice.delta.tool_calls.is_empty() {
                self.got_token = true;
                for piece in choice.delta.tool_calls {
                    self.tool_calls.push(piece);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.got_token = true;
                // The calls are complete once the model says why it stopped; usage may
                // still follow in a chunk of its own.
                events.extend(self.take_tool_calls());
                self.finish_reason = Some(reason);
            }
        }
        Ok(Progress {
            events,
            finished: false,
        })
    }

    /// The body ended. Servers that omit `[DONE]` still send a finish reason, so that is
    /// enough to call the answer complete; without either the connection broke.
    pub fn end_of_body(&mut self) -> Result<Progress, LlmError> {
        if self.finish_reason.is_some() {
            Ok(self.finish())
        } else {
            Err(LlmError::Stream(
                "connection closed before the end of the answer".into(),
            ))
        }
    }

    fn finish(&mut self) -> Progress {
        self.got_token = true;
        let mut events = self.take_tool_calls();
        if let Some(usage) = self.usage.take() {
            events.push(StreamEvent::Usage(Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            }));
        }
        let reason = self.finish_reason.take().unwrap_or_else(|| {
            // `[DONE]` without a finish reason: say what the answer evidently was.
            if self.emitted_tool_calls {
                "tool_calls".into()
            } else {
                "stop".into()
            }
        });
        events.push(StreamEvent::Done { reason });
        Progress {
            events,
            finished: true,
        }
    }

    fn take_tool_calls(&mut self) -> Vec<StreamEvent> {
        let calls = self.tool_calls.take();
        self.emitted_tool_calls |= !calls.is_empty();
        calls.into_iter().map(StreamEvent::ToolCall).collect()
    }
}

fn error_text(data: &str) -> String {
    match serde_json::from_str::<super::wire::ErrorBody>(data) {
        Ok(body) => match (body.error, body.message) {
            (Some(error), _) => error.message(),
            (None, Some(message)) => message,
            (None, None) => data.to_string(),
        },
        Err(_) => data.to_string(),
    }
}

/// Collects tool-call pieces by their `index` until the calls are complete.
#[derive(Debug, Default)]
pub(crate) struct ToolCallAssembler {
    calls: BTreeMap<u32, PartialCall>,
    /// The slot the last piece went to, for servers that omit `index`.
    last: Option<u32>,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl ToolCallAssembler {
    pub fn push(&mut self, piece: ToolCallDelta) {
        let slot = match piece.index {
            Some(index) => index,
            // Without an index (some compatible servers send each call whole, unindexed):
            // a new id starts a new call, anything else continues the last one.
            None => match (&piece.id, self.last) {
                (Some(id), Some(last)) if self.calls.get(&last).is_some_and(|c| &c.id == id) => {
                    last
                }
                (None, Some(last)) => last,
                _ => self.calls.keys().next_back().map_or(0, |k| k + 1),
            },
        };
        self.last = Some(slot);
        let call = self.calls.entry(slot).or_default();
        if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
            if call.id.is_empty() {
                call.id = id;
            }
        }
        if let Some(function) = piece.function {
            if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                if call.name.is_empty() {
                    call.name = name;
                }
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }

    /// The complete calls in index order; the assembler is empty afterwards.
    pub fn take(&mut self) -> Vec<ToolCall> {
        self.last = None;
        std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(index, call)| ToolCall {
                // The id is echoed back with the tool's result; a server that sends none
                // (some local ones) still needs one that is unique within the answer.
                id: if call.id.is_empty() {
                    format!("call_{index}")
                } else {
                    call.id
                },
                name: call.name,
                // A call without parameters may come with no argument text at all; the
                // engine parses arguments as JSON, so that is the empty object.
                arguments: if call.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    call.arguments
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[&str]) -> Result<Vec<StreamEvent>, LlmError> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        for data in events {
            let progress = decoder.event("", data)?;
            out.extend(progress.events);
            if progress.finished {
                return Ok(out);
            }
        }
        out.extend(decoder.end_of_body()?.events);
        Ok(out)
    }

    fn text(s: &str) -> StreamEvent {
        StreamEvent::TextDelta(s.into())
    }

    #[test]
    fn text_then_usage_then_done() {
        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                text("Hel"),
                text("lo"),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2
                }),
                StreamEvent::Done {
                    reason: "stop".into()
                },
            ]
        );
    }

    #[test]
    fn tool_calls_split_by_index_are_assembled_in_order() {
        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"run_code","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"code\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"other","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"1+1\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCall(ToolCall {
                    id: "call_a".into(),
                    name: "run_code".into(),
                    arguments: r#"{"code":"1+1"}"#.into(),
                }),
                StreamEvent::ToolCall(ToolCall {
                    id: "call_b".into(),
                    name: "other".into(),
                    arguments: "{}".into(),
                }),
                StreamEvent::Done {
                    reason: "tool_calls".into()
                },
            ]
        );
    }

    #[test]
    fn unindexed_whole_tool_calls_get_their_own_slots_and_ids() {
        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"a","arguments":"{\"x\":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b1","function":{"name":"b"}}]}}]}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCall(ToolCall {
                    id: "call_0".into(),
                    name: "a".into(),
                    arguments: r#"{"x":1}"#.into(),
                }),
                StreamEvent::ToolCall(ToolCall {
                    id: "b1".into(),
                    name: "b".into(),
                    arguments: "{}".into(),
                }),
                StreamEvent::Done {
                    reason: "tool_calls".into()
                },
            ]
        );
    }

    #[test]
    fn finish_reason_without_done_still_completes() {
        let events = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"length"}]}"#,
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                text("hi"),
                StreamEvent::Done {
                    reason: "length".into()
                }
            ]
        );
    }

    #[test]
    fn body_ending_without_finish_or_done_is_an_error() {
        let err = run(&[r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#]).unwrap_err();
        assert!(
            matches!(&err, LlmError::Stream(m) if m == "connection closed before the end of the answer"),
            "{err:?}"
        );
    }

    #[test]
    fn error_chunk_is_a_stream_error() {
        let err = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
            r#"{"error":{"message":"the model crashed","type":"server_error"}}"#,
        ])
        .unwrap_err();
        assert!(
            matches!(&err, LlmError::Stream(m) if m == "the model crashed"),
            "{err:?}"
        );
    }

    #[test]
    fn role_only_chunk_is_not_a_token() {
        let mut decoder = Decoder::default();
        decoder
            .event(
                "",
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            )
            .unwrap();
        assert!(!decoder.got_token);
        decoder
            .event("", r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#)
            .unwrap();
        assert!(decoder.got_token);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(matches!(run(&["{not json"]), Err(LlmError::Protocol(_))));
    }
}
