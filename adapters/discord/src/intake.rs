//! What the gateway handler and the HTTP interactions endpoint share: where a channel sits
//! (text channel, thread and its owner), the sinks' shared context, and taking a slash
//! command (parse, defer, hand to the engine).
//!
//! No serenity `Context` here: a command may come from the gateway (with serenity's cache) or
//! from an HTTP request (no cache), so everything takes the `Http` client and an optional
//! cache.

use crate::convert::{self, command_from};
use crate::download::Downloader;
use crate::pacer::Pacer;
use crate::sink::{InteractionSink, SinkContext};
use robit_core::Engine;
use robit_types::{Author, Capabilities, EventId, Inbound, ReplySink, UserId};
use serenity::all::{
    Cache, Channel, ChannelId, ChannelType, CommandDataOptionValue, CommandInteraction,
    CreateAllowedMentions, CreateInteractionResponse, CreateInteractionResponseMessage,
    GuildChannel, GuildId, HttpError, PartialChannel,
};
use serenity::http::Http;
use std::sync::Arc;

/// Where a guild message was posted, as far as robit cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Text,
    Thread { parent: u64, owner: Option<u64> },
    Other,
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

    /// Takes one slash command: an ephemeral error if it does not parse, else a deferred
    /// response at once, then the engine with an [`InteractionSink`].
    pub async fn command(&self, http: &Arc<Http>, cache: Option<&Cache>, cmd: CommandInteraction) {
        if cmd.user.bot {
            return;
        }
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
        let key = match cmd.guild_id {
            None => convert::key(None, cmd.channel_id.get(), None),
            Some(guild) => {
                let place = match &cmd.channel {
                    Some(c) => place_of_partial(c),
                    None => self.place(http, cache, guild, cmd.channel_id).await,
                };
                match place {
                    Place::Thread { parent, .. } => {
                        convert::key(Some(guild.get()), parent, Some(cmd.channel_id.get()))
                    }
                    _ => convert::key(Some(guild.get()), cmd.channel_id.get(), None),
                }
            }
        };
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
