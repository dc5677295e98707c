//! Renders a [`Reply`] as the bytes of an Anthropic streamed message.
//!
//! The frames match the real API: `event: <name>\ndata: <json>\n\n` for `message_start`
//! (message `id`, `model`, `usage.input_tokens`), a `ping`, then for each content block
//! `content_block_start`, `content_block_delta`s (`text_delta`, or `input_json_delta` whose
//! `partial_json` fragments concatenate to the tool input) and `content_block_stop`, all with
//! the block's `index`, then `message_delta` (`stop_reason`, `usage.output_tokens`) and
//! `message_stop`. Playing the steps (delays, stalls, broken connections) is shared with the
//! OpenAI fake; nothing here touches the network.

use crate::llm::reply::{split, Kind, Reply};
use crate::llm::sse::{word_count, Step, ARGUMENT_FRAGMENT, FLUSH_PAUSE};
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;

/// What the request asked for, as far as the answer's shape depends on it.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub request_number: u64,
    pub model: String,
    pub input_tokens: u64,
    /// The last user message's text, for [`Kind::Echo`].
    pub last_user_text: String,
}

struct Writer<'a> {
    cx: &'a Context,
    steps: Vec<Step>,
    /// The index the next content block gets.
    next_index: u32,
    output_tokens: u64,
}

impl Writer<'_> {
    fn event(&mut self, name: &str, data: Value) {
        self.steps.push(Step::Send(Bytes::from(format!(
            "event: {name}\ndata: {data}\n\n"
        ))));
    }

    fn sleep(&mut self, delay: Duration) {
        if !delay.is_zero() {
            self.steps.push(Step::Sleep(delay));
        }
    }

    fn start(&mut self) {
        let message = json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_fake{}", self.cx.request_number),
                "type": "message",
                "role": "assistant",
                "model": self.cx.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": { "input_tokens": self.cx.input_tokens, "output_tokens": 1 },
            },
        });
        self.event("message_start", message);
        // The real API pings right after the start; clients must skip it.
        self.event("ping", json!({ "type": "ping" }));
    }

    /// A complete text block of `text`; nothing for empty text.
    fn text(&mut self, reply: &Reply, text: &str) {
        if let Some(index) = self.open_text(reply, text) {
            self.close_block(index);
        }
    }

    /// A text block of `text` cut by the reply's chunking, left open (for answers that break
    /// off midway); `None` for empty text.
    fn open_text(&mut self, reply: &Reply, text: &str) -> Option<u32> {
        let pieces = split(text, reply.chunking);
        if pieces.is_empty() {
            return None;
        }
        let index = self.open_block(json!({ "type": "text", "text": "" }));
        for piece in pieces {
            self.sleep(reply.delay);
            self.output_tokens += word_count(&piece);
            self.delta(index, json!({ "type": "text_delta", "text": piece }));
        }
        Some(index)
    }

    fn tool_use(&mut self, reply: &Reply, number: usize, name: &str, arguments: &str) {
        self.sleep(reply.delay);
        let index = self.open_block(json!({
            "type": "tool_use",
            "id": format!("toolu_fake{}_{number}", self.cx.request_number),
            "name": name,
            "input": {},
        }));
        // Like the API, the first fragment is empty and the rest arrive in small pieces.
        self.delta(
            index,
            json!({ "type": "input_json_delta", "partial_json": "" }),
        );
        let chars: Vec<char> = arguments.chars().collect();
        for fragment in chars.chunks(ARGUMENT_FRAGMENT) {
            let fragment: String = fragment.iter().collect();
            self.sleep(reply.delay);
            self.output_tokens += 1;
            self.delta(
                index,
                json!({ "type": "input_json_delta", "partial_json": fragment }),
            );
        }
        self.close_block(index);
    }

    fn open_block(&mut self, block: Value) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": block }),
        );
        index
    }

    fn delta(&mut self, index: u32, delta: Value) {
        self.event(
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": index, "delta": delta }),
        );
    }

    fn close_block(&mut self, index: u32) {
        self.event(
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": index }),
        );
    }

    fn finish(&mut self, reply: &Reply, default_reason: &str) {
        let reason = match reply.finish_reason.as_deref().unwrap_or(default_reason) {
            "stop" => "end_turn",
            "tool_calls" => "tool_use",
            "length" => "max_tokens",
            other => other,
        }
        .to_string();
        let output_tokens = reply
            .usage
            .map_or(self.output_tokens.max(1), |(_, output)| output);
        self.event(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": reason, "stop_sequence": null },
                "usage": { "output_tokens": output_tokens },
            }),
        );
        self.event("message_stop", json!({ "type": "message_stop" }));
    }
}

/// The steps that play `reply` (which must not be a status reply) for the request `cx`.
pub(crate) fn steps(reply: &Reply, cx: &Context) -> Vec<Step> {
    let mut cx = cx.clone();
    if let Some((input, _)) = reply.usage {
        cx.input_tokens = input;
    }
    let mut w = Writer {
        cx: &cx,
        steps: Vec::new(),
        next_index: 0,
        output_tokens: 0,
    };
    w.start();
    match &reply.kind {
        Kind::Echo => {
            w.text(reply, &format!("echo: {}", cx.last_user_text));
            w.finish(reply, "stop");
        }
        Kind::Text(text) => {
            w.text(reply, text);
            w.finish(reply, "stop");
        }
        Kind::ToolCalls { text, calls } => {
            w.text(reply, text);
            for (number, (name, arguments)) in calls.iter().enumerate() {
                w.tool_use(reply, number, name, arguments);
            }
            w.finish(reply, "tool_calls");
        }
        Kind::ErrorAfter { text, message } => {
            w.open_text(reply, text);
            w.sleep(reply.delay);
            let error = json!({
                "type": "error",
                "error": {
                    "type": reply.error_type.as_deref().unwrap_or("overloaded_error"),
                    "message": message,
                },
            });
            w.event("error", error);
        }
        Kind::DisconnectAfter(text) => {
            w.open_text(reply, text);
            // hyper drops what it has buffered when the body fails; see the OpenAI fake.
            w.sleep(reply.delay.max(FLUSH_PAUSE));
            w.steps.push(Step::Abort);
        }
        Kind::TruncatedAfter(text) => {
            w.open_text(reply, text);
        }
        Kind::StallAfter(text) => {
            w.open_text(reply, text);
            w.steps.push(Step::Stall);
        }
        Kind::Status(_) => unreachable!("status replies are answered without a stream"),
    }
    w.steps
}
