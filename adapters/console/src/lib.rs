//! The terminal adapter: each line typed is a message in one conversation, and replies stream
//! to the terminal as they arrive.
//!
//! It exists so robit can be tried, and its engine exercised, without any chat platform. Like
//! every adapter it only converts input to [`Inbound`] values and implements [`ReplySink`]; it
//! must not touch the store or the provider directly.

use async_trait::async_trait;
use robit_core::{Engine, EngineError, Submission};
use robit_types::{
    Author, Capabilities, ConversationKey, EventId, Inbound, MessageRef, Platform, ReplySink,
    SinkError, UserId,
};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tracing::Instrument;

/// `text` without terminal control sequences: model text and guest output are untrusted, and
/// a terminal obeys what it prints (CSI sequences move the cursor, clear the screen or recolour
/// it; OSC sequences set the window title, the clipboard or a hyperlink; a bare carriage return
/// overwrites the line). ESC-introduced sequences are dropped whole, including one cut off at
/// the end (so a streamed prefix stays a prefix); C1 controls and every other control
/// character except newline and tab are dropped too.
pub fn strip_terminal_escapes(text: &str) -> std::borrow::Cow<'_, str> {
    let clean = |c: char| c == '\n' || c == '\t' || !(c.is_control());
    if text.chars().all(clean) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // ESC, or the one-character C1 forms of CSI, OSC, DCS and friends.
            '\u{1b}' | '\u{9b}' | '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => {
                let kind = if c == '\u{1b}' {
                    match chars.next() {
                        Some('[') => '[',
                        Some(']' | 'P' | 'X' | '^' | '_') => ']',
                        // Two-character sequences (ESC c, ESC 7, ...): both dropped.
                        _ => continue,
                    }
                } else if c == '\u{9b}' {
                    '['
                } else {
                    ']'
                };
                if kind == '[' {
                    // CSI: parameter and intermediate bytes, then one final byte.
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                } else {
                    // OSC/DCS/...: up to BEL or the string terminator (ESC \ or C1 ST).
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || c == '\u{9c}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
            }
            c if clean(c) => out.push(c),
            _ => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes replies to a terminal (or any writer, for tests). Everything printed goes through
/// [`strip_terminal_escapes`] first.
///
/// A terminal cannot edit what it printed, so an edit that extends a message prints only the
/// new text (the common case while streaming); any other edit prints the message again. A
/// [`ConsoleSink::plain`] sink (stdout is a pipe or a file) prints nothing until the turn
/// ends and then each message once, in full: a log must not hold half answers or repeats.
pub struct ConsoleSink {
    state: Mutex<SinkState>,
    plain: bool,
}

struct SinkState {
    out: Box<dyn Write + Send>,
    /// Text printed so far for each message, by id (plain: the text it will print).
    printed: Vec<String>,
    /// Plain: how many messages have been written out.
    written: usize,
    at_line_start: bool,
}

impl ConsoleSink {
    /// Streams replies as they grow (a terminal).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            state: Mutex::new(SinkState {
                out,
                printed: Vec::new(),
                written: 0,
                at_line_start: true,
            }),
            plain: false,
        }
    }

    /// Prints each reply once, in full, when its turn ends ([`ConsoleSink::finish_turn`]).
    pub fn plain(out: Box<dyn Write + Send>) -> Self {
        Self {
            plain: true,
            ..Self::new(out)
        }
    }

    /// The turn is over: a plain sink writes the messages it holds, each on its own lines.
    pub fn finish_turn(&self) {
        if !self.plain {
            return;
        }
        let mut s = self.state.lock().expect("console sink poisoned");
        while s.written < s.printed.len() {
            let text = s.printed[s.written].clone();
            let ending = if text.ends_with('\n') { "" } else { "\n" };
            if !s.at_line_start {
                let _ = Self::write(&mut s, "\n");
            }
            let _ = Self::write(&mut s, &format!("{text}{ending}"));
            s.written += 1;
        }
    }

    fn write(state: &mut SinkState, text: &str) -> Result<(), SinkError> {
        state
            .out
            .write_all(text.as_bytes())
            .and_then(|_| state.out.flush())
            .map_err(|e| SinkError::Unavailable(e.to_string()))?;
        if !text.is_empty() {
            state.at_line_start = text.ends_with('\n');
        }
        Ok(())
    }

    /// Ends the current line, if any, so a prompt starts on its own line.
    pub fn end_line(&self) {
        let mut s = self.state.lock().expect("console sink poisoned");
        if !s.at_line_start {
            let _ = Self::write(&mut s, "\n");
        }
    }
}

#[async_trait]
impl ReplySink for ConsoleSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Terminals take any length; a long limit keeps replies in one piece.
            max_message_len: 100_000,
            min_edit_interval: Duration::from_millis(30),
            native_streaming: true,
            max_upload_bytes: None,
            paced: false,
            controls: false,
        }
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        let text = &*strip_terminal_escapes(text);
        let mut s = self.state.lock().expect("console sink poisoned");
        if self.plain {
            s.printed.push(text.to_string());
            return Ok(MessageRef((s.printed.len() - 1).to_string()));
        }
        if !s.at_line_start {
            Self::write(&mut s, "\n")?;
        }
        Self::write(&mut s, text)?;
        s.printed.push(text.to_string());
        Ok(MessageRef((s.printed.len() - 1).to_string()))
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        let text = &*strip_terminal_escapes(text);
        let mut s = self.state.lock().expect("console sink poisoned");
        let idx: usize = message
            .0
            .parse()
            .map_err(|_| SinkError::Rejected(format!("unknown message {}", message.0)))?;
        let before = s
            .printed
            .get(idx)
            .cloned()
            .ok_or_else(|| SinkError::Rejected(format!("unknown message {idx}")))?;
        if self.plain {
            // Not written yet: it goes out in full when the turn ends. Written already (a
            // later turn changed it): the new text, in full, on its own lines.
            if idx < s.written {
                if !s.at_line_start {
                    Self::write(&mut s, "\n")?;
                }
                let ending = if text.ends_with('\n') { "" } else { "\n" };
                Self::write(&mut s, &format!("{text}{ending}"))?;
            }
            s.printed[idx] = text.to_string();
            return Ok(());
        }
        let is_last = idx + 1 == s.printed.len();
        match text.strip_prefix(before.as_str()) {
            Some(delta) if is_last => Self::write(&mut s, delta)?,
            _ => {
                if !s.at_line_start {
                    Self::write(&mut s, "\n")?;
                }
                Self::write(&mut s, text)?;
            }
        }
        s.printed[idx] = text.to_string();
        Ok(())
    }
}

/// The console's identity and conversation.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Names the conversation, so `robit chat` picks up where it left off.
    pub conversation: String,
    pub user: String,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            conversation: "default".into(),
            user: "local".into(),
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh event id: time plus a counter, unique across restarts of one machine.
fn next_event_id() -> EventId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    EventId(format!(
        "console-{nanos}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The key of the console conversation named `conversation`: every console conversation
/// lives in the workspace `local`, named by its channel.
pub fn conversation_key(conversation: &str) -> ConversationKey {
    ConversationKey::new(Platform::Console, "local", conversation, None)
}

/// The inbound event for one typed line.
pub fn line_to_inbound(options: &ConsoleOptions, line: &str) -> Inbound {
    Inbound::message(
        next_event_id(),
        conversation_key(&options.conversation),
        Author {
            id: UserId(options.user.clone()),
            name: options.user.clone(),
            is_bot: false,
            roles: Vec::new(),
        },
        line.to_string(),
    )
}

/// Reads lines until end of input, answering each before reading the next.
pub async fn run<R: AsyncBufRead + Unpin>(
    engine: &Engine,
    options: &ConsoleOptions,
    input: R,
    sink: Arc<ConsoleSink>,
    prompt: bool,
) -> Result<(), EngineError> {
    let mut lines = input.lines();
    loop {
        if prompt {
            sink.end_line();
            let mut s = sink.state.lock().expect("console sink poisoned");
            let _ = ConsoleSink::write(&mut s, "> ");
        }
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reading the terminal failed");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if prompt {
            // The typed line ended with Enter.
            sink.state
                .lock()
                .expect("console sink poisoned")
                .at_line_start = true;
        }
        let inbound = line_to_inbound(options, line.trim_end());
        let span = robit_core::inbound_span(inbound.key.platform, "line");
        match engine
            .submit(inbound, sink.clone())
            .instrument(span)
            .await?
        {
            Submission::Queued(h) => {
                h.wait().await;
            }
            Submission::Duplicate | Submission::Ignored => {}
        }
        sink.finish_turn();
    }
    sink.finish_turn();
    sink.end_line();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn escape_sequences_are_stripped() {
        let cases = [
            ("plain\ttext\n", "plain\ttext\n"),
            ("\u{1b}[2J\u{1b}[Hcleared", "cleared"),
            ("\u{1b}[31;1mred\u{1b}[0m", "red"),
            ("\u{1b}]0;pwned title\u{7}after", "after"),
            ("\u{1b}]52;c;Y3VybCBldmlsIHwgc2g=\u{1b}\\clip", "clip"),
            (
                "\u{1b}]8;;https://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\",
                "link",
            ),
            ("\u{9b}31mC1 CSI", "C1 CSI"),
            ("fake\rreal", "fakereal"),
            ("bell\u{7}\u{8}", "bell"),
            ("cut off at the end \u{1b}[3", "cut off at the end "),
            ("ünïcödé ✓", "ünïcödé ✓"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_terminal_escapes(input), want, "{input:?}");
        }
    }

    #[tokio::test]
    async fn the_sink_prints_no_escape_sequences() {
        let buf = Shared::default();
        let sink = ConsoleSink::new(Box::new(buf.clone()));
        let m = sink.post("model says \u{1b}[2J").await.unwrap();
        sink.edit(&m, "model says \u{1b}[2J and \u{1b}]0;title\u{7}more")
            .await
            .unwrap();
        let printed = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(printed, "model says  and more");
        assert!(!printed.contains('\u{1b}'));
    }

    #[tokio::test]
    async fn a_plain_sink_prints_each_answer_once_in_full_when_the_turn_ends() {
        let buf = Shared::default();
        let sink = ConsoleSink::plain(Box::new(buf.clone()));
        let printed = || String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        // The renderer closes an open fence in a partial text, so the final text is not an
        // extension of it: a terminal sink would print the answer twice.
        let m = sink.post("Here:\n```py\nprint(1)\n```").await.unwrap();
        sink.edit(&m, "Here:\n```py\nprint(1)\nprint(2)\n```\nDone.")
            .await
            .unwrap();
        let note = sink.post("second message").await.unwrap();
        assert_eq!(printed(), "", "nothing before the turn ends");
        sink.finish_turn();
        let want = "Here:\n```py\nprint(1)\nprint(2)\n```\nDone.\nsecond message\n";
        assert_eq!(printed(), want);
        // Nothing is written twice; a later edit of a written message prints it again.
        sink.finish_turn();
        assert_eq!(printed(), want);
        sink.edit(&note, "second message, edited").await.unwrap();
        assert_eq!(printed(), format!("{want}second message, edited\n"));
    }

    #[tokio::test]
    async fn a_terminal_sink_streams_and_reprints_an_edit_that_is_no_extension() {
        let buf = Shared::default();
        let sink = ConsoleSink::new(Box::new(buf.clone()));
        let m = sink.post("Hel").await.unwrap();
        sink.edit(&m, "Hello").await.unwrap();
        sink.edit(&m, "Help").await.unwrap();
        let printed = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(printed, "Hello\nHelp");
    }
}
