//! Decodes the SSE events of a streamed chat completion into [`StreamEvent`]s.
//!
//! Timing, cancellation and the end of the stream are [`crate::sse`]'s job; this module owns
//! what OpenAI's frames mean: text deltas, tool calls that arrive in pieces, usage, the end of
//! the answer, in-stream errors. It must not do I/O, so it is tested with strings.

use super::wire::{Chunk, ToolCallDelta, WireUsage};
use crate::error::LlmError;
use crate::http::error_text;
use crate::sse::{Decode, Progress};
use crate::types::{StreamEvent, ToolCall, Usage};
use std::collections::BTreeMap;

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

impl Decode for Decoder {
    fn event(&mut self, kind: &str, data: &str) -> Result<Progress, LlmError> {
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
    fn end_of_body(&mut self) -> Result<Progress, LlmError> {
        if self.finish_reason.is_some() {
            Ok(self.finish())
        } else {
            Err(LlmError::Stream(
                "connection closed before the end of the answer".into(),
            ))
        }
    }

    fn got_token(&self) -> bool {
        self.got_token
    }
}

impl Decoder {
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
