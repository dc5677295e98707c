//! From a Slack event or slash command to `Engine::submit`, shared by both intakes.
//!
//! Which events are for the bot:
//! - `app_mention` in a channel: a conversation in the thread of that message (its
//!   `thread_ts`, or its own `ts` when it is top level: the reply starts the thread).
//! - `message` in a DM (`channel_type: im`): the DM is the conversation (its thread, when the
//!   user writes in one).
//! - `message` in a channel thread without a mention: only when the bot takes part in that
//!   thread. Nothing on the acknowledgement path waits on Slack for that (Slack wants the ack
//!   within 3 s, and in Socket Mode one slow event holds up the others on its connection):
//!   1. a thread this process saw the bot take part in is remembered (per process, bounded);
//!   2. else the engine is asked whether it has a conversation for the thread (one indexed
//!      read of the store, shared by all replicas): every thread a mention started has one;
//!   3. else, and only then, Slack is asked (`conversations.replies`: did the bot post there,
//!      or did a message there mention it), *after* the ack, and the message is submitted
//!      if so. That covers threads under the bot's top-level answers to slash commands. An
//!      event decided this way is lost if the process stops between the ack and the submit
//!      (Slack does not redeliver an acknowledged event): the one exception to "ack only
//!      once durable", taken because the alternative is a network wait inside the ack.
//! - A `message` that mentions the bot is skipped: the same message also arrives as
//!   `app_mention` (with its own event id) and is answered once, from that.
//! - A user's edit of their message (`message_changed` whose `message` has `edited` and a
//!   user that is not a bot) becomes an [`InboundKind::Edit`] in the message's channel, under
//!   the envelope's event id; the engine finds the question it asked, if any, and decides.
//!   slack-morphism's typed `message_changed` drops the edited message's `thread_ts`, so the
//!   edit's key guesses the thread (a top-level message starts its own, as a mention does; a
//!   DM's top level has none): the engine looks the question up by channel and `ts` and
//!   answers where the question was answered, not where the guess points. A
//!   `message_changed` without `edited` (a link unfurled) is not an edit.
//! - Anything sent by a bot (`bot_id`, `subtype: bot_message`) or by the bot's own user,
//!   deletions and other subtypes are ignored.
//!
//! A click on one of robit's buttons (`block_actions`, from either transport) becomes an
//! [`InboundKind::Action`] of the conversation of the message it was on (its `thread_ts`);
//! the engine decides who may act, and tells a refused user by `chat.postEphemeral`.
//!
//! Slash commands (`/robit ask …`) address the channel-level conversation (no thread: Slack
//! does not say which thread a command was typed in) and are answered at the top level.
//!
//! The classification is pure ([`classify`]); on the ack path this file must not do more
//! I/O than the store's thread lookup and the submit, because the platform's ack waits for
//! it.

use crate::api::{BotIdentity, SlackApi};
use crate::error::IntakeError;
use crate::sink::{NullSink, SinkOptions, SlackSink, Target};
use robit_core::{Engine, Submission};
use robit_types::{
    AnswerAction, Attachment, Author, Command, ConversationKey, EventId, Inbound, InboundKind,
    Platform, ReplySink, UserId,
};
use slack_morphism::prelude::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use tracing::Instrument;

/// Most thread roots remembered as "the bot takes part"; the set is cleared when full.
const PARTICIPATION_CACHE: usize = 10_000;

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Not for the bot; the reason is for the debug log.
    Ignore(&'static str),
    /// A message for the bot.
    Accept(Accepted),
    /// A thread reply without a mention: accept it if the bot takes part in the thread.
    IfBotInThread(Accepted),
    /// A user's edit of their message: the engine decides whether it edits a question.
    Edit(EditOf),
}

/// A user's edit of their message, in platform-neutral parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOf {
    pub channel: String,
    /// The edited message's `ts`: the platform id the question was stored with.
    pub ts: String,
    /// The thread the message most likely belongs to (see the module comment).
    pub thread_ts: Option<String>,
    pub user: String,
    /// The new text, the bot's mention stripped as for a new message.
    pub text: String,
}

/// A message the bot answers, in platform-neutral parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub channel: String,
    /// The conversation's thread and where replies go; `None` for a DM's top level.
    pub thread_ts: Option<String>,
    pub user: String,
    pub text: String,
    /// Files shared with the message (the event's `files`).
    pub attachments: Vec<Attachment>,
    /// The message's own `ts`, stored with the question so an edit of it finds it; `None`
    /// for what is not a message (a slash command, a click).
    pub ts: Option<String>,
}

/// The event's shared files in the common shape. Slack's event omits nothing we need but the
/// size (slack-morphism does not model it), so `size` is 0: the engine caps downloads itself.
fn attachments(content: Option<&SlackMessageContent>) -> Vec<Attachment> {
    content
        .and_then(|c| c.files.as_ref())
        .map(|files| {
            files
                .iter()
                .filter_map(|f| {
                    let url = f.url_private_download.as_ref().or(f.url_private.as_ref())?;
                    Some(Attachment {
                        name: f
                            .name
                            .clone()
                            .or_else(|| f.title.clone())
                            .unwrap_or_else(|| f.id.0.clone()),
                        content_type: f.mimetype.as_ref().map(|m| m.0.clone()),
                        size: 0,
                        url: Some(url.to_string()),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Decides what an event is; `bot` is who we are.
pub fn classify(event: &SlackEventCallbackBody, bot: &BotIdentity) -> Classified {
    match event {
        SlackEventCallbackBody::AppMention(m) => {
            if m.user.0 == bot.user_id {
                return Classified::Ignore("own mention");
            }
            let thread = m.origin.thread_ts.as_ref().unwrap_or(&m.origin.ts);
            Classified::Accept(Accepted {
                channel: m.channel.0.clone(),
                thread_ts: Some(thread.0.clone()),
                user: m.user.0.clone(),
                text: strip_mention(m.content.text.as_deref().unwrap_or(""), bot),
                attachments: attachments(Some(&m.content)),
                ts: Some(m.origin.ts.0.clone()),
            })
        }
        SlackEventCallbackBody::Message(m) => classify_message(m, bot),
        _ => Classified::Ignore("event type not handled"),
    }
}

fn classify_message(m: &SlackMessageEvent, bot: &BotIdentity) -> Classified {
    if m.subtype == Some(SlackMessageEventType::MessageChanged) {
        return classify_edit(m, bot);
    }
    if m.sender.bot_id.is_some() {
        return Classified::Ignore("sent by a bot");
    }
    match &m.subtype {
        None | Some(SlackMessageEventType::FileShare) | Some(SlackMessageEventType::MeMessage) => {}
        Some(_) => return Classified::Ignore("message subtype not handled"),
    }
    let Some(user) = &m.sender.user else {
        return Classified::Ignore("no user");
    };
    if user.0 == bot.user_id {
        return Classified::Ignore("own message");
    }
    let Some(channel) = &m.origin.channel else {
        return Classified::Ignore("no channel");
    };
    let text = m
        .content
        .as_ref()
        .and_then(|c| c.text.clone())
        .unwrap_or_default();
    let is_dm = matches!(m.origin.channel_type.as_ref(), Some(t) if t.0 == "im")
        || (m.origin.channel_type.is_none() && channel.0.starts_with('D'));
    let thread = m
        .origin
        .thread_ts
        .as_ref()
        .filter(|t| **t != m.origin.ts)
        .map(|t| t.0.clone());
    if is_dm {
        return Classified::Accept(Accepted {
            channel: channel.0.clone(),
            thread_ts: thread,
            user: user.0.clone(),
            text: strip_mention(&text, bot),
            attachments: attachments(m.content.as_ref()),
            ts: Some(m.origin.ts.0.clone()),
        });
    }
    if text.contains(&format!("<@{}>", bot.user_id)) {
        return Classified::Ignore("mention: answered from app_mention");
    }
    match thread {
        Some(thread_ts) => Classified::IfBotInThread(Accepted {
            channel: channel.0.clone(),
            thread_ts: Some(thread_ts),
            user: user.0.clone(),
            text,
            attachments: attachments(m.content.as_ref()),
            ts: Some(m.origin.ts.0.clone()),
        }),
        None => Classified::Ignore("channel message without a mention"),
    }
}

/// A `message_changed`: a user's edit of their own message's text, or nothing.
fn classify_edit(m: &SlackMessageEvent, bot: &BotIdentity) -> Classified {
    let Some(message) = &m.message else {
        return Classified::Ignore("message_changed without the message");
    };
    if message.sender.bot_id.is_some() {
        return Classified::Ignore("a bot's message changed");
    }
    let Some(user) = &message.sender.user else {
        return Classified::Ignore("no user");
    };
    if user.0 == bot.user_id {
        return Classified::Ignore("own message");
    }
    if message.edited.is_none() {
        return Classified::Ignore("changed but not edited (an unfurl)");
    }
    let Some(channel) = &m.origin.channel else {
        return Classified::Ignore("no channel");
    };
    let text = strip_mention(
        message
            .content
            .as_ref()
            .and_then(|c| c.text.as_deref())
            .unwrap_or(""),
        bot,
    );
    if text.is_empty() {
        return Classified::Ignore("edited to nothing");
    }
    let is_dm = matches!(m.origin.channel_type.as_ref(), Some(t) if t.0 == "im")
        || (m.origin.channel_type.is_none() && channel.0.starts_with('D'));
    Classified::Edit(EditOf {
        channel: channel.0.clone(),
        ts: message.ts.0.clone(),
        thread_ts: (!is_dm).then(|| message.ts.0.clone()),
        user: user.0.clone(),
        text,
    })
}

/// Removes the bot's own mention (`<@U…>`, with an optional `|name`) and the space around it.
pub fn strip_mention(text: &str, bot: &BotIdentity) -> String {
    let plain = format!("<@{}>", bot.user_id);
    let named = format!("<@{}|", bot.user_id);
    let mut out = text.replace(&plain, "");
    while let Some(start) = out.find(&named) {
        match out[start..].find('>') {
            Some(end) => out.replace_range(start..start + end + 1, ""),
            None => break,
        }
    }
    out.trim().to_string()
}

/// Counters for tests and the benchmark.
#[derive(Debug, Default)]
pub struct IntakeStats {
    pub queued: AtomicU64,
    pub duplicates: AtomicU64,
    pub ignored: AtomicU64,
}

/// How replies are made: real Slack sinks, or a null sink for the ingest benchmark.
#[derive(Clone)]
pub(crate) enum Replies {
    Slack(SinkOptions),
    /// The benchmark: answers go nowhere, journaled or not.
    Discard {
        journaled: bool,
    },
}

/// Turns events into engine submissions. One per intake; cheap to share.
pub(crate) struct Intake {
    engine: Engine,
    api: Arc<SlackApi>,
    replies: Replies,
    /// Learned from the first event's `authorizations`, else from `auth.test`.
    bot: OnceCell<BotIdentity>,
    participating: Mutex<HashSet<(String, String)>>,
    pub stats: IntakeStats,
}

/// What the ack of a slash command says.
pub(crate) enum CommandAck {
    /// Nothing to show now: the answer comes as a message.
    Empty,
    /// Shown only to the user who typed the command (a parse error).
    Ephemeral(String),
}

impl Intake {
    pub fn new(engine: Engine, api: Arc<SlackApi>, replies: Replies) -> Self {
        Self {
            engine,
            api,
            replies,
            bot: OnceCell::new(),
            participating: Mutex::new(HashSet::new()),
            stats: IntakeStats::default(),
        }
    }

    pub fn api(&self) -> &Arc<SlackApi> {
        &self.api
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Who we are, asking `auth.test` once if no event told us yet.
    pub async fn identity(&self) -> Result<&BotIdentity, crate::SlackError> {
        self.bot.get_or_try_init(|| self.api.auth_test()).await
    }

    fn learn_identity(&self, ev: &SlackPushEventCallback) {
        if self.bot.initialized() {
            return;
        }
        let from_event = ev
            .authorizations
            .as_ref()
            .and_then(|a| a.iter().find(|a| a.is_bot.unwrap_or(false)))
            .map(|a| BotIdentity {
                user_id: a.user_id.0.clone(),
                bot_id: None,
            });
        if let Some(id) = from_event {
            let _ = self.bot.set(id);
        }
    }

    fn sink(&self, team: &str, a: &Accepted) -> Arc<dyn ReplySink> {
        match &self.replies {
            Replies::Discard { journaled } => Arc::new(NullSink {
                journaled: *journaled,
            }),
            Replies::Slack(options) => Arc::new(SlackSink::new(
                self.api.clone(),
                Target {
                    team: team.to_string(),
                    channel: a.channel.clone(),
                    thread_ts: a.thread_ts.clone(),
                    user: a.user.clone(),
                },
                options.clone(),
            )),
        }
    }

    /// Handles one Events API callback. Returns once the event is durable (or known to be
    /// a duplicate, or not for us, or handed to [`Self::decide_after_ack`] for a thread reply
    /// only Slack can place); an error means it was not stored and must be redelivered.
    pub async fn push_event(
        self: &Arc<Self>,
        ev: SlackPushEventCallback,
    ) -> Result<(), IntakeError> {
        let span = robit_core::inbound_span(Platform::Slack, "event");
        self.take_event(ev).instrument(span).await
    }

    async fn take_event(self: &Arc<Self>, ev: SlackPushEventCallback) -> Result<(), IntakeError> {
        self.learn_identity(&ev);
        let bot = match self.identity().await {
            Ok(b) => b.clone(),
            Err(e) => {
                tracing::error!(error = %e, "cannot tell who the bot is; event not accepted");
                return Err(IntakeError::Identity);
            }
        };
        let accepted = match classify(&ev.event, &bot) {
            Classified::Ignore(why) => {
                tracing::debug!(event_id = %ev.event_id.0, why, "event ignored");
                self.stats.ignored.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Classified::Edit(edit) => return self.submit_edit(&ev, edit).await,
            Classified::Accept(a) => {
                if let Some(t) = &a.thread_ts {
                    self.remember_participation(&a.channel, t);
                }
                a
            }
            Classified::IfBotInThread(a) => {
                let thread = a.thread_ts.clone().unwrap_or_default();
                if !self
                    .known_participation(&ev.team_id.0, &a.channel, &thread)
                    .await?
                {
                    // Unknown here: ask Slack after the ack (see the module comment).
                    let intake = self.clone();
                    tokio::spawn(
                        async move {
                            if let Err(e) = intake.decide_after_ack(ev, a, bot).await {
                                tracing::warn!(error = %e, "thread reply decided after the ack was not accepted");
                            }
                        }
                        .instrument(tracing::Span::current()),
                    );
                    return Ok(());
                }
                a
            }
        };
        self.submit_event(ev, accepted).await
    }

    /// The rest of [`Self::push_event`] for a thread reply whose thread the bot was not known
    /// to take part in: asks Slack, then submits or ignores.
    async fn decide_after_ack(
        &self,
        ev: SlackPushEventCallback,
        accepted: Accepted,
        bot: BotIdentity,
    ) -> Result<(), IntakeError> {
        let thread = accepted.thread_ts.clone().unwrap_or_default();
        if !self.bot_in_thread(&accepted.channel, &thread, &bot).await? {
            tracing::debug!(event_id = %ev.event_id.0, "thread reply, bot not in thread");
            self.stats.ignored.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.submit_event(ev, accepted).await
    }

    async fn submit_event(
        &self,
        ev: SlackPushEventCallback,
        accepted: Accepted,
    ) -> Result<(), IntakeError> {
        let key = ConversationKey::new(
            Platform::Slack,
            ev.team_id.0.clone(),
            accepted.channel.clone(),
            accepted.thread_ts.clone(),
        );
        let mut inbound = Inbound::message(
            EventId(ev.event_id.0.clone()),
            key,
            author(&accepted.user),
            accepted.text.clone(),
        );
        if let InboundKind::Message {
            attachments,
            platform_ref,
            ..
        } = &mut inbound.kind
        {
            attachments.clone_from(&accepted.attachments);
            platform_ref.clone_from(&accepted.ts);
        }
        let sink = self.sink(&ev.team_id.0, &accepted);
        self.submit(inbound, sink).await
    }

    /// Hands a user's edit to the engine, which answers it (if it edits a question) where the
    /// question was answered; the sink here, in the guessed thread, is only its fallback.
    async fn submit_edit(
        &self,
        ev: &SlackPushEventCallback,
        edit: EditOf,
    ) -> Result<(), IntakeError> {
        let key = ConversationKey::new(
            Platform::Slack,
            ev.team_id.0.clone(),
            edit.channel.clone(),
            edit.thread_ts.clone(),
        );
        let sink = self.sink(
            &ev.team_id.0,
            &Accepted {
                channel: edit.channel.clone(),
                thread_ts: edit.thread_ts.clone(),
                user: edit.user.clone(),
                text: String::new(),
                attachments: Vec::new(),
                ts: None,
            },
        );
        let inbound = Inbound::edit(
            EventId(ev.event_id.0.clone()),
            key,
            author(&edit.user),
            edit.ts,
            edit.text,
        );
        self.submit(inbound, sink).await
    }

    /// Whether the bot is known to take part in the thread without asking Slack: this
    /// process saw it, or the engine has a conversation there. A store failure is an error
    /// (the event is not acknowledged, so it comes again).
    async fn known_participation(
        &self,
        team: &str,
        channel: &str,
        thread: &str,
    ) -> Result<bool, IntakeError> {
        let key = (channel.to_string(), thread.to_string());
        if self
            .participating
            .lock()
            .expect("cache poisoned")
            .contains(&key)
        {
            return Ok(true);
        }
        let conversation = ConversationKey::new(
            Platform::Slack,
            team.to_string(),
            channel.to_string(),
            Some(thread.to_string()),
        );
        if self.engine.has_conversation(&conversation).await? {
            self.remember_participation(channel, thread);
            return Ok(true);
        }
        Ok(false)
    }

    /// Asks Slack whether the bot took part in the thread (`conversations.replies`). Never
    /// on the acknowledgement path.
    async fn bot_in_thread(
        &self,
        channel: &str,
        thread: &str,
        bot: &BotIdentity,
    ) -> Result<bool, IntakeError> {
        match self.api.bot_in_thread(channel, thread, bot).await {
            Ok(true) => {
                self.remember_participation(channel, thread);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                tracing::warn!(error = %e, "conversations.replies failed; event will be redelivered");
                Err(IntakeError::ThreadCheck(e))
            }
        }
    }

    fn remember_participation(&self, channel: &str, thread: &str) {
        let mut set = self.participating.lock().expect("cache poisoned");
        if set.len() >= PARTICIPATION_CACHE {
            set.clear();
        }
        set.insert((channel.to_string(), thread.to_string()));
    }

    /// Handles a slash command (`/robit ask …`, or `/ask …` if registered on its own).
    pub async fn command(&self, cmd: SlackCommandEvent) -> Result<CommandAck, IntakeError> {
        let span = robit_core::inbound_span(Platform::Slack, "command");
        self.take_command(cmd).instrument(span).await
    }

    async fn take_command(&self, cmd: SlackCommandEvent) -> Result<CommandAck, IntakeError> {
        let text = cmd.text.clone().unwrap_or_default();
        let parsed = parse_slash(&cmd.command.0, &text);
        let command = match parsed {
            Ok(c) => c,
            Err(e) => return Ok(CommandAck::Ephemeral(e.to_string())),
        };
        let accepted = Accepted {
            channel: cmd.channel_id.0.clone(),
            thread_ts: None,
            user: cmd.user_id.0.clone(),
            text,
            attachments: Vec::new(),
            ts: None,
        };
        let key = ConversationKey::new(
            Platform::Slack,
            cmd.team_id.0.clone(),
            accepted.channel.clone(),
            None,
        );
        // A command has no event id; its trigger id is unique per invocation and survives
        // redelivery, which is what dedup needs.
        let inbound = Inbound::command(
            EventId(format!("command:{}", cmd.trigger_id.0)),
            key,
            author(&accepted.user),
            command,
        );
        let sink = self.sink(&cmd.team_id.0, &accepted);
        self.submit(inbound, sink).await?;
        Ok(CommandAck::Empty)
    }

    /// Handles a `block_actions` payload: each robit button it names becomes an action of the
    /// conversation of the message it was clicked on. Returns once the engine has handled it
    /// (an action is not queued), so the transport acknowledges after that, within Slack's 3 s.
    pub async fn block_actions(
        &self,
        ev: SlackInteractionBlockActionsEvent,
    ) -> Result<(), IntakeError> {
        let Some(user) = ev.user.as_ref().map(|u| u.id.0.clone()) else {
            return Ok(());
        };
        let (channel, message_ts) = match &ev.container {
            SlackInteractionActionContainer::Message(m) => (
                m.channel_id
                    .as_ref()
                    .or(ev.channel.as_ref().map(|c| &c.id))
                    .map(|c| c.0.clone()),
                m.message_ts.0.clone(),
            ),
            _ => return Ok(()),
        };
        let Some(channel) = channel else {
            return Ok(());
        };
        // The answer lives in its conversation's thread; an answer at a DM's top level has no
        // `thread_ts`, like its conversation.
        let thread_ts = ev
            .message
            .as_ref()
            .and_then(|m| m.origin.thread_ts.as_ref())
            .map(|t| t.0.clone());
        tracing::debug!(%channel, %message_ts, "slack button clicked");
        let accepted = Accepted {
            channel: channel.clone(),
            thread_ts: thread_ts.clone(),
            user: user.clone(),
            text: String::new(),
            attachments: Vec::new(),
            ts: None,
        };
        for info in ev.actions.iter().flatten() {
            let Some((action, turn)) = AnswerAction::parse_id(&info.action_id.0) else {
                continue;
            };
            let key = ConversationKey::new(
                Platform::Slack,
                ev.team.id.0.clone(),
                channel.clone(),
                thread_ts.clone(),
            );
            let mut who = author(&user);
            if let Some(name) = ev
                .user
                .as_ref()
                .and_then(|u| u.username.clone().or(u.name.clone()))
            {
                who.name = name;
            }
            let inbound = Inbound {
                // Unique per click; actions are not deduplicated by the engine anyway.
                event_id: EventId(format!("action:{}:{}", ev.trigger_id.0, info.action_id.0)),
                key,
                author: who,
                kind: InboundKind::Action { action, turn },
                received_at: std::time::SystemTime::now(),
            };
            let sink = self.sink(&ev.team.id.0, &accepted);
            self.submit(inbound, sink).await?;
        }
        Ok(())
    }

    async fn submit(&self, inbound: Inbound, sink: Arc<dyn ReplySink>) -> Result<(), IntakeError> {
        let event_id = inbound.event_id.clone();
        match self.engine.submit(inbound, sink).await? {
            // The turn runs in the background; its handle is not needed here.
            Submission::Queued(_) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Submission::Duplicate => {
                tracing::debug!(%event_id, "duplicate slack event");
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Submission::Ignored => {
                self.stats.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn author(user: &str) -> Author {
    Author {
        id: UserId(user.to_string()),
        // Slack events carry only the id; a name would cost a users.info call per event.
        name: user.to_string(),
        is_bot: false,
        roles: Vec::new(),
    }
}

/// `/robit ask what?` → `Ask`; `/robit` alone → `Help`; `/ask what?` → `Ask`.
pub fn parse_slash(command: &str, text: &str) -> Result<Command, robit_types::CommandParseError> {
    let name = command.trim_start_matches('/');
    match Command::from_parts(name, text) {
        Err(robit_types::CommandParseError::Unknown(_)) => {
            // The app's own command: the first word names the sub-command.
            let text = text.trim();
            if text.is_empty() {
                return Ok(Command::Help);
            }
            match Command::parse_text(&format!("/{text}")) {
                Some(r) => r,
                None => Ok(Command::Help),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robit_types::{Language, Tier};

    fn bot() -> BotIdentity {
        BotIdentity {
            user_id: "UBOT".into(),
            bot_id: Some("BBOT".into()),
        }
    }

    fn event(json: serde_json::Value) -> SlackEventCallbackBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn mention_replies_in_the_messages_thread() {
        let top = event(
            serde_json::json!({"type":"app_mention","user":"U2","text":"<@UBOT> hi there","ts":"1.1","channel":"C1","event_ts":"1.1"}),
        );
        let Classified::Accept(a) = classify(&top, &bot()) else {
            panic!()
        };
        assert_eq!(a.thread_ts.as_deref(), Some("1.1"));
        assert_eq!(a.text, "hi there");
        let inner = event(
            serde_json::json!({"type":"app_mention","user":"U2","text":"<@UBOT> more","ts":"2.2","thread_ts":"1.1","channel":"C1","event_ts":"2.2"}),
        );
        let Classified::Accept(a) = classify(&inner, &bot()) else {
            panic!()
        };
        assert_eq!(a.thread_ts.as_deref(), Some("1.1"));
    }

    #[test]
    fn bots_own_and_bodiless_changes_are_ignored() {
        for json in [
            serde_json::json!({"type":"message","channel":"D1","channel_type":"im","user":"U2","bot_id":"B9","text":"x","ts":"1.1"}),
            serde_json::json!({"type":"message","channel":"D1","channel_type":"im","user":"UBOT","text":"x","ts":"1.1"}),
            serde_json::json!({"type":"message","subtype":"bot_message","channel":"D1","channel_type":"im","bot_id":"B9","text":"x","ts":"1.1"}),
            serde_json::json!({"type":"message","subtype":"message_changed","channel":"D1","channel_type":"im","ts":"1.1"}),
            serde_json::json!({"type":"message","channel":"C1","channel_type":"channel","user":"U2","text":"top level","ts":"1.1"}),
            serde_json::json!({"type":"message","channel":"C1","channel_type":"channel","user":"U2","text":"<@UBOT> hi","ts":"2.1","thread_ts":"1.1"}),
        ] {
            assert!(
                matches!(
                    classify(&event(json.clone()), &bot()),
                    Classified::Ignore(_)
                ),
                "{json}"
            );
        }
    }

    #[test]
    fn a_users_edit_is_an_edit_and_bots_unfurls_and_own_edits_are_not() {
        let changed = |message: serde_json::Value, channel: &str| {
            event(serde_json::json!({
                "type":"message","subtype":"message_changed","hidden":true,"channel":channel,
                "channel_type": if channel.starts_with('D') { "im" } else { "channel" },
                "ts":"9.9","event_ts":"9.9","message":message,
                "previous_message":{"type":"message","user":"U2","text":"old","ts":"1.1"}}))
        };
        let edited = serde_json::json!({"user":"U2","ts":"8.8"});
        let top = changed(
            serde_json::json!({"type":"message","user":"U2","text":"<@UBOT> new text",
                               "ts":"1.1","edited":edited}),
            "C1",
        );
        assert_eq!(
            classify(&top, &bot()),
            Classified::Edit(EditOf {
                channel: "C1".into(),
                ts: "1.1".into(),
                thread_ts: Some("1.1".into()),
                user: "U2".into(),
                text: "new text".into(),
            })
        );
        let dm = changed(
            serde_json::json!({"type":"message","user":"U2","text":"new","ts":"1.1",
                               "edited":edited}),
            "D1",
        );
        assert!(matches!(
            classify(&dm, &bot()),
            Classified::Edit(EditOf {
                thread_ts: None,
                ..
            })
        ));
        for message in [
            // A link unfurled: changed, not edited.
            serde_json::json!({"type":"message","user":"U2","text":"see x","ts":"1.1"}),
            // The bot's own answer being streamed.
            serde_json::json!({"type":"message","user":"UBOT","text":"answer","ts":"2.2",
                               "edited":{"user":"UBOT","ts":"8.8"}}),
            serde_json::json!({"type":"message","bot_id":"B9","text":"answer","ts":"2.2",
                               "edited":{"user":"U9","ts":"8.8"}}),
            // Edited down to the mention alone.
            serde_json::json!({"type":"message","user":"U2","text":"<@UBOT>","ts":"1.1",
                               "edited":edited}),
        ] {
            assert!(
                matches!(
                    classify(&changed(message.clone(), "C1"), &bot()),
                    Classified::Ignore(_)
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn a_message_carries_its_ts_for_a_later_edit() {
        let mention = event(
            serde_json::json!({"type":"app_mention","user":"U2","text":"<@UBOT> hi","ts":"2.2","thread_ts":"1.1","channel":"C1","event_ts":"2.2"}),
        );
        let Classified::Accept(a) = classify(&mention, &bot()) else {
            panic!()
        };
        assert_eq!(a.ts.as_deref(), Some("2.2"));
    }

    #[test]
    fn shared_files_become_attachments() {
        let ev = event(serde_json::json!({
            "type":"app_mention","user":"U2","text":"<@UBOT> read this","ts":"1.1","channel":"C1",
            "event_ts":"1.1","files":[{"id":"F1","name":"notes.txt","mimetype":"text/plain",
            "url_private":"https://files.slack.com/files-pri/T1-F1/notes.txt"},
            {"id":"F2","name":"no-url.txt"}]}));
        let Classified::Accept(a) = classify(&ev, &bot()) else {
            panic!("a mention is accepted");
        };
        assert_eq!(
            a.attachments,
            vec![Attachment {
                name: "notes.txt".into(),
                content_type: Some("text/plain".into()),
                size: 0,
                url: Some("https://files.slack.com/files-pri/T1-F1/notes.txt".into()),
            }]
        );
    }

    #[test]
    fn dms_and_thread_replies() {
        let dm = event(
            serde_json::json!({"type":"message","channel":"D1","channel_type":"im","user":"U2","text":"hello","ts":"1.1"}),
        );
        assert_eq!(
            classify(&dm, &bot()),
            Classified::Accept(Accepted {
                channel: "D1".into(),
                thread_ts: None,
                user: "U2".into(),
                text: "hello".into(),
                attachments: Vec::new(),
                ts: Some("1.1".into()),
            })
        );
        let reply = event(
            serde_json::json!({"type":"message","channel":"C1","channel_type":"channel","user":"U2","text":"and then?","ts":"2.1","thread_ts":"1.1"}),
        );
        assert!(matches!(
            classify(&reply, &bot()),
            Classified::IfBotInThread(Accepted { thread_ts: Some(t), .. }) if t == "1.1"
        ));
    }

    #[test]
    fn slash_commands_parse_with_and_without_the_app_command() {
        assert_eq!(
            parse_slash("/robit", "ask what is rust"),
            Ok(Command::Ask {
                prompt: "what is rust".into()
            })
        );
        assert_eq!(
            parse_slash("/robit", "run python print(1)"),
            Ok(Command::Run {
                language: Language::Python,
                code: "print(1)".into(),
                tier: Tier::Wasm,
            })
        );
        assert_eq!(parse_slash("/robit", ""), Ok(Command::Help));
        assert_eq!(parse_slash("/robit", "reset"), Ok(Command::Reset));
        assert_eq!(
            parse_slash("/ask", "hi"),
            Ok(Command::Ask {
                prompt: "hi".into()
            })
        );
        assert!(parse_slash("/robit", "frobnicate").is_err());
    }

    #[test]
    fn mention_stripping_handles_named_mentions() {
        assert_eq!(strip_mention("<@UBOT|robit> hi <@U2>", &bot()), "hi <@U2>");
    }
}
