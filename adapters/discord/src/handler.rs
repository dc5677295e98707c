//! serenity's event callbacks: turn a gateway event into an [`Inbound`] and a sink, hand both
//! to the engine, and return. Thin on purpose (conversions live in `convert.rs`, Discord calls
//! in `sink.rs`); no reply is produced here.
//!
//! What this file decides is *whether* an event is for robit and *which conversation* it
//! belongs to: bots and webhooks never are; a guild message is when it mentions the bot (a
//! thread is started from it) or is in a thread the bot started (the thread's `owner_id`,
//! read from serenity's cache or `GET /channels/{id}`, so no replica has to remember which
//! threads it made); every DM is; and every slash command is, acknowledged with a deferred
//! response before anything else.

use crate::commands;
use crate::convert::{self, strip_mention, thread_name};
use crate::intake::{discord_code, Intake, Place};
use crate::sink::ChannelSink;
use async_trait::async_trait;
use robit_core::Submission;
use robit_types::{Attachment, Author, EventId, Inbound, InboundKind, ReplySink, UserId};
use serenity::all::{
    AutoArchiveDuration, ChannelId, Context, CreateThread, EventHandler, Interaction, Message,
    MessageType, Ready,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// Shown when a message could not be saved (the database is unreachable, robit is stopping).
const UNSAVED: &str =
    "⚠️ robit can't save this message right now, so it won't be answered. Please send it again in a minute.";

/// Discord's error code for "a thread has already been created for this message".
const THREAD_ALREADY_CREATED: isize = 160_004;

pub(crate) struct Handler {
    intake: Arc<Intake>,
    dev_guild: Option<u64>,
    bot_id: OnceLock<u64>,
    registered: AtomicBool,
}

impl Handler {
    pub fn new(intake: Arc<Intake>, dev_guild: Option<u64>) -> Self {
        Self {
            intake,
            dev_guild,
            bot_id: OnceLock::new(),
            registered: AtomicBool::new(false),
        }
    }

    /// Starts a thread from `msg`; `None` if Discord refused (the reply then goes to the
    /// channel). Paced and retried like a message (a 429 or 5xx here would otherwise move the
    /// conversation out of its thread); a thread's id is its source message's id, so "already
    /// created" (a replayed event, a retry that had succeeded) is success.
    async fn start_thread(&self, ctx: &Context, msg: &Message, text: &str) -> Option<ChannelId> {
        let name = thread_name(text);
        let http = ctx.http.clone();
        let (channel, source) = (msg.channel_id, msg.id);
        let created = self
            .intake
            .sinks(&ctx.http)
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

    async fn on_message(&self, ctx: &Context, msg: Message) {
        // Bots (this one included) and webhooks never start a turn: no bot-to-bot loops.
        if msg.author.bot || msg.webhook_id.is_some() {
            return;
        }
        if !matches!(msg.kind, MessageType::Regular | MessageType::InlineReply) {
            return;
        }
        let Some(&bot) = self.bot_id.get() else {
            return;
        };
        let mentioned = msg.mentions.iter().any(|u| u.id.get() == bot);
        let text = strip_mention(&msg.content, bot);
        let channel = msg.channel_id;
        let (key, reply_in) = match msg.guild_id {
            None => (convert::key(None, channel.get(), None), channel),
            Some(guild) => match self
                .intake
                .place(&ctx.http, Some(&ctx.cache), guild, channel)
                .await
            {
                Place::Thread { parent, owner } if owner == Some(bot) || mentioned => (
                    convert::key(Some(guild.get()), parent, Some(channel.get())),
                    channel,
                ),
                Place::Text if mentioned => match self.start_thread(ctx, &msg, &text).await {
                    Some(thread) => (
                        convert::key(Some(guild.get()), channel.get(), Some(thread.get())),
                        thread,
                    ),
                    None => (
                        convert::key(Some(guild.get()), channel.get(), None),
                        channel,
                    ),
                },
                _ => return,
            },
        };
        // A bare mention asks what the bot can do.
        let text = if text.is_empty() && msg.attachments.is_empty() {
            "/help".to_string()
        } else {
            text
        };
        let inbound = Inbound {
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
                mentions_bot: mentioned,
            },
            received_at: SystemTime::now(),
        };
        let sink = Arc::new(ChannelSink::new(self.intake.sinks(&ctx.http), reply_in));
        match self.intake.engine.submit(inbound, sink.clone()).await {
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
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let _ = self.bot_id.set(ready.user.id.get());
        tracing::info!(
            shard = ?ready.shard,
            user = %ready.user.name,
            guilds = ready.guilds.len(),
            "discord gateway ready"
        );
        // Once per process; every replica overwriting the same list is harmless.
        if !self.registered.swap(true, Ordering::SeqCst) {
            match commands::register(&ctx.http, self.dev_guild).await {
                Ok(n) => {
                    tracing::info!(commands = n, guild = ?self.dev_guild, "slash commands registered")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "registering slash commands failed");
                    self.registered.store(false, Ordering::SeqCst);
                }
            }
        }
    }

    async fn message(&self, ctx: Context, msg: Message) {
        self.on_message(&ctx, msg).await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Interaction::Command(cmd) = interaction {
            self.intake.command(&ctx.http, Some(&ctx.cache), cmd).await;
        }
    }
}
