//! [`ReplySink`] for one Slack thread (or DM, or channel): posts with `chat.postMessage`, edits
//! with `chat.update`, uploads with the external upload flow, and optionally streams with
//! `chat.startStream/appendStream/stopStream`.
//!
//! The engine hands Markdown split at [`MAX_MESSAGE_LEN`]; the sink converts it to mrkdwn. When
//! escaping grows a message past what Slack takes ([`HARD_LIMIT`]), the sink spreads it over
//! more than one Slack message and remembers which, so later edits land on all of them. This
//! memory lives only as long as the turn's sink: nothing here is needed to continue a
//! conversation. Pacing and splitting policy stay the engine's.

use crate::api::SlackApi;
use crate::mrkdwn;
use async_trait::async_trait;
use robit_types::fence::fence_safe;
use robit_types::{
    AnswerControls, Attachment, Capabilities, MessageRef, ReplySink, SinkError, UserId,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the engine may put in one message: `chat.update` refuses much longer text with
/// `msg_too_long` in practice, well below the documented 40,000.
pub const MAX_MESSAGE_LEN: usize = 3500;
/// The most characters one converted message may have.
pub const HARD_LIMIT: usize = 4000;
/// A native stream with no appends for this long is stopped, so Slack shows it as finished.
const STREAM_IDLE_STOP: Duration = Duration::from_secs(5);

/// Where replies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub team: String,
    pub channel: String,
    /// `None`: top level of the channel or DM.
    pub thread_ts: Option<String>,
    /// The user the reply answers; native streams in channels must name one.
    pub user: String,
}

#[derive(Debug, Clone)]
pub(crate) struct SinkOptions {
    pub edit_interval: Duration,
    pub max_upload_bytes: u64,
    pub streaming: bool,
    pub assistant_status: bool,
}

pub(crate) struct SlackSink {
    api: Arc<SlackApi>,
    target: Target,
    options: SinkOptions,
    /// For each message handed to the engine (keyed by its first `ts`): every Slack message
    /// it occupies now, in order.
    parts: Mutex<HashMap<String, Vec<String>>>,
    streams: Arc<Mutex<HashMap<String, Stream>>>,
}

struct Stream {
    /// The Markdown the stream shows so far.
    sent: String,
    open: bool,
    last: tokio::time::Instant,
}

impl SlackSink {
    pub fn new(api: Arc<SlackApi>, target: Target, options: SinkOptions) -> Self {
        Self {
            api,
            target,
            options,
            parts: Mutex::new(HashMap::new()),
            streams: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn thread(&self) -> Option<&str> {
        self.target.thread_ts.as_deref()
    }

    fn streaming(&self) -> bool {
        self.options.streaming && self.target.thread_ts.is_some()
    }

    async fn post_plain(&self, text: &str) -> Result<MessageRef, SinkError> {
        let mut posted = Vec::new();
        for part in mrkdwn::render_parts(text, HARD_LIMIT) {
            posted.push(
                self.api
                    .post(&self.target.channel, self.thread(), &part)
                    .await?,
            );
        }
        let first = posted.first().cloned().unwrap_or_default();
        self.parts
            .lock()
            .expect("parts poisoned")
            .insert(first.clone(), posted);
        Ok(MessageRef(first))
    }

    /// Rewrites the Slack messages of one engine message; with `controls`, the last one carries
    /// them and the others none.
    async fn edit_plain(
        &self,
        message: &MessageRef,
        text: &str,
        controls: Option<&AnswerControls>,
    ) -> Result<(), SinkError> {
        let old = self
            .parts
            .lock()
            .expect("parts poisoned")
            .get(&message.0)
            .cloned()
            .unwrap_or_else(|| vec![message.0.clone()]);
        let new = mrkdwn::render_parts(text, HARD_LIMIT);
        let mut now = Vec::with_capacity(new.len());
        let buttons = controls.map(AnswerControls::buttons);
        for (i, part) in new.iter().enumerate() {
            let buttons = buttons
                .as_deref()
                .map(|b| if i + 1 == new.len() { b } else { &[] });
            match old.get(i) {
                Some(ts) => {
                    self.api
                        .update(&self.target.channel, ts, part, buttons)
                        .await?;
                    now.push(ts.clone());
                }
                None => now.push(
                    self.api
                        .post(&self.target.channel, self.thread(), part)
                        .await?,
                ),
            }
        }
        for ts in old.iter().skip(new.len()) {
            if let Err(e) = self.api.delete(&self.target.channel, ts).await {
                tracing::warn!(error = %e, "deleting a surplus message part failed");
            }
        }
        self.parts
            .lock()
            .expect("parts poisoned")
            .insert(message.0.clone(), now);
        Ok(())
    }

    /// Streams send Markdown as it is (`markdown_text`), so it is made fence-safe here as
    /// mrkdwn is in its conversion.
    async fn post_stream(&self, text: &str) -> Result<MessageRef, SinkError> {
        let text = &*fence_safe(text);
        let thread = self.thread().unwrap_or_default();
        // Streams in channels must name who they answer; DMs must not.
        let recipient = (!self.target.channel.starts_with('D'))
            .then_some((self.target.user.as_str(), self.target.team.as_str()));
        let ts = self
            .api
            .start_stream(&self.target.channel, thread, recipient, text)
            .await?;
        self.streams.lock().expect("streams poisoned").insert(
            ts.clone(),
            Stream {
                sent: text.to_string(),
                open: true,
                last: tokio::time::Instant::now(),
            },
        );
        self.spawn_idle_stop(ts.clone());
        Ok(MessageRef(ts))
    }

    /// Stops the stream once nothing was appended for [`STREAM_IDLE_STOP`]: the sink is not told
    /// when a reply ends, and an open stream looks unfinished to the user.
    fn spawn_idle_stop(&self, ts: String) {
        let streams = self.streams.clone();
        let api = self.api.clone();
        let channel = self.target.channel.clone();
        tokio::spawn(async move {
            loop {
                let due = match streams.lock().expect("streams poisoned").get(&ts) {
                    Some(s) if s.open => s.last + STREAM_IDLE_STOP,
                    _ => return,
                };
                tokio::time::sleep_until(due).await;
                let stop = {
                    let mut map = streams.lock().expect("streams poisoned");
                    match map.get_mut(&ts) {
                        Some(s)
                            if s.open
                                && s.last + STREAM_IDLE_STOP <= tokio::time::Instant::now() =>
                        {
                            s.open = false;
                            true
                        }
                        Some(s) if s.open => false,
                        _ => return,
                    }
                };
                if stop {
                    if let Err(e) = api.stop_stream(&channel, &ts, None).await {
                        tracing::warn!(error = %e, "stopping a stream failed");
                    }
                    return;
                }
            }
        });
    }

    async fn edit_stream(&self, message: &MessageRef, text: &str) -> Result<bool, SinkError> {
        let text = &*fence_safe(text);
        enum Step {
            Append(String),
            Replace { was_open: bool },
            NotAStream,
        }
        let step = {
            let mut map = self.streams.lock().expect("streams poisoned");
            match map.get_mut(&message.0) {
                Some(s) if s.open && text.starts_with(&s.sent) => {
                    let delta = text[s.sent.len()..].to_string();
                    s.sent = text.to_string();
                    s.last = tokio::time::Instant::now();
                    Step::Append(delta)
                }
                Some(s) => {
                    let was_open = s.open;
                    s.open = false;
                    s.sent = text.to_string();
                    Step::Replace { was_open }
                }
                None => Step::NotAStream,
            }
        };
        match step {
            Step::Append(delta) if delta.is_empty() => Ok(true),
            Step::Append(delta) => {
                self.api
                    .append_stream(&self.target.channel, &message.0, &delta)
                    .await?;
                Ok(true)
            }
            // Text that is not an extension of what was streamed cannot be appended: finish
            // the stream and rewrite the message as a plain one.
            Step::Replace { was_open } => {
                if was_open {
                    self.api
                        .stop_stream(&self.target.channel, &message.0, None)
                        .await?;
                }
                self.edit_plain(message, text, None).await?;
                Ok(true)
            }
            Step::NotAStream => Ok(false),
        }
    }

    /// The last edit of a streamed message, with its final buttons: what is left is appended
    /// and the stream stopped with the buttons below the text (a message still streaming
    /// takes no blocks). A stream already stopped, or text that does not extend it, is
    /// rewritten as a plain message with the buttons. `false`: not a stream.
    async fn finish_stream(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<bool, SinkError> {
        let text = &*fence_safe(text);
        enum Step {
            Finish(String),
            Rewrite { was_open: bool },
            NotAStream,
        }
        let step = {
            let mut map = self.streams.lock().expect("streams poisoned");
            match map.get_mut(&message.0) {
                Some(s) if s.open && text.starts_with(&s.sent) => {
                    let delta = text[s.sent.len()..].to_string();
                    s.sent = text.to_string();
                    s.open = false;
                    Step::Finish(delta)
                }
                Some(s) => {
                    let was_open = s.open;
                    s.open = false;
                    s.sent = text.to_string();
                    Step::Rewrite { was_open }
                }
                None => Step::NotAStream,
            }
        };
        let delta = match step {
            Step::Finish(delta) => delta,
            Step::Rewrite { was_open } => {
                if was_open {
                    self.api
                        .stop_stream(&self.target.channel, &message.0, None)
                        .await?;
                }
                self.edit_plain(message, text, Some(controls)).await?;
                return Ok(true);
            }
            Step::NotAStream => return Ok(false),
        };
        if !delta.is_empty() {
            self.api
                .append_stream(&self.target.channel, &message.0, &delta)
                .await?;
        }
        let buttons = controls.buttons();
        self.api
            .stop_stream(&self.target.channel, &message.0, Some(&buttons))
            .await?;
        Ok(true)
    }
}

/// Routes of Slack sinks: `slack:<team>:<channel>:<thread_ts>:<user>` (an empty thread for
/// the top level). Slack ids and timestamps never contain `:`.
const ROUTE: &str = "slack:";

/// Rebuilds the sinks of journaled turns from their routes, for the engine's takeover.
pub(crate) struct SlackOpener {
    pub api: Arc<SlackApi>,
    pub options: SinkOptions,
}

impl robit_types::SinkOpener for SlackOpener {
    fn open(&self, route: &str, _posted: &[MessageRef]) -> Option<Arc<dyn ReplySink>> {
        let mut parts = route.strip_prefix(ROUTE)?.split(':');
        let (team, channel, thread, user) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || channel.is_empty() {
            return None;
        }
        Some(Arc::new(SlackSink::new(
            self.api.clone(),
            Target {
                team: team.to_string(),
                channel: channel.to_string(),
                thread_ts: (!thread.is_empty()).then(|| thread.to_string()),
                user: user.to_string(),
            },
            self.options.clone(),
        )))
    }
}

#[async_trait]
impl ReplySink for SlackSink {
    fn route(&self) -> Option<String> {
        let t = &self.target;
        Some(format!(
            "{ROUTE}{}:{}:{}:{}",
            t.team,
            t.channel,
            t.thread_ts.as_deref().unwrap_or(""),
            t.user
        ))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE_LEN,
            min_edit_interval: self.options.edit_interval,
            native_streaming: self.streaming(),
            max_upload_bytes: Some(self.options.max_upload_bytes),
            // With a call budget (shared by replicas, or this process's own, see `intake`)
            // every post and update waits for it; without one (the ingest benchmark) the
            // renderer's edit interval is what keeps a reply under Slack's limits.
            paced: self.api.paced(),
            // Plain messages carry the answer's buttons in an actions block. A native
            // stream's message takes no blocks while it streams, so it shows no Stop; its
            // final buttons come with `chat.stopStream` (`finish_stream`).
            controls: true,
        }
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        if self.streaming() {
            return self.post_stream(text).await;
        }
        self.post_plain(text).await
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        if self.streaming() && self.edit_stream(message, text).await? {
            return Ok(());
        }
        self.edit_plain(message, text, None).await
    }

    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        if self.streaming() {
            let handled = match controls {
                AnswerControls::Streaming { .. } => self.edit_stream(message, text).await?,
                _ => self.finish_stream(message, text, controls).await?,
            };
            if handled {
                return Ok(());
            }
        }
        self.edit_plain(message, text, Some(controls)).await
    }

    async fn post_ephemeral(&self, user: &UserId, text: &str) -> Result<MessageRef, SinkError> {
        // Ephemeral messages cannot be edited later, so one converted part each is fine.
        for part in mrkdwn::render_parts(text, HARD_LIMIT) {
            self.api
                .post_ephemeral(&self.target.channel, self.thread(), user.as_str(), &part)
                .await?;
        }
        Ok(MessageRef(String::new()))
    }

    async fn upload(
        &self,
        file_name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        let id = self
            .api
            .upload(
                &self.target.channel,
                self.thread(),
                file_name,
                bytes,
                &mrkdwn::to_mrkdwn(comment),
            )
            .await?;
        Ok(MessageRef(format!("file:{id}")))
    }

    async fn fetch_attachment(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        self.api.downloads.fetch(attachment, max_bytes).await
    }

    async fn typing(&self) -> Result<(), SinkError> {
        match (self.options.assistant_status, self.thread()) {
            (true, Some(thread)) => {
                self.api
                    .set_status(&self.target.channel, thread, "is thinking…")
                    .await
            }
            _ => Ok(()),
        }
    }
}

/// A sink that drops everything: the ingest benchmark measures intake, not replies.
pub(crate) struct NullSink {
    /// Give a route, so turns are journaled like real ones (the benchmark never resumes
    /// them); without one the engine skips the journal, which the benchmark compares against.
    pub journaled: bool,
}

#[async_trait]
impl ReplySink for NullSink {
    fn route(&self) -> Option<String> {
        self.journaled.then(|| "slack:bench".to_string())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE_LEN,
            min_edit_interval: Duration::from_secs(1),
            native_streaming: false,
            max_upload_bytes: None,
            paced: false,
            controls: false,
        }
    }

    async fn post(&self, _text: &str) -> Result<MessageRef, SinkError> {
        Ok(MessageRef(String::new()))
    }

    async fn edit(&self, _message: &MessageRef, _text: &str) -> Result<(), SinkError> {
        Ok(())
    }
}
