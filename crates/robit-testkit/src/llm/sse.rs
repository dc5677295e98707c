//! Renders a [`Reply`] as the bytes of an OpenAI streamed answer and plays them with delays.
//!
//! The frames match the real API: `data: {json}\n\n` events whose JSON is a
//! `chat.completion.chunk` (`id`, `object`, `created`, `model`, `choices[{index, delta,
//! finish_reason}]`), an optional usage-only chunk with empty `choices`, then
//! `data: [DONE]\n\n`. Nothing here touches the network except through the body it returns.

use super::reply::{split, Kind, Reply};
use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;

/// Argument text of a tool call is sent in fragments this many characters long, so that a
/// client must stitch several pieces together as it must with OpenAI.
pub(crate) const ARGUMENT_FRAGMENT: usize = 8;

/// Long enough for hyper to write out what the body already produced.
pub(crate) const FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// What the request asked for, as far as the answer's shape depends on it.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub request_number: u64,
    pub model: String,
    pub include_usage: bool,
    pub prompt_tokens: u64,
    /// The last user message, for [`Kind::Echo`].
    pub last_user_text: String,
}

/// One step of playing an answer.
#[derive(Debug)]
pub(crate) enum Step {
    Send(Bytes),
    Sleep(Duration),
    /// Send nothing more until the server shuts down.
    Stall,
    /// Break the connection: the body fails, so hyper closes it without finishing the chunked
    /// encoding.
    Abort,
}

struct Writer<'a> {
    cx: &'a Context,
    id: String,
    created: u64,
    steps: Vec<Step>,
    completion_tokens: u64,
}

impl Writer<'_> {
    fn chunk(&mut self, delta: Value, finish_reason: Option<&str>) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.cx.model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.cx.include_usage {
            // OpenAI sends `"usage": null` on every chunk but the last when usage is asked for.
            chunk["usage"] = Value::Null;
        }
        self.data(&chunk.to_string());
    }

    fn data(&mut self, data: &str) {
        self.steps
            .push(Step::Send(Bytes::from(format!("data: {data}\n\n"))));
    }

    fn sleep(&mut self, delay: Duration) {
        if !delay.is_zero() {
            self.steps.push(Step::Sleep(delay));
        }
    }

    fn text(&mut self, reply: &Reply, text: &str) {
        for piece in split(text, reply.chunking) {
            self.sleep(reply.delay);
            self.completion_tokens += word_count(&piece);
            self.chunk(json!({ "content": piece }), None);
        }
    }

    fn finish(&mut self, reply: &Reply, default_reason: &str) {
        let reason = reply.finish_reason.as_deref().unwrap_or(default_reason);
        self.chunk(json!({}), Some(reason));
        if self.cx.include_usage {
            let (prompt, completion) = reply
                .usage
                .unwrap_or((self.cx.prompt_tokens, self.completion_tokens.max(1)));
            let usage = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.cx.model,
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            });
            self.data(&usage.to_string());
        }
        self.data("[DONE]");
    }
}

/// The steps that play `reply` (which must not be a status reply) for the request `cx`.
pub(crate) fn steps(reply: &Reply, cx: &Context) -> Vec<Step> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut w = Writer {
        cx,
        id: format!("chatcmpl-fake{}", cx.request_number),
        created,
        steps: Vec::new(),
        completion_tokens: 0,
    };
    // Like OpenAI, the first chunk only announces the role.
    w.chunk(json!({ "role": "assistant", "content": "" }), None);
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
            for (index, (name, arguments)) in calls.iter().enumerate() {
                w.sleep(reply.delay);
                w.chunk(
                    json!({ "tool_calls": [{
                        "index": index,
                        "id": format!("call_{}_{index}", cx.request_number),
                        "type": "function",
                        "function": { "name": name, "arguments": "" },
                    }]}),
                    None,
                );
                let chars: Vec<char> = arguments.chars().collect();
                for fragment in chars.chunks(ARGUMENT_FRAGMENT) {
                    let fragment: String = fragment.iter().collect();
                    w.sleep(reply.delay);
                    w.completion_tokens += 1;
                    w.chunk(
                        json!({ "tool_calls": [{
                            "index": index,
                            "function": { "arguments": fragment },
                        }]}),
                        None,
                    );
                }
            }
            w.finish(reply, "tool_calls");
        }
        Kind::ErrorAfter { text, message } => {
            w.text(reply, text);
            w.sleep(reply.delay);
            let error = json!({ "error": {
                "message": message,
                "type": reply.error_type.as_deref().unwrap_or("server_error"),
                "param": null,
                "code": null,
            }});
            w.data(&error.to_string());
        }
        Kind::DisconnectAfter(text) => {
            w.text(reply, text);
            // hyper drops what it has buffered when the body fails, so without a pause a fast
            // answer would break before any of it left; a real server dies after sending.
            w.sleep(reply.delay.max(FLUSH_PAUSE));
            w.steps.push(Step::Abort);
        }
        Kind::TruncatedAfter(text) => w.text(reply, text),
        Kind::StallAfter(text) => {
            w.text(reply, text);
            w.steps.push(Step::Stall);
        }
        Kind::Status(_) => unreachable!("status replies are answered without a stream"),
    }
    w.steps
}

/// Plays `steps` as a response body. A stall ends (as a broken connection) when `shutdown`
/// turns true, so a dropped [`FakeLlm`](super::FakeLlm) leaves no task behind.
pub(crate) fn body(steps: Vec<Step>, shutdown: watch::Receiver<bool>) -> axum::body::Body {
    let stream = futures::stream::unfold(
        (steps.into_iter(), shutdown, false),
        |(mut steps, mut shutdown, done)| async move {
            if done {
                return None;
            }
            loop {
                match steps.next()? {
                    Step::Send(bytes) => return Some((Ok(bytes), (steps, shutdown, false))),
                    Step::Sleep(delay) => tokio::time::sleep(delay).await,
                    Step::Stall => {
                        // An error (sender gone) means the server is gone too: stop as well.
                        let _ = shutdown.wait_for(|stop| *stop).await;
                        return Some((Err(broken()), (steps, shutdown, true)));
                    }
                    Step::Abort => return Some((Err(broken()), (steps, shutdown, true))),
                }
            }
        },
    );
    axum::body::Body::from_stream(stream)
}

fn broken() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "fake llm dropped the connection on purpose",
    )
}

/// The fake's notion of a token: a whitespace-separated word.
pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}
