//! Decodes the SSE events of a streamed Anthropic message into [`StreamEvent`]s.
//!
//! Timing, cancellation and the end of the stream are [`crate::sse`]'s job; this module owns
//! what Anthropic's events mean: `message_start` (input tokens), content blocks that start,
//! grow by deltas and stop (a tool call is complete at its block's stop), `message_delta`
//! (stop reason, output tokens), `message_stop`, `ping` and in-stream `error`s. It must not do
//! I/O, so it is tested with strings.

use super::wire::{BlockDelta, ContentBlock, Event, WireUsage};
use crate::error::LlmError;
use crate::http::error_text;
use crate::sse::{Decode, Progress};
use crate::types::{StreamEvent, ToolCall, Usage};
use std::collections::BTreeMap;

/// The protocol state of one answer.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Open content blocks by `index`; text blocks need no state, so only tool calls are kept.
    tool_calls: BTreeMap<u32, PartialCall>,
    input_tokens: u64,
    output_tokens: u64,
    stop_reason: Option<String>,
    got_token: bool,
}

#[derive(Debug)]
struct PartialCall {
    id: String,
    name: String,
    /// `input_json_delta` fragments, concatenated.
    json: String,
    /// The `input` of `content_block_start`, used only if no fragment ever arrives.
    initial_input: serde_json::Value,
}

impl PartialCall {
    fn finish(self) -> ToolCall {
        let arguments = if !self.json.trim().is_empty() {
            self.json
        } else if self
            .initial_input
            .as_object()
            .is_some_and(|o| !o.is_empty())
        {
            self.initial_input.to_string()
        } else {
            // The engine parses arguments as JSON; a call without parameters has none.
            "{}".to_string()
        };
        ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        }
    }
}

impl Decode for Decoder {
    fn event(&mut self, kind: &str, data: &str) -> Result<Progress, LlmError> {
        let data = data.trim();
        if data.is_empty() {
            // Keep-alive events and comments carry no data.
            return Ok(Progress::default());
        }
        let event: Event = match serde_json::from_str(data) {
            Ok(event) => event,
            // An `error` event whose body has an unexpected shape is still an error.
            Err(_) if kind == "error" => return Err(LlmError::Stream(error_text(data))),
            Err(e) => {
                return Err(LlmError::Protocol(format!(
                    "unreadable {kind} event ({e}): {data}"
                )))
            }
        };
        let mut events = Vec::new();
        match event {
            Event::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.add_usage(usage);
                }
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ContentBlock::Text { text } => {
                    if !text.is_empty() {
                        self.got_token = true;
                        events.push(StreamEvent::TextDelta(text));
                    }
                }
                ContentBlock::ToolUse { id, name, input } => {
                    self.got_token = true;
                    self.tool_calls.insert(
                        index,
                        PartialCall {
                            id,
                            name,
                            json: String::new(),
                            initial_input: input,
                        },
                    );
                }
                ContentBlock::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => {
                // Any delta, thinking included, shows the model is alive: from here on the
                // idle timeout applies instead of the first-token one.
                self.got_token = true;
                match delta {
                    BlockDelta::TextDelta { text } if !text.is_empty() => {
                        events.push(StreamEvent::TextDelta(text));
                    }
                    BlockDelta::InputJsonDelta { partial_json } => {
                        match self.tool_calls.get_mut(&index) {
                            Some(call) => call.json.push_str(&partial_json),
                            None => {
                                return Err(LlmError::Protocol(format!(
                                "input_json_delta for block {index}, which is not a tool_use block"
                            )))
                            }
                        }
                    }
                    BlockDelta::TextDelta { .. } | BlockDelta::Other => {}
                }
            }
            Event::ContentBlockStop { index } => {
                if let Some(call) = self.tool_calls.remove(&index) {
                    events.push(StreamEvent::ToolCall(call.finish()));
                }
            }
            Event::MessageDelta { delta, usage } => {
                self.got_token = true;
                if let Some(reason) = delta.stop_reason {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = usage {
                    self.add_usage(usage);
                }
            }
            Event::MessageStop => return Ok(self.finish()),
            Event::Error { error } => return Err(LlmError::Stream(error.message())),
            Event::Ping | Event::Unknown => {}
        }
        Ok(Progress {
            events,
            finished: false,
        })
    }

    /// The body ended. Once the stop reason has arrived the answer is complete even if
    /// `message_stop` never does; without it the connection broke.
    fn end_of_body(&mut self) -> Result<Progress, LlmError> {
        if self.stop_reason.is_some() {
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
    /// Later counts replace earlier ones: `message_delta`'s output count is cumulative.
    /// Cached input is part of what the prompt cost, so it counts as prompt tokens.
    fn add_usage(&mut self, usage: WireUsage) {
        if usage.input_tokens.is_some()
            || usage.cache_creation_input_tokens.is_some()
            || usage.cache_read_input_tokens.is_some()
        {
            self.input_tokens = usage.input_tokens.unwrap_or_default()
                + usage.cache_creation_input_tokens.unwrap_or_default()
                + usage.cache_read_input_tokens.unwrap_or_default();
        }
        if let Some(output) = usage.output_tokens {
            self.output_tokens = output;
        }
    }

    fn finish(&mut self) -> Progress {
        self.got_token = true;
        // Blocks that never saw their stop are complete too once the message is.
        let mut events: Vec<StreamEvent> = std::mem::take(&mut self.tool_calls)
            .into_values()
            .map(|call| StreamEvent::ToolCall(call.finish()))
            .collect();
        events.push(StreamEvent::Usage(Usage {
            prompt_tokens: self.input_tokens,
            completion_tokens: self.output_tokens,
        }));
        let reason = match self.stop_reason.take().as_deref() {
            None | Some("end_turn") | Some("stop_sequence") => "stop".to_string(),
            Some("tool_use") => "tool_calls".to_string(),
            Some("max_tokens") => "length".to_string(),
            // `refusal`, `pause_turn`, …: passed on as Anthropic says it.
            Some(other) => other.to_string(),
        };
        events.push(StreamEvent::Done { reason });
        Progress {
            events,
            finished: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[(&str, &str)]) -> Result<Vec<StreamEvent>, LlmError> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        for (kind, data) in events {
            let progress = decoder.event(kind, data)?;
            out.extend(progress.events);
            if progress.finished {
                return Ok(out);
            }
        }
        out.extend(decoder.end_of_body()?.events);
        Ok(out)
    }

    const START: (&str, &str) = (
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
    );

    fn text(s: &str) -> StreamEvent {
        StreamEvent::TextDelta(s.into())
    }

    #[test]
    fn text_usage_and_done() {
        let events = run(&[
            START,
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                text("Hel"),
                text("lo"),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 25,
                    completion_tokens: 15
                }),
                StreamEvent::Done {
                    reason: "stop".into()
                },
            ]
        );
    }

    #[test]
    fn tool_use_is_assembled_from_json_fragments_at_block_stop() {
        let events = run(&[
            START,
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"run_code","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"code\": "}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"1+1\"}"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"noop","input":{}}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCall(ToolCall {
                    id: "toolu_1".into(),
                    name: "run_code".into(),
                    arguments: r#"{"code": "1+1"}"#.into(),
                }),
                StreamEvent::ToolCall(ToolCall {
                    id: "toolu_2".into(),
                    name: "noop".into(),
                    arguments: "{}".into(),
                }),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 25,
                    completion_tokens: 9
                }),
                StreamEvent::Done {
                    reason: "tool_calls".into()
                },
            ]
        );
    }

    #[test]
    fn stop_reasons_are_mapped() {
        for (anthropic, ours) in [
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("refusal", "refusal"),
        ] {
            let delta = format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{anthropic}"}},"usage":{{"output_tokens":1}}}}"#
            );
            let events = run(&[START, ("message_delta", &delta)]).unwrap();
            assert_eq!(
                events.last(),
                Some(&StreamEvent::Done {
                    reason: ours.into()
                })
            );
        }
    }

    #[test]
    fn cached_input_counts_as_prompt_tokens() {
        let events = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
            ),
        ])
        .unwrap();
        assert_eq!(
            events[0],
            StreamEvent::Usage(Usage {
                prompt_tokens: 115,
                completion_tokens: 3
            })
        );
    }

    #[test]
    fn error_event_is_a_stream_error() {
        let err = run(&[
            START,
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        ])
        .unwrap_err();
        assert!(
            matches!(&err, LlmError::Stream(m) if m == "Overloaded"),
            "{err:?}"
        );
    }

    #[test]
    fn body_ending_before_the_stop_reason_is_an_error() {
        let err = run(&[
            START,
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
            ),
        ])
        .unwrap_err();
        assert!(matches!(err, LlmError::Stream(_)), "{err:?}");
    }

    #[test]
    fn message_start_and_empty_blocks_are_not_tokens() {
        let mut decoder = Decoder::default();
        decoder.event(START.0, START.1).unwrap();
        decoder
            .event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            )
            .unwrap();
        decoder.event("ping", r#"{"type":"ping"}"#).unwrap();
        assert!(!decoder.got_token());
        decoder
            .event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            )
            .unwrap();
        assert!(decoder.got_token());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(matches!(
            run(&[("message_start", "{not json")]),
            Err(LlmError::Protocol(_))
        ));
    }
}
