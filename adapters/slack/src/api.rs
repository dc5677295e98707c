//! The Web API calls the adapter makes, on slack-morphism's hyper client.
//!
//! One place builds the client (plain `http://` allowed, so the emulator works: the crate's
//! default connector is https-only) and every call goes through the call policy both adapters
//! share (`robit_core::call_policy`) with Slack's numbers: a 429 is waited out for its
//! `Retry-After` up to a configured number of times and then reported as
//! [`SinkError::RateLimited`], so the engine's renderer can wait again; an idempotent method
//! is tried again after a 5xx, a broken connection or a timeout. This file says which methods
//! are idempotent and which of Slack's errors are which. Callers get robit errors; nothing
//! outside this file and `socket.rs` holds a slack-morphism client.

use crate::config::SlackConfig;
use crate::error::SlackError;
use robit_core::call_policy::{Call, CallError, CallPolicy, Verdict};
use robit_types::{CallBudget, Rate, SinkError};
use secrecy::ExposeSecret;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub(crate) type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;
pub(crate) type Client = SlackClient<Connector>;

/// Used when a 429 carries no (or a non-integer) `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Slack's numbers for the shared call policy; the 429 waits come from the configuration.
fn policy(rate_limit_waits: u32) -> CallPolicy {
    CallPolicy {
        rate_limit_waits,
        transient_retries: 2,
        // slack-morphism's hyper client sets no timeout; 30 s is Slack's own SDKs' default
        // (python-slack-sdk `WebClient(timeout=30)`), long enough for the largest upload.
        request_timeout: Some(Duration::from_secs(30)),
        retry_backoff: Duration::from_millis(250),
        default_retry_after: DEFAULT_RETRY_AFTER,
    }
}

/// Whether a method may be sent again after an attempt whose fate is unknown: reads, edits
/// and deletes of one message, status lines, and asking for an upload URL (an unused one
/// expires). Posts, uploads and stream appends would repeat what the user sees.
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "auth.test"
            | "conversations.replies"
            | "chat.update"
            | "chat.delete"
            | "assistant.threads.setStatus"
            | "files.getUploadURLExternal"
    )
}

/// How the shared call policy reads slack-morphism's errors. Slack reports most refusals as
/// HTTP 200 with `ok: false` (`ApiError`): final. A 5xx or a connection that broke may be
/// gone on the next try.
fn verdict(e: &SlackClientError) -> Verdict {
    match e {
        SlackClientError::RateLimitError(r) => Verdict::RateLimited(r.retry_after),
        SlackClientError::HttpError(h) if h.status_code.is_server_error() => Verdict::Transient,
        SlackClientError::HttpProtocolError(_) | SlackClientError::EndOfStream(_) => {
            Verdict::Transient
        }
        _ => Verdict::Final,
    }
}

/// Who the bot is, from `auth.test` or an event's `authorizations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: String,
    pub bot_id: Option<String>,
}

pub(crate) struct SlackApi {
    client: std::sync::Arc<Client>,
    token: SlackApiToken,
    policy: CallPolicy,
    /// The budget shared with other replicas of this bot, when there are several.
    budget: Option<Arc<dyn CallBudget>>,
    /// Fetches `url_private` files with the bot token.
    pub downloads: robit_core::download::Downloader,
}

/// The shared budget bucket and its shape for a call, for the methods a reply makes often.
/// Slack documents `chat.postMessage` as about one message per second per channel (short
/// bursts allowed) and `chat.update` as Tier 3 (50+ per minute per workspace); every other
/// method the adapter calls is rare enough that its own 429 handling suffices.
fn budget_bucket(method: &str, channel: Option<&str>) -> Option<(String, Rate)> {
    match (method, channel) {
        ("chat.postMessage", Some(channel)) => Some((
            format!("slack:chat.postMessage:{channel}"),
            Rate {
                burst: 3.0,
                per_second: 1.0,
            },
        )),
        ("chat.update", _) => Some((
            "slack:chat.update".to_string(),
            Rate::per(50, Duration::from_secs(60)),
        )),
        _ => None,
    }
}

/// Builds the slack-morphism client for `config.api_url` (or Slack's own API).
pub(crate) fn client(config: &SlackConfig) -> Result<Client, SlackError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(SlackError::Tls)?
        .https_or_http()
        .enable_http1()
        .build();
    let mut connector = SlackClientHyperConnector::with_connector(https);
    if let Some(url) = &config.api_url {
        connector = connector.with_slack_api_url(url.trim_end_matches('/'));
    }
    Ok(SlackClient::new(connector))
}

impl SlackApi {
    pub fn new(
        config: &SlackConfig,
        budget: Option<Arc<dyn CallBudget>>,
    ) -> Result<Self, SlackError> {
        let token = config
            .bot_token
            .as_ref()
            .ok_or(SlackError::Missing("bot_token"))?;
        Ok(Self {
            client: std::sync::Arc::new(client(config)?),
            token: SlackApiToken::new(SlackApiTokenValue(token.expose_secret().to_string())),
            policy: policy(config.max_rate_limit_waits),
            budget,
            downloads: crate::download::downloader(token.clone(), config.api_url.as_deref()),
        })
    }

    pub fn client(&self) -> std::sync::Arc<Client> {
        self.client.clone()
    }

    /// Runs one call under the shared call policy.
    async fn call<'a, T, F, Fut>(
        &'a self,
        method: &'static str,
        f: F,
    ) -> Result<T, CallError<SlackClientError>>
    where
        F: Fn(SlackClientSession<'a, Connector>) -> Fut,
        Fut: Future<Output = Result<T, SlackClientError>> + 'a,
    {
        self.call_in(method, None, f).await
    }

    /// Runs one call into `channel`, drawing from the shared budget first when there is one
    /// and telling it about any 429, so other replicas hold off too.
    async fn call_in<'a, T, F, Fut>(
        &'a self,
        method: &'static str,
        channel: Option<&str>,
        f: F,
    ) -> Result<T, CallError<SlackClientError>>
    where
        F: Fn(SlackClientSession<'a, Connector>) -> Fut,
        Fut: Future<Output = Result<T, SlackClientError>> + 'a,
    {
        let shared = self
            .budget
            .as_deref()
            .and_then(|b| Some((b, budget_bucket(method, channel)?)));
        let mut call = Call::new(method).idempotent(idempotent(method));
        if let Some((budget, (bucket, rate))) = &shared {
            call = call.shared(*budget, bucket, *rate);
        }
        self.policy
            .run(call, verdict, || f(self.client.open_session(&self.token)))
            .await
    }

    /// Whether the calls a reply makes wait for a budget before they go out.
    pub fn paced(&self) -> bool {
        self.budget.is_some()
    }

    pub async fn auth_test(&self) -> Result<BotIdentity, SlackError> {
        let r = self
            .call("auth.test", |s| async move { s.auth_test().await })
            .await
            .map_err(|source| SlackError::Api {
                method: "auth.test",
                source: Box::new(source),
            })?;
        Ok(BotIdentity {
            user_id: r.user_id.0,
            bot_id: r.bot_id.map(|b| b.0),
        })
    }

    /// `chat.postMessage`; returns the new message's `ts`.
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) -> Result<String, SinkError> {
        let req = SlackApiChatPostMessageRequest::new(
            SlackChannelId(channel.to_string()),
            SlackMessageContent::new().with_text(text.to_string()),
        )
        .opt_thread_ts(thread_ts.map(|t| SlackTs(t.to_string())))
        // Model output must never unfurl into previews of arbitrary links.
        .with_unfurl_links(false)
        .with_unfurl_media(false);
        let r = self
            .call_in("chat.postMessage", Some(channel), |s| {
                let req = &req;
                async move { s.chat_post_message(req).await }
            })
            .await
            .map_err(sink_error)?;
        Ok(r.ts.0)
    }

    /// `chat.postEphemeral`: a message only `user` sees (refusals, errors).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        user: &str,
        text: &str,
    ) -> Result<(), SinkError> {
        let req = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId(channel.to_string()),
            SlackUserId(user.to_string()),
            SlackMessageContent::new().with_text(text.to_string()),
        )
        .opt_thread_ts(thread_ts.map(|t| SlackTs(t.to_string())));
        self.call_in("chat.postEphemeral", Some(channel), |s| {
            let req = &req;
            async move { s.chat_post_ephemeral(req).await }
        })
        .await
        .map_err(sink_error)?;
        Ok(())
    }

    /// `chat.update` of a message the bot posted. With buttons, the message becomes blocks:
    /// the text in section blocks and the buttons in an actions block (`text` stays as the
    /// notification fallback). With `Some(&[])` its blocks are emptied, so earlier buttons go
    /// (Slack keeps a message's blocks when an update does not name them); with `None` they
    /// are left as they are.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        buttons: Option<&[robit_types::Button]>,
    ) -> Result<(), SinkError> {
        let mut content = SlackMessageContent::new().with_text(text.to_string());
        match buttons {
            Some([]) => content = content.with_blocks(Vec::new()),
            Some(buttons) => content = content.with_blocks(answer_blocks(text, buttons)),
            None => {}
        }
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            content,
            SlackTs(ts.to_string()),
        );
        self.call_in("chat.update", Some(channel), |s| {
            let req = &req;
            async move { s.chat_update(req).await }
        })
        .await
        .map_err(sink_error)?;
        Ok(())
    }

    pub async fn delete(&self, channel: &str, ts: &str) -> Result<(), SinkError> {
        let req =
            SlackApiChatDeleteRequest::new(SlackChannelId(channel.to_string()), SlackTs(ts.into()));
        self.call("chat.delete", |s| {
            let req = &req;
            async move { s.chat_delete(req).await }
        })
        .await
        .map_err(sink_error)?;
        Ok(())
    }

    /// Whether the bot takes part in the thread rooted at `thread_ts`: it posted there, or a
    /// message there mentions it. Reads the thread's first page (up to 200 messages, the
    /// parent first) with `conversations.replies`, so it needs no state of our own.
    pub async fn bot_in_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        bot: &BotIdentity,
    ) -> Result<bool, SinkError> {
        let req = SlackApiConversationsRepliesRequest::new(
            SlackChannelId(channel.to_string()),
            SlackTs(thread_ts.to_string()),
        )
        .with_limit(200);
        let r = self
            .call("conversations.replies", |s| {
                let req = &req;
                async move { s.conversations_replies(req).await }
            })
            .await
            .map_err(sink_error)?;
        let mention = format!("<@{}>", bot.user_id);
        Ok(r.messages.iter().any(|m| {
            m.sender.user.as_ref().is_some_and(|u| u.0 == bot.user_id)
                || (bot.bot_id.is_some()
                    && m.sender.bot_id.as_ref().map(|b| &b.0) == bot.bot_id.as_ref())
                || m.content
                    .text
                    .as_deref()
                    .is_some_and(|t| t.contains(&mention))
        }))
    }

    /// The external upload flow: get an upload URL, send the bytes, complete into the thread.
    /// Returns the file id.
    pub async fn upload(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        file_name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<String, SinkError> {
        let req = SlackApiFilesGetUploadUrlExternalRequest::new(file_name.to_string(), bytes.len());
        let url = self
            .call("files.getUploadURLExternal", |s| {
                let req = &req;
                async move { s.get_upload_url_external(req).await }
            })
            .await
            .map_err(sink_error)?;
        let send = SlackApiFilesUploadViaUrlRequest::new(
            url.upload_url.clone(),
            bytes.to_vec(),
            "text/plain".to_string(),
        );
        self.call("upload", |s| {
            let send = &send;
            async move { s.files_upload_via_url(send).await }
        })
        .await
        .map_err(sink_error)?;
        let complete =
            SlackApiFilesCompleteUploadExternalRequest::new(vec![SlackApiFilesComplete::new(
                url.file_id.clone(),
            )
            .with_title(file_name.to_string())])
            .with_channel_id(SlackChannelId(channel.to_string()))
            .opt_thread_ts(thread_ts.map(|t| SlackTs(t.to_string())))
            .opt_initial_comment((!comment.is_empty()).then(|| comment.to_string()));
        self.call("files.completeUploadExternal", |s| {
            let complete = &complete;
            async move { s.files_complete_upload_external(complete).await }
        })
        .await
        .map_err(sink_error)?;
        Ok(url.file_id.0)
    }

    /// `assistant.threads.setStatus`.
    pub async fn set_status(
        &self,
        channel: &str,
        thread_ts: &str,
        status: &str,
    ) -> Result<(), SinkError> {
        let req = SlackApiAssistantThreadsSetStatusRequest::new(
            SlackChannelId(channel.to_string()),
            status.to_string(),
            SlackTs(thread_ts.to_string()),
        );
        self.call("assistant.threads.setStatus", |s| {
            let req = &req;
            async move { s.assistant_threads_set_status(req).await }
        })
        .await
        .map_err(sink_error)?;
        Ok(())
    }

    /// `chat.startStream`; returns the streaming message's `ts`.
    pub async fn start_stream(
        &self,
        channel: &str,
        thread_ts: &str,
        recipient: Option<(&str, &str)>,
        markdown: &str,
    ) -> Result<String, SinkError> {
        let req = SlackApiChatStartStreamRequest::new(SlackChannelId(channel.to_string()))
            .with_thread_ts(SlackTs(thread_ts.to_string()))
            .opt_recipient_user_id(recipient.map(|(u, _)| SlackUserId(u.to_string())))
            .opt_recipient_team_id(recipient.map(|(_, t)| SlackTeamId(t.to_string())))
            .with_markdown_text(markdown.to_string());
        let r = self
            .call("chat.startStream", |s| {
                let req = &req;
                async move { s.chat_start_stream(req).await }
            })
            .await
            .map_err(sink_error)?;
        Ok(r.ts.0)
    }

    pub async fn append_stream(
        &self,
        channel: &str,
        ts: &str,
        markdown: &str,
    ) -> Result<(), SinkError> {
        let req = SlackApiChatAppendStreamRequest::new(
            SlackChannelId(channel.to_string()),
            SlackTs(ts.to_string()),
        )
        .with_markdown_text(markdown.to_string());
        self.call("chat.appendStream", |s| {
            let req = &req;
            async move { s.chat_append_stream(req).await }
        })
        .await
        .map_err(sink_error)?;
        Ok(())
    }

    /// `chat.stopStream`; with `buttons`, the finished message shows them below its text
    /// (a streaming message takes no blocks until it is stopped).
    pub async fn stop_stream(
        &self,
        channel: &str,
        ts: &str,
        buttons: Option<&[robit_types::Button]>,
    ) -> Result<(), SinkError> {
        let mut content = SlackMessageContent::new();
        if let Some(buttons) = buttons.filter(|b| !b.is_empty()) {
            content = content.with_blocks(vec![actions_block(buttons)]);
        }
        let req = SlackApiChatStopStreamRequest::new(
            SlackChannelId(channel.to_string()),
            SlackTs(ts.to_string()),
            content,
        );
        self.call("chat.stopStream", |s| {
            let req = &req;
            async move { s.chat_stop_stream(req).await }
        })
        .await
        .map_err(sink_error)?;
        Ok(())
    }
}

/// Slack takes at most this many characters in one section block's text.
const SECTION_TEXT_LIMIT: usize = 3000;

/// `mrkdwn` as section blocks (each under Slack's limit, cut at line ends where it can) and
/// the answer's buttons as one actions block.
fn answer_blocks(mrkdwn: &str, buttons: &[robit_types::Button]) -> Vec<SlackBlock> {
    let mut blocks: Vec<SlackBlock> = Vec::new();
    let mut rest = mrkdwn;
    while !rest.is_empty() {
        let cut = if rest.chars().count() <= SECTION_TEXT_LIMIT {
            rest.len()
        } else {
            let hard = rest
                .char_indices()
                .nth(SECTION_TEXT_LIMIT)
                .map_or(rest.len(), |(i, _)| i);
            rest[..hard].rfind('\n').filter(|&i| i > 0).unwrap_or(hard)
        };
        let (head, tail) = rest.split_at(cut);
        if !head.trim().is_empty() {
            blocks.push(
                SlackSectionBlock::new()
                    .with_text(SlackBlockText::MarkDown(SlackBlockMarkDownText::new(
                        head.to_string(),
                    )))
                    .into(),
            );
        }
        rest = tail;
    }
    blocks.push(actions_block(buttons));
    blocks
}

/// The answer's buttons as one actions block.
fn actions_block(buttons: &[robit_types::Button]) -> SlackBlock {
    let elements = buttons
        .iter()
        .map(|b| {
            let mut button = SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from(b.label))
                .with_action_id(SlackActionId(b.id.clone()))
                .with_value(b.id.clone());
            if b.danger {
                button = button.with_style(SlackBlockButtonStyle::Danger);
            }
            button.into()
        })
        .collect();
    SlackActionsBlock::new(elements).into()
}

/// Slack's answer in the engine's terms: the chat gets a short message, the log the detail.
pub(crate) fn sink_error(e: CallError<SlackClientError>) -> SinkError {
    e.into_sink_error(|e| match e {
        SlackClientError::RateLimitError(r) => {
            SinkError::RateLimited(r.retry_after.unwrap_or(DEFAULT_RETRY_AFTER))
        }
        SlackClientError::ApiError(a) => SinkError::Rejected(a.code),
        other => SinkError::Unavailable(other.to_string()),
    })
}
