//! From a Discord message or slash command to `Engine::submit`, for both transports (the
//! gateway handler and the HTTP interactions endpoint): deciding whether an event is for the
//! bot and which conversation it belongs to, converting it to an [`Inbound`], and handing it
//! to the engine with its sink.
//!
//! Which messages are for the bot ([`classify`], pure): bots (this one included) and webhooks
//! never are, nor system messages; a guild message is when it mentions the bot (a thread is
//! started from it) or is in a thread the bot started (the thread's `owner_id`, read from
//! serenity's cache or `GET /channels/{id}`, so no replica has to remember which threads it
//! made); every DM is. Every slash command is, acknowledged with a deferred response before
//! anything else. A click on one of robit's buttons (a component interaction whose id
//! [`AnswerAction::parse_id`] reads) is acknowledged with a deferred update, then handed to the
//! engine as an [`InboundKind::Action`]; the engine decides who may act.
//!
//! A user's edit of their message (MESSAGE_UPDATE with an `edited_timestamp` and content,
//! [`screen_edit`]) becomes an [`InboundKind::Edit`] of the conversation the message would
//! belong to (a thread's under its parent; a message that started a thread, that thread's):
//! the engine finds the question it asked, if any, and decides. MESSAGE_UPDATE has no event
//! id, so the edit's dedup id is the message id with its `edited_timestamp`: a replayed
//! dispatch of one edit is the same id, a second edit a new one.
//!
//! No serenity `Context` here: a command may come from the gateway (with serenity's cache) or
//! from an HTTP request (no cache), so everything takes the `Http` client and an optional
//! cache. The transport files only move bytes to and from here.

use crate::convert::{self, command_from, strip_mention, thread_name};
use crate::pacer::Pacer;
use crate::sink::{ActionSink, ChannelSink, InteractionSink, SinkContext};
use robit_core::download::Downloader;
use robit_core::{Engine, Submission};
use robit_types::{
    AnswerAction, Attachment, Author, Capabilities, ConversationKey, EventId, Inbound, InboundKind,
    Platform, ReplySink, UserId,
};
use serenity::all::{
    AutoArchiveDuration, Cache, Channel, ChannelId, ChannelType, CommandDataOptionValue,
    CommandInteraction, ComponentInteraction, CreateAllowedMentions, CreateInteractionResponse,
    CreateInteractionResponseMessage, CreateThread, GuildChannel, GuildId, HttpError, Message,
    MessageType, MessageUpdateEvent, PartialChannel,
};
use serenity::http::Http;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::Instrument;

/// Shown when a message could not be saved (the database is unreachable, robit is stopping).
const UNSAVED: &str =
    "⚠️ robit can't save this message right now, so it won't be answered. Please send it again in a minute.";

/// Discord's error code for "a thread has already been created for this message".
const THREAD_ALREADY_CREATED: isize = 160_004;

/// Where a message was posted, as far as robit cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A direct message: no guild, no lookup.
    Dm,
    Text,
    Thread {
        parent: u64,
        owner: Option<u64>,
    },
    Other,
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Classified {
    /// Not for the bot; the reason is for the debug log.
    Ignore(&'static str),
    /// For the bot: the conversation, and the channel (or thread) replies go to.
    Accept { key: ConversationKey, reply_in: u64 },
    /// A mention in a text channel: start a thread from the message and answer there, or in
    /// the channel when Discord refuses the thread.
    StartThread { guild: u64, channel: u64 },
}

/// The checks that need nothing but the message: who sent it and what kind it is. Run before
/// the channel is looked up, so a bot's chatter costs no request; [`classify`] repeats them.
pub(crate) fn screen(msg: &Message) -> Result<(), &'static str> {
    // No bot-to-bot loops: bots (this one included) and webhooks never start a turn.
    if msg.author.bot {
        return Err("sent by a bot");
    }
    if msg.webhook_id.is_some() {
        return Err("sent by a webhook");
    }
    if !matches!(msg.kind, MessageType::Regular | MessageType::InlineReply) {
        return Err("a system message");
    }
    Ok(())
}

/// Decides whether `msg` is for the bot `bot` and where it belongs; `place` is where it was
/// posted ([`Place::Dm`] when it has no guild).
pub(crate) fn classify(msg: &Message, bot: u64, place: Place) -> Classified {
    if let Err(why) = screen(msg) {
        return Classified::Ignore(why);
    }
    let mentioned = mentions(msg, bot);
    let channel = msg.channel_id.get();
    let Some(guild) = msg.guild_id.map(|g| g.get()) else {
        return Classified::Accept {
            key: convert::key(None, channel, None),
            reply_in: channel,
        };
    };
    match place {
        Place::Thread { parent, owner } if owner == Some(bot) || mentioned => Classified::Accept {
            key: convert::key(Some(guild), parent, Some(channel)),
            reply_in: channel,
        },
        Place::Thread { .. } => Classified::Ignore("a thread the bot did not start, no mention"),
        Place::Text if mentioned => Classified::StartThread { guild, channel },
        Place::Text => Classified::Ignore("no mention"),
        Place::Dm | Place::Other => Classified::Ignore("not a text channel or thread"),
    }
}

fn mentions(msg: &Message, bot: u64) -> bool {
    msg.mentions.iter().any(|u| u.id.get() == bot)
}

/// The message as an [`Inbound`] of conversation `key`. A bare mention asks what the bot can
/// do.
pub(crate) fn message_inbound(msg: &Message, bot: u64, key: ConversationKey) -> Inbound {
    let text = strip_mention(&msg.content, bot);
    let text = if text.is_empty() && msg.attachments.is_empty() {
        "/help".to_string()
    } else {
        text
    };
    Inbound {
        event_id: EventId(msg.id.to_string()),
        key,
        author: Author {
            id: UserId(msg.author.id.to_string()),
            name: msg.author.name.clone(),
            is_bot: false,
            roles: msg
                .member
                .as_ref()
                .map(|m| m.roles.iter().map(|r| r.to_string()).collect())
                .unwrap_or_default(),
        },
        kind: InboundKind::Message {
            text,
            attachments: msg
                .attachments
                .iter()
                .map(|a| Attachment {
                    name: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    size: u64::from(a.size),
                    url: Some(a.url.clone()),
                })
                .collect(),
            mentions_bot: mentions(msg, bot),
            platform_ref: Some(msg.id.to_string()),
        },
        received_at: SystemTime::now(),
    }
}

/// A user's edit of their message's text, in the parts an [`InboundKind::Edit`] needs:
/// `(dedup id, new text)`. Anything else a MESSAGE_UPDATE reports (embeds resolved, a pin, a
/// bot's or a webhook's edit, an edit whose text this bot cannot see) is not one.
pub(crate) fn screen_edit(
    ev: &MessageUpdateEvent,
    bot: u64,
) -> Result<(String, String), &'static str> {
    let Some(author) = &ev.author else {
        return Err("no author: not an edit of the text");
    };
    if author.bot {
        return Err("edited by a bot");
    }
    if matches!(ev.webhook_id, Some(Some(_))) {
        return Err("a webhook's message");
    }
    if ev
        .kind
        .is_some_and(|k| !matches!(k, MessageType::Regular | MessageType::InlineReply))
    {
        return Err("a system message");
    }
    let Some(edited) = &ev.edited_timestamp else {
        return Err("not an edit (embeds or a pin)");
    };
    // Empty also when the MESSAGE_CONTENT intent withholds the text of a message that no
    // longer mentions the bot: nothing to answer either way.
    let text = strip_mention(ev.content.as_deref().unwrap_or(""), bot);
    if text.is_empty() {
        return Err("no text");
    }
    // The timestamp as Discord gave it, to the microsecond: two edits within a second differ.
    let at = edited
        .to_rfc3339()
        .unwrap_or_else(|| edited.unix_timestamp().to_string());
    Ok((format!("edit:{}:{at}", ev.id), text))
}

fn is_thread(kind: ChannelType) -> bool {
    matches!(
        kind,
        ChannelType::PublicThread | ChannelType::PrivateThread | ChannelType::NewsThread
    )
}

pub(crate) fn place_of(c: &GuildChannel) -> Place {
    if is_thread(c.kind) {
        Place::Thread {
            parent: c.parent_id.unwrap_or(c.id).get(),
            owner: c.owner_id.map(|o| o.get()),
        }
    } else if matches!(c.kind, ChannelType::Text | ChannelType::News) {
        Place::Text
    } else {
        Place::Other
    }
}

fn place_of_partial(c: &PartialChannel) -> Place {
    if is_thread(c.kind) {
        Place::Thread {
            parent: c.parent_id.unwrap_or(c.id).get(),
            owner: None,
        }
    } else {
        Place::Text
    }
}

fn cached_place(cache: &Cache, guild: GuildId, channel: ChannelId) -> Option<Place> {
    let g = cache.guild(guild)?;
    if let Some(c) = g.channels.get(&channel) {
        return Some(place_of(c));
    }
    g.threads.iter().find(|t| t.id == channel).map(place_of)
}

pub(crate) fn discord_code(e: &serenity::Error) -> Option<isize> {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => Some(r.error.code),
        _ => None,
    }
}

pub(crate) struct Intake {
    pub engine: Engine,
    pacer: Arc<Pacer>,
    caps: Capabilities,
    downloads: Downloader,
}

impl Intake {
    pub fn new(
        engine: Engine,
        pacer: Arc<Pacer>,
        caps: Capabilities,
        downloads: Downloader,
    ) -> Self {
        Self {
            engine,
            pacer,
            caps,
            downloads,
        }
    }

    /// Forgets idle rate-limit buckets (see [`Pacer::prune`]).
    pub fn prune(&self) {
        self.pacer.prune();
    }

    pub fn sinks(&self, http: &Arc<Http>) -> Arc<SinkContext> {
        Arc::new(SinkContext {
            http: http.clone(),
            pacer: self.pacer.clone(),
            caps: self.caps.clone(),
            shared: self
                .engine
                .call_budget()
                .map(|budget| (budget, self.pacer.rate())),
            downloads: self.downloads.clone(),
        })
    }

    /// The cache knows the channels of every guild from GUILD_CREATE and the threads from
    /// THREAD_CREATE; anything else is one `GET /channels/{id}`.
    pub async fn place(
        &self,
        http: &Http,
        cache: Option<&Cache>,
        guild: GuildId,
        channel: ChannelId,
    ) -> Place {
        if let Some(p) = cache.and_then(|c| cached_place(c, guild, channel)) {
            return p;
        }
        match http.get_channel(channel).await {
            Ok(Channel::Guild(c)) => place_of(&c),
            Ok(_) => Place::Other,
            Err(e) => {
                tracing::warn!(error = %e, %channel, "cannot look up a discord channel");
                Place::Other
            }
        }
    }

    /// Takes one message from the gateway: decides whether it is for `bot` (see [`classify`]),
    /// starts a thread when a mention asks for one, and hands it to the engine.
    pub async fn message(&self, http: &Arc<Http>, cache: Option<&Cache>, bot: u64, msg: Message) {
        if let Err(why) = screen(&msg) {
            tracing::trace!(id = %msg.id, why, "discord message not for the bot");
            return;
        }
        let place = match msg.guild_id {
            None => Place::Dm,
            Some(guild) => self.place(http, cache, guild, msg.channel_id).await,
        };
        let classified = classify(&msg, bot, place);
        if let Classified::Ignore(why) = classified {
            tracing::debug!(id = %msg.id, why, "discord message not for the bot");
            return;
        }
        // The trace starts once the message is for the bot: a guild's chatter makes none.
        let span = robit_core::inbound_span(Platform::Discord, "message");
        self.take_message(http, bot, msg, classified)
            .instrument(span)
            .await;
    }

    async fn take_message(&self, http: &Arc<Http>, bot: u64, msg: Message, classified: Classified) {
        let (key, reply_in) = match classified {
            Classified::Ignore(_) => return,
            Classified::Accept { key, reply_in } => (key, ChannelId::new(reply_in)),
            Classified::StartThread { guild, channel } => {
                let name = thread_name(&strip_mention(&msg.content, bot));
                match self.start_thread(http, &msg, name).await {
                    Some(thread) => (
                        convert::key(Some(guild), channel, Some(thread.get())),
                        thread,
                    ),
                    None => (convert::key(Some(guild), channel, None), msg.channel_id),
                }
            }
        };
        let inbound = message_inbound(&msg, bot, key);
        let sink = Arc::new(ChannelSink::new(self.sinks(http), reply_in));
        match self.engine.submit(inbound, sink.clone()).await {
            Ok(Submission::Duplicate) => tracing::debug!(id = %msg.id, "duplicate discord message"),
            Ok(_) => {}
            Err(e) => {
                // Discord does not deliver a message again, so the author has to be told: a
                // log line alone would be a silently dropped question.
                tracing::warn!(error = %e, "the engine did not take a discord message");
                if let Err(e) = sink.post(UNSAVED).await {
                    tracing::warn!(error = %e, "telling the author failed too");
                }
            }
        }
    }

    /// Takes one MESSAGE_UPDATE: a user's edit of their text (see [`screen_edit`]) goes to
    /// the engine as an edit of the conversation the message belongs to, which decides
    /// whether it edits a question. Discord does not deliver an event twice, so a failure is
    /// only logged: the edit is then not answered, and the user can edit again.
    pub async fn message_update(
        &self,
        http: &Arc<Http>,
        cache: Option<&Cache>,
        bot: u64,
        ev: MessageUpdateEvent,
    ) {
        let (event_id, text) = match screen_edit(&ev, bot) {
            Ok(edit) => edit,
            Err(why) => {
                tracing::trace!(id = %ev.id, why, "discord message update not an edit");
                return;
            }
        };
        let channel = ev.channel_id;
        let (key, reply_in) = match ev.guild_id {
            None => (convert::key(None, channel.get(), None), channel),
            Some(guild) => match self.place(http, cache, guild, channel).await {
                Place::Thread { parent, .. } => (
                    convert::key(Some(guild.get()), parent, Some(channel.get())),
                    channel,
                ),
                // A mention in a channel is answered in the thread started from it.
                Place::Text => match &ev.thread {
                    Some(Some(thread)) => (
                        convert::key(Some(guild.get()), channel.get(), Some(thread.id.get())),
                        thread.id,
                    ),
                    _ => (
                        convert::key(Some(guild.get()), channel.get(), None),
                        channel,
                    ),
                },
                Place::Dm | Place::Other => return,
            },
        };
        let author = ev
            .author
            .as_ref()
            .expect("screened: an edit has its author");
        let inbound = Inbound::edit(
            EventId(event_id),
            key,
            Author {
                id: UserId(author.id.to_string()),
                name: author.name.clone(),
                is_bot: false,
                roles: match &ev.member {
                    Some(Some(m)) => m.roles.iter().map(|r| r.to_string()).collect(),
                    _ => Vec::new(),
                },
            },
            ev.id.to_string(),
            text,
        );
        let span = robit_core::inbound_span(Platform::Discord, "edit");
        let sink = Arc::new(ChannelSink::new(self.sinks(http), reply_in));
        if let Err(e) = self.engine.submit(inbound, sink).instrument(span).await {
            tracing::warn!(error = %e, id = %ev.id, "the engine did not take a discord edit");
        }
    }

    /// Starts a thread from `msg`; `None` if Discord refused (the reply then goes to the
    /// channel). Paced and retried like a message (a 429 or 5xx here would otherwise move the
    /// conversation out of its thread); a thread's id is its source message's id, so "already
    /// created" (a replayed event, a retry that had succeeded) is success.
    async fn start_thread(
        &self,
        http: &Arc<Http>,
        msg: &Message,
        name: String,
    ) -> Option<ChannelId> {
        let (channel, source) = (msg.channel_id, msg.id);
        let created = self
            .sinks(http)
            .call(&format!("th:{channel}"), true, || {
                let builder = CreateThread::new(name.clone())
                    .auto_archive_duration(AutoArchiveDuration::OneDay);
                let http = http.clone();
                async move {
                    match channel
                        .create_thread_from_message(http.as_ref(), source, builder)
                        .await
                    {
                        Ok(thread) => Ok(thread.id),
                        Err(e) if discord_code(&e) == Some(THREAD_ALREADY_CREATED) => {
                            Ok(ChannelId::new(source.get()))
                        }
                        Err(e) => Err(e),
                    }
                }
            })
            .await;
        match created {
            Ok(thread) => Some(thread),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a discord thread, answering in the channel");
                None
            }
        }
    }

    /// Takes one slash command: an ephemeral error if it does not parse, else a deferred
    /// response at once, then the engine with an [`InteractionSink`].
    pub async fn command(&self, http: &Arc<Http>, cache: Option<&Cache>, cmd: CommandInteraction) {
        if cmd.user.bot {
            return;
        }
        let span = robit_core::inbound_span(Platform::Discord, "command");
        self.take_command(http, cache, cmd).instrument(span).await
    }

    async fn take_command(&self, http: &Arc<Http>, cache: Option<&Cache>, cmd: CommandInteraction) {
        let options: Vec<(String, String)> = cmd
            .data
            .options
            .iter()
            .filter_map(|o| match &o.value {
                CommandDataOptionValue::String(s) => Some((o.name.clone(), s.clone())),
                _ => None,
            })
            .collect();
        let command = match command_from(&cmd.data.name, &options) {
            Ok(c) => c,
            Err(e) => {
                let reply = CreateInteractionResponseMessage::new()
                    .content(format!("⚠️ {e}"))
                    .ephemeral(true)
                    .allowed_mentions(CreateAllowedMentions::new());
                if let Err(e) = cmd
                    .create_response(http.as_ref(), CreateInteractionResponse::Message(reply))
                    .await
                {
                    tracing::warn!(error = %e, "cannot answer a discord interaction");
                }
                return;
            }
        };
        // Acknowledge first: the 3-second window is Discord's, and nothing robit does (the
        // store write in `submit`, a channel lookup) may eat into it.
        if let Err(e) = cmd.defer(http.as_ref()).await {
            tracing::warn!(error = %e, id = %cmd.id, "cannot defer a discord interaction");
            return;
        }
        let key = self
            .interaction_key(
                http,
                cache,
                cmd.guild_id,
                cmd.channel.as_ref(),
                cmd.channel_id,
            )
            .await;
        let inbound = Inbound::command(
            EventId(cmd.id.to_string()),
            key,
            Author {
                id: UserId(cmd.user.id.to_string()),
                name: cmd.user.name.clone(),
                is_bot: false,
                roles: cmd
                    .member
                    .as_ref()
                    .map(|m| m.roles.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default(),
            },
            command,
        );
        let sink = Arc::new(InteractionSink::new(self.sinks(http), cmd.token.clone()));
        if let Err(e) = self.engine.submit(inbound, sink.clone()).await {
            tracing::warn!(error = %e, "the engine did not take a discord command");
            let _ = sink
                .post(
                    "⚠️ robit couldn't take this request right now; please try again in a moment.",
                )
                .await;
        }
    }
}

impl Intake {
    /// The conversation an interaction in `channel` belongs to (a thread's conversation is
    /// keyed under its parent channel, as for messages).
    async fn interaction_key(
        &self,
        http: &Http,
        cache: Option<&Cache>,
        guild: Option<GuildId>,
        partial: Option<&PartialChannel>,
        channel: ChannelId,
    ) -> ConversationKey {
        let Some(guild) = guild else {
            return convert::key(None, channel.get(), None);
        };
        let place = match partial {
            Some(c) => place_of_partial(c),
            None => self.place(http, cache, guild, channel).await,
        };
        match place {
            Place::Thread { parent, .. } => {
                convert::key(Some(guild.get()), parent, Some(channel.get()))
            }
            _ => convert::key(Some(guild.get()), channel.get(), None),
        }
    }

    /// Takes one click on a message component: acknowledged at once with a deferred update
    /// (the message stays as it is until the engine edits it), then handed to the engine
    /// with a sink whose replies only the clicker sees.
    pub async fn component(
        &self,
        http: &Arc<Http>,
        cache: Option<&Cache>,
        click: ComponentInteraction,
    ) {
        if click.user.bot {
            return;
        }
        // Acknowledge first, even a button robit does not know (an old message's): Discord
        // shows the user an error for an interaction left unanswered for 3 seconds.
        if let Err(e) = click
            .create_response(http.as_ref(), CreateInteractionResponse::Acknowledge)
            .await
        {
            tracing::warn!(error = %e, id = %click.id, "cannot acknowledge a discord button");
            return;
        }
        let Some((action, turn)) = AnswerAction::parse_id(&click.data.custom_id) else {
            tracing::debug!(id = %click.data.custom_id, "a discord component that is not robit's");
            return;
        };
        let key = self
            .interaction_key(
                http,
                cache,
                click.guild_id,
                click.channel.as_ref(),
                click.channel_id,
            )
            .await;
        let inbound = Inbound {
            event_id: EventId(click.id.to_string()),
            key,
            author: Author {
                id: UserId(click.user.id.to_string()),
                name: click.user.name.clone(),
                is_bot: false,
                roles: click
                    .member
                    .as_ref()
                    .map(|m| m.roles.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default(),
            },
            kind: InboundKind::Action { action, turn },
            received_at: SystemTime::now(),
        };
        let sink = Arc::new(ActionSink::new(
            self.sinks(http),
            click.token.clone(),
            click.channel_id,
        ));
        if let Err(e) = self.engine.submit(inbound, sink.clone()).await {
            tracing::warn!(error = %e, "the engine did not take a discord button click");
            let _ = sink
                .post_ephemeral(&UserId(String::new()), UNSAVED_ACTION)
                .await;
        }
    }
}

/// Shown to whoever clicked when the engine could not take the click.
const UNSAVED_ACTION: &str = "⚠️ robit couldn't do that right now; please try again in a moment.";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOT: u64 = 111;

    /// A MESSAGE_CREATE payload as the gateway sends it (the shape serenity requires), by
    /// user 666 in channel 555 of guild 222 unless `patch` says otherwise.
    fn message(content: &str, mentions_bot: bool, patch: serde_json::Value) -> Message {
        let mut m = json!({
            "id": "444", "channel_id": "555", "guild_id": "222",
            "author": {"id": "666", "username": "alice"},
            "content": content,
            "timestamp": "2024-01-01T00:00:00.000000+00:00", "edited_timestamp": null,
            "tts": false, "mention_everyone": false, "mention_roles": [],
            "mentions": if mentions_bot {
                json!([{"id": BOT.to_string(), "username": "bot", "bot": true}])
            } else {
                json!([])
            },
            "attachments": [], "embeds": [], "pinned": false, "type": 0,
        });
        for (k, v) in patch.as_object().unwrap() {
            m[k] = v.clone();
        }
        serde_json::from_value(m).unwrap()
    }

    fn thread(owner: Option<u64>) -> Place {
        Place::Thread { parent: 9, owner }
    }

    #[test]
    fn a_mention_in_a_text_channel_starts_a_thread() {
        let m = message("<@111> hi", true, json!({}));
        assert_eq!(
            classify(&m, BOT, Place::Text),
            Classified::StartThread {
                guild: 222,
                channel: 555
            }
        );
        let plain = message("hi all", false, json!({}));
        assert_eq!(
            classify(&plain, BOT, Place::Text),
            Classified::Ignore("no mention")
        );
    }

    #[test]
    fn a_thread_the_bot_started_needs_no_mention_another_one_does() {
        let m = message("and then?", false, json!({}));
        let in_thread = Classified::Accept {
            key: convert::key(Some(222), 9, Some(555)),
            reply_in: 555,
        };
        assert_eq!(classify(&m, BOT, thread(Some(BOT))), in_thread);
        assert!(matches!(
            classify(&m, BOT, thread(Some(7))),
            Classified::Ignore(_)
        ));
        // A thread whose owner is unknown is not taken for the bot's.
        assert!(matches!(
            classify(&m, BOT, thread(None)),
            Classified::Ignore(_)
        ));
        let mention = message("<@111> and then?", true, json!({}));
        assert_eq!(classify(&mention, BOT, thread(Some(7))), in_thread);
        assert_eq!(classify(&mention, BOT, thread(None)), in_thread);
    }

    #[test]
    fn every_dm_is_for_the_bot() {
        let m = message("hello", false, json!({"guild_id": null}));
        assert_eq!(
            classify(&m, BOT, Place::Dm),
            Classified::Accept {
                key: convert::key(None, 555, None),
                reply_in: 555,
            }
        );
    }

    #[test]
    fn bots_webhooks_system_messages_and_other_channels_are_ignored_even_when_mentioning() {
        let bot = message(
            "<@111> hi",
            true,
            json!({"author": {"id": "7", "username": "b", "bot": true}}),
        );
        let hook = message("<@111> hi", true, json!({"webhook_id": "8"}));
        let pinned = message("<@111> hi", true, json!({"type": 6}));
        for (m, why) in [
            (&bot, "sent by a bot"),
            (&hook, "sent by a webhook"),
            (&pinned, "a system message"),
        ] {
            assert_eq!(screen(m), Err(why));
            assert_eq!(classify(m, BOT, Place::Text), Classified::Ignore(why));
            assert_eq!(classify(m, BOT, Place::Dm), Classified::Ignore(why));
        }
        let reply = message("<@111> hi", true, json!({"type": 19}));
        assert_eq!(screen(&reply), Ok(()));
        let voice = message("<@111> hi", true, json!({}));
        assert!(matches!(
            classify(&voice, BOT, Place::Other),
            Classified::Ignore(_)
        ));
    }

    /// A MESSAGE_UPDATE as the gateway sends it for alice's edit of message 444.
    fn update(patch: serde_json::Value) -> MessageUpdateEvent {
        let mut m = json!({
            "id": "444", "channel_id": "555", "guild_id": "222",
            "author": {"id": "666", "username": "alice"},
            "content": "<@111> the new question", "type": 0,
            "edited_timestamp": "2024-01-01T00:00:05.123456+00:00",
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() && k == "author" {
                m.as_object_mut().unwrap().remove(k);
            } else {
                m[k] = v.clone();
            }
        }
        serde_json::from_value(m).unwrap()
    }

    #[test]
    fn a_users_edit_of_their_text_is_an_edit_and_other_updates_are_not() {
        let (id, text) = screen_edit(&update(json!({})), BOT).unwrap();
        assert_eq!(text, "the new question");
        assert!(id.starts_with("edit:444:"), "{id}");
        // A replayed dispatch of the edit is the same event; a second edit another one.
        assert_eq!(screen_edit(&update(json!({})), BOT).unwrap().0, id);
        let later = json!({"edited_timestamp": "2024-01-01T00:00:05.223456+00:00"});
        assert_ne!(screen_edit(&update(later), BOT).unwrap().0, id);
        for (patch, why) in [
            (
                json!({"edited_timestamp": null}),
                "not an edit (embeds or a pin)",
            ),
            (
                json!({"author": null}),
                "no author: not an edit of the text",
            ),
            (
                json!({"author": {"id": "111", "username": "robit", "bot": true}}),
                "edited by a bot",
            ),
            (json!({"webhook_id": "8"}), "a webhook's message"),
            (json!({"type": 6}), "a system message"),
            (json!({"content": "<@111>"}), "no text"),
        ] {
            assert_eq!(
                screen_edit(&update(patch.clone()), BOT),
                Err(why),
                "{patch}"
            );
        }
    }

    #[test]
    fn a_message_carries_its_id_for_a_later_edit() {
        let m = message("<@111> hi", true, json!({}));
        let inbound = message_inbound(&m, BOT, convert::key(Some(222), 555, None));
        assert_eq!(inbound.platform_ref(), Some("444"));
    }

    #[test]
    fn the_inbound_has_the_text_without_the_mention_and_a_bare_mention_asks_for_help() {
        let key = convert::key(Some(222), 555, None);
        let m = message("<@111>  what is <@7>?", true, json!({}));
        let inbound = message_inbound(&m, BOT, key.clone());
        assert_eq!(inbound.event_id, EventId("444".into()));
        assert_eq!(inbound.author.id, UserId("666".into()));
        assert!(matches!(
            &inbound.kind,
            InboundKind::Message { text, mentions_bot: true, .. } if text == "what is <@7>?"
        ));
        let bare = message_inbound(&message("<@!111>", true, json!({})), BOT, key);
        assert!(matches!(
            &bare.kind,
            InboundKind::Message { text, .. } if text == "/help"
        ));
    }
}
