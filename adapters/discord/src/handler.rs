//! serenity's event callbacks: READY (who the bot is, slash commands registered), messages,
//! edits of messages and interactions handed to the intake as they come. Transport only: whether an event is
//! for robit, which conversation it belongs to and what the engine gets are decided in
//! `intake.rs`.

use crate::commands;
use crate::intake::Intake;
use async_trait::async_trait;
use serenity::all::{Context, EventHandler, Http, Interaction, Message, MessageUpdateEvent, Ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub(crate) struct Handler {
    intake: Arc<Intake>,
    dev_guild: Option<u64>,
    /// The REST client reopened answers are written through (takeovers, an answer written
    /// again through its slash command's webhook): it learns the application id here, which
    /// interaction webhooks need and serenity sets only on the gateway's own client.
    rest: Arc<Http>,
    bot_id: OnceLock<u64>,
    registered: AtomicBool,
}

impl Handler {
    pub fn new(intake: Arc<Intake>, dev_guild: Option<u64>, rest: Arc<Http>) -> Self {
        Self {
            intake,
            dev_guild,
            rest,
            bot_id: OnceLock::new(),
            registered: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        let _ = self.bot_id.set(ready.user.id.get());
        if self.rest.application_id().is_none() {
            self.rest.set_application_id(ready.application.id);
        }
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
        // Before READY the bot does not know who it is, so it cannot tell a mention.
        let Some(&bot) = self.bot_id.get() else {
            return;
        };
        self.intake
            .message(&ctx.http, Some(&ctx.cache), bot, msg)
            .await;
    }

    async fn message_update(
        &self,
        ctx: Context,
        _old: Option<Message>,
        _new: Option<Message>,
        event: MessageUpdateEvent,
    ) {
        let Some(&bot) = self.bot_id.get() else {
            return;
        };
        self.intake
            .message_update(&ctx.http, Some(&ctx.cache), bot, event)
            .await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Command(cmd) => {
                self.intake.command(&ctx.http, Some(&ctx.cache), cmd).await
            }
            Interaction::Component(click) => {
                self.intake
                    .component(&ctx.http, Some(&ctx.cache), click)
                    .await
            }
            _ => {}
        }
    }
}
