//! The script of one fake answer: what [`FakeLlm`](super::FakeLlm) or
//! [`FakeAnthropic`](super::FakeAnthropic) sends for one request.
//!
//! A `Reply` is a plain value built with constructors and modifiers, in one vocabulary for
//! every protocol; turning it into bytes on the wire is each protocol's `sse.rs`'s job, so
//! this file must stay free of I/O.

use std::time::Duration;

/// One scripted answer. Build it with a constructor and adjust it with the modifiers:
///
/// ```
/// # use robit_testkit::Reply;
/// # use std::time::Duration;
/// let slow = Reply::text("one two three").chunk_words(1).delay(Duration::from_millis(20));
/// let call = Reply::tool_call("run_code", r#"{"language":"python","code":"print(1)"}"#);
/// let limited = Reply::status(429).retry_after(7);
/// ```
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) kind: Kind,
    pub(crate) chunking: Chunking,
    pub(crate) delay: Duration,
    pub(crate) usage: Option<(u64, u64)>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) message: Option<String>,
    pub(crate) error_type: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// Echo the last user message as `echo: <text>`.
    Echo,
    Text(String),
    /// Optional text, then tool calls `(name, arguments)`.
    ToolCalls {
        text: String,
        calls: Vec<(String, String)>,
    },
    /// Text, then an in-stream `{"error": …}` chunk, then the body ends.
    ErrorAfter {
        text: String,
        message: String,
    },
    /// Text, then the connection is dropped mid-body.
    DisconnectAfter(String),
    /// Text, then the body ends cleanly but with no finish reason and no `[DONE]`.
    TruncatedAfter(String),
    /// Text, then silence until the server is dropped.
    StallAfter(String),
    /// A non-2xx answer with an OpenAI-style error body.
    Status(u16),
}

/// How text is cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunking {
    /// `n` words per chunk, each word keeping the whitespace that follows it.
    Words(usize),
    /// `n` characters per chunk.
    Chars(usize),
}

impl Reply {
    fn new(kind: Kind) -> Self {
        Reply {
            kind,
            chunking: Chunking::Words(1),
            delay: Duration::ZERO,
            usage: None,
            finish_reason: None,
            retry_after: None,
            message: None,
            error_type: None,
        }
    }

    /// The default when the script is empty: the last user message back as `echo: <text>`.
    pub fn echo() -> Self {
        Self::new(Kind::Echo)
    }

    /// A streamed text answer ending with `finish_reason: "stop"`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Kind::Text(text.into()))
    }

    /// One tool call, split across several events the way OpenAI sends it: the first piece
    /// carries the id and name, later pieces carry fragments of the arguments. Ids are
    /// `call_<request number>_<call index>`.
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::tool_calls([(name, arguments)])
    }

    /// Several tool calls in one answer (`index` 0, 1, …), ending with
    /// `finish_reason: "tool_calls"`.
    pub fn tool_calls<N: Into<String>, A: Into<String>>(
        calls: impl IntoIterator<Item = (N, A)>,
    ) -> Self {
        Self::new(Kind::ToolCalls {
            text: String::new(),
            calls: calls
                .into_iter()
                .map(|(n, a)| (n.into(), a.into()))
                .collect(),
        })
    }

    /// Streams `text`, then sends an in-stream error and ends the body, as providers do when
    /// generation fails midway: OpenAI a `data: {"error": …}` chunk without `[DONE]`,
    /// Anthropic an `event: error` (`overloaded_error` unless [`error_type`](Self::error_type)
    /// says otherwise).
    pub fn error_after(text: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Kind::ErrorAfter {
            text: text.into(),
            message: message.into(),
        })
    }

    /// Streams `text`, then drops the connection in the middle of the chunked body.
    pub fn disconnect_after(text: impl Into<String>) -> Self {
        Self::new(Kind::DisconnectAfter(text.into()))
    }

    /// Streams `text`, then ends the body cleanly without a finish reason or `[DONE]`.
    pub fn truncated_after(text: impl Into<String>) -> Self {
        Self::new(Kind::TruncatedAfter(text.into()))
    }

    /// Streams `text` (the role chunk only when empty), then sends nothing more until the
    /// server is dropped: for first-token and idle timeouts.
    pub fn stall_after(text: impl Into<String>) -> Self {
        Self::new(Kind::StallAfter(text.into()))
    }

    /// A non-2xx answer with an error body in the protocol's shape (OpenAI's
    /// `{"error": {"message", "type", "code"}}`, Anthropic's
    /// `{"type": "error", "error": {"type", "message"}}`); `status(529)` is Anthropic's
    /// "overloaded".
    pub fn status(status: u16) -> Self {
        Self::new(Kind::Status(status))
    }

    /// Cut text into chunks of `n` words (the default is 1).
    pub fn chunk_words(mut self, n: usize) -> Self {
        self.chunking = Chunking::Words(n.max(1));
        self
    }

    /// Cut text into chunks of `n` characters.
    pub fn chunk_chars(mut self, n: usize) -> Self {
        self.chunking = Chunking::Chars(n.max(1));
        self
    }

    /// Wait this long before each text chunk and argument fragment (default: none, for
    /// benchmarks).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Report these token counts instead of the word counts the fake computes.
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Some((prompt_tokens, completion_tokens));
        self
    }

    /// End with this finish reason (e.g. `length`) instead of `stop` / `tool_calls`. It is
    /// OpenAI's vocabulary; the Anthropic fake translates `stop`, `tool_calls` and `length`
    /// to `end_turn`, `tool_use` and `max_tokens` and sends anything else as it is.
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }

    /// For a tool-call reply: text the model says before calling.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        if let Kind::ToolCalls { text: t, .. } = &mut self.kind {
            *t = text.into();
        }
        self
    }

    /// For a status reply: send `Retry-After: <secs>`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// For a status reply: the `error.message` of the body.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// For a status or `error_after` reply: the error's `type` (e.g. `overloaded_error`)
    /// instead of the one the fake picks for the status or protocol.
    pub fn error_type(mut self, kind: impl Into<String>) -> Self {
        self.error_type = Some(kind.into());
        self
    }
}

/// Cuts `text` into chunks that concatenate back to exactly `text`.
pub(crate) fn split(text: &str, chunking: Chunking) -> Vec<String> {
    match chunking {
        Chunking::Chars(n) => {
            let chars: Vec<char> = text.chars().collect();
            chars.chunks(n).map(|c| c.iter().collect()).collect()
        }
        Chunking::Words(n) => {
            // A word is its non-space characters plus the whitespace after them; leading
            // whitespace goes with the first word.
            let mut words = Vec::new();
            let mut current = String::new();
            let mut in_space = false;
            for c in text.chars() {
                if !c.is_whitespace() && in_space && current.chars().any(|c| !c.is_whitespace()) {
                    words.push(std::mem::take(&mut current));
                }
                in_space = c.is_whitespace();
                current.push(c);
            }
            if !current.is_empty() {
                words.push(current);
            }
            words.chunks(n).map(|w| w.concat()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_words_keeps_every_character() {
        let text = "  Hello,  world!\nHow are\tyou ";
        let chunks = split(text, Chunking::Words(1));
        assert_eq!(chunks.concat(), text);
        assert_eq!(
            chunks,
            vec!["  Hello,  ", "world!\n", "How ", "are\t", "you "]
        );
        assert_eq!(split(text, Chunking::Words(2)).len(), 3);
    }

    #[test]
    fn split_chars_respects_char_boundaries() {
        let text = "héllo wörld ✓";
        let chunks = split(text, Chunking::Chars(4));
        assert_eq!(chunks.concat(), text);
        assert!(chunks.iter().all(|c| c.chars().count() <= 4));
    }

    #[test]
    fn split_empty_is_empty() {
        assert!(split("", Chunking::Words(1)).is_empty());
        assert!(split("", Chunking::Chars(3)).is_empty());
    }
}
