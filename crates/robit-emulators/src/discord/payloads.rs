//! Discord JSON shapes built from the emulator's model: users, messages, channels, guilds,
//! interactions, READY.
//!
//! Serenity drops a dispatch whose `d` misses a field it requires (it becomes
//! `Event::Unknown`, silently), so these shapes carry every field the real API sends that
//! serenity needs; the adapter's tests deserialize them with serenity's own types to keep them
//! honest. This file only builds values: no locking, no I/O.

use super::state::{rfc3339, Channel, Guild, Interaction, Message, State, User, DM};
use serde_json::{json, Value};

pub fn user(u: &User) -> Value {
    json!({
        "id": u.id.to_string(),
        "username": u.name,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": u.bot,
        "public_flags": 0,
    })
}

fn user_by_id(state: &State, id: u64) -> Value {
    match state.users.get(&id) {
        Some(u) => user(u),
        None => json!({"id": id.to_string(), "username": "unknown", "discriminator": "0"}),
    }
}

/// A partial member, as it rides along a guild MESSAGE_CREATE.
fn partial_member(joined: &str) -> Value {
    json!({
        "roles": [],
        "joined_at": joined,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "premium_since": null,
        "pending": false,
        "nick": null,
        "avatar": null,
        "communication_disabled_until": null,
    })
}

/// A message as REST returns it; `gateway` adds `guild_id` and `member`, as dispatches do.
pub fn message(state: &State, m: &Message, gateway: bool) -> Value {
    message_inner(state, m, gateway, true)
}

/// `with_reference`: whether to embed the replied-to message (Discord nests it one level).
fn message_inner(state: &State, m: &Message, gateway: bool, with_reference: bool) -> Value {
    let guild_id = state.channels.get(&m.channel_id).and_then(|c| c.guild_id);
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| {
            let url = format!(
                "{}/attachments/{}/{}/{}",
                state.base_url, m.channel_id, a.id, a.filename
            );
            json!({
                "id": a.id.to_string(),
                "filename": a.filename,
                "size": a.data.len(),
                "url": url,
                "proxy_url": url,
                "content_type": a.content_type,
            })
        })
        .collect();
    let reactions: Vec<Value> = m
        .reactions
        .iter()
        .filter(|r| !r.users.is_empty())
        .map(|r| {
            json!({
                "count": r.users.len(),
                "count_details": {"burst": 0, "normal": r.users.len()},
                "me": r.users.contains(&state.bot_id),
                "me_burst": false,
                "burst_colors": [],
                "emoji": emoji(&r.emoji),
            })
        })
        .collect();
    let kind = if m.reference.is_some() {
        19
    } else if m
        .interaction_id
        .and_then(|i| state.interactions.get(&i))
        .is_some_and(|i| i.kind == 2)
    {
        20
    } else {
        0
    };
    let mut v = json!({
        "id": m.id.to_string(),
        "channel_id": m.channel_id.to_string(),
        "author": user_by_id(state, m.author_id),
        "content": m.content,
        "timestamp": rfc3339(m.created),
        "edited_timestamp": m.edited.map(rfc3339),
        "tts": false,
        "mention_everyone": m.mention_everyone,
        "mentions": m.mentions.iter().map(|u| user_by_id(state, *u)).collect::<Vec<_>>(),
        "mention_roles": [],
        "attachments": attachments,
        "embeds": m.embeds,
        "components": m.components,
        "pinned": m.pinned,
        "type": kind,
        "flags": m.flags,
    });
    if !reactions.is_empty() {
        v["reactions"] = json!(reactions);
    }
    if !m.sticker_ids.is_empty() {
        v["sticker_items"] = json!(m
            .sticker_ids
            .iter()
            .map(|id| json!({"id": id, "name": "sticker", "format_type": 1}))
            .collect::<Vec<_>>());
    }
    if let Some(r) = m.reference {
        let mut reference = json!({"type": 0, "message_id": r.to_string(),
                                   "channel_id": m.channel_id.to_string()});
        if let Some(g) = guild_id {
            reference["guild_id"] = json!(g.to_string());
        }
        v["message_reference"] = reference;
        // Discord nests the replied-to message one level deep (null once it was deleted).
        v["referenced_message"] = match state.messages.get(&r) {
            Some(rm) if with_reference => message_inner(state, rm, false, false),
            _ => Value::Null,
        };
    }
    if let Some(w) = m.webhook_id {
        v["webhook_id"] = json!(w.to_string());
        v["application_id"] = json!(state.application_id.to_string());
    }
    if let Some(i) = m.interaction_id.and_then(|i| state.interactions.get(&i)) {
        let mut meta = json!({
            "id": i.id.to_string(),
            "type": i.kind,
            "user": user_by_id(state, i.user_id),
            "authorizing_integration_owners": {},
        });
        if let Some(source) = i.message_id {
            meta["interacted_message_id"] = json!(source.to_string());
        }
        v["interaction_metadata"] = meta;
    }
    if let Some(n) = &m.nonce {
        v["nonce"] = json!(n);
    }
    if let Some(t) = m.thread_id.and_then(|t| state.channels.get(&t)) {
        v["thread"] = channel(state, t);
    }
    if gateway {
        if let Some(g) = guild_id {
            v["guild_id"] = json!(g.to_string());
            // Webhook messages (interaction responses) carry no member.
            if m.webhook_id.is_none() {
                v["member"] = partial_member(&rfc3339(m.created));
            }
        }
    }
    v
}

/// An emoji object from its URL form: `name` (unicode) or `name:id` (custom).
pub fn emoji(key: &str) -> Value {
    match key.rsplit_once(':') {
        Some((name, id)) if id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty() => {
            json!({"id": id, "name": name, "animated": false})
        }
        _ => json!({"id": null, "name": key}),
    }
}

pub fn channel(state: &State, c: &Channel) -> Value {
    let last = c.messages.last().map(|m| m.to_string());
    if c.kind == DM {
        let recipients: Vec<Value> = c.recipient.iter().map(|u| user_by_id(state, *u)).collect();
        return json!({
            "id": c.id.to_string(),
            "type": DM,
            "last_message_id": last,
            "recipients": recipients,
            "flags": 0,
        });
    }
    let mut v = json!({
        "id": c.id.to_string(),
        "type": c.kind,
        "guild_id": c.guild_id.map(|g| g.to_string()),
        "name": c.name,
        "last_message_id": last,
        "rate_limit_per_user": 0,
        "flags": 0,
        "nsfw": false,
        "parent_id": c.parent_id.map(|p| p.to_string()),
    });
    if c.is_thread() {
        v["owner_id"] = json!(c.owner_id.map(|o| o.to_string()));
        v["message_count"] = json!(c.messages.len());
        v["total_message_sent"] = json!(c.messages.len());
        v["member_count"] = json!(1);
        v["thread_metadata"] = json!({
            "archived": false,
            "auto_archive_duration": 1440,
            "archive_timestamp": rfc3339(c.created),
            "locked": false,
            "create_timestamp": rfc3339(c.created),
        });
    } else {
        v["position"] = json!(0);
        v["permission_overwrites"] = json!([]);
        v["topic"] = Value::Null;
    }
    v
}

/// A full guild for GUILD_CREATE: its channels, active threads, one `@everyone` role and the
/// bot as a member.
pub fn guild(state: &State, g: &Guild) -> Value {
    let joined = rfc3339(g.joined_at);
    let mut channels = Vec::new();
    let mut threads = Vec::new();
    let mut ids: Vec<&Channel> = state
        .channels
        .values()
        .filter(|c| c.guild_id == Some(g.id))
        .collect();
    ids.sort_by_key(|c| c.id);
    for c in ids {
        if c.is_thread() {
            threads.push(channel(state, c));
        } else {
            channels.push(channel(state, c));
        }
    }
    let mut bot_member = partial_member(&joined);
    bot_member["user"] = user_by_id(state, state.bot_id);
    let mut v = json!({
        "id": g.id.to_string(),
        "name": g.name,
        "icon": null,
        "icon_hash": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": g.owner_id.to_string(),
        "afk_channel_id": null,
        "afk_timeout": 300,
        "widget_enabled": false,
        "widget_channel_id": null,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [{
            "id": g.id.to_string(),
            "name": "@everyone",
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": 0,
            "permissions": "2248473465835073",
            "managed": false,
            "mentionable": false,
            "flags": 0,
        }],
        "emojis": [],
        "features": [],
    });
    let more = json!({
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "max_presences": null,
        "max_members": 500000,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
        "incidents_data": null,
        "joined_at": joined,
        "large": false,
        "unavailable": false,
        "member_count": 2,
        "voice_states": [],
        "members": [bot_member],
        "channels": channels,
        "threads": threads,
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    });
    if let (Some(v), Value::Object(more)) = (v.as_object_mut(), more) {
        v.extend(more);
    }
    v
}

/// An APPLICATION_COMMAND interaction (type 2) as INTERACTION_CREATE carries it.
pub fn interaction(state: &State, i: &Interaction, options: &[(String, String)]) -> Value {
    let options: Vec<Value> = options
        .iter()
        .map(|(n, v)| json!({"name": n, "type": 3, "value": v}))
        .collect();
    let mut data = json!({
        "id": command_id(state, &i.name),
        "name": i.name,
        "type": 1,
        "options": options,
    });
    // A guild command's data names the guild it is registered in (discord.py looks it up
    // there first).
    if let Some(g) = i.guild_id.filter(|g| {
        state
            .guild_commands
            .get(g)
            .is_some_and(|cmds| cmds.iter().any(|c| c["name"] == i.name))
    }) {
        data["guild_id"] = json!(g.to_string());
    }
    interaction_with(state, i, data)
}

/// A MESSAGE_COMPONENT interaction (type 3): a button press or a select-menu choice on
/// `message`. `data` is `{custom_id, component_type, values?}`.
pub fn component_interaction(
    state: &State,
    i: &Interaction,
    message: &Message,
    data: Value,
) -> Value {
    let mut v = interaction_with(state, i, data);
    v["message"] = self::message(state, message, false);
    v
}

fn interaction_with(state: &State, i: &Interaction, data: Value) -> Value {
    let mut v = json!({
        "id": i.id.to_string(),
        "application_id": state.application_id.to_string(),
        "type": i.kind,
        "token": i.token,
        "version": 1,
        "channel_id": i.channel_id.to_string(),
        "data": data,
        "app_permissions": "2248473465835073",
        "locale": "en-US",
        "entitlements": [],
        "context": if i.guild_id.is_some() { 0 } else { 1 },
        "attachment_size_limit": 8_388_608,
    });
    if let Some(c) = state.channels.get(&i.channel_id) {
        v["channel"] = channel(state, c);
    }
    match i.guild_id {
        Some(g) => {
            let mut member = partial_member(&rfc3339(std::time::SystemTime::now()));
            member["user"] = user_by_id(state, i.user_id);
            member["permissions"] = json!("2248473465835073");
            v["member"] = member;
            v["guild_id"] = json!(g.to_string());
            v["guild_locale"] = json!("en-US");
            v["authorizing_integration_owners"] = json!({"0": g.to_string()});
        }
        None => {
            v["user"] = user_by_id(state, i.user_id);
            v["authorizing_integration_owners"] = json!({"1": i.user_id.to_string()});
        }
    }
    v
}

/// The id the bot registered for command `name`, or a stable made-up one.
fn command_id(state: &State, name: &str) -> String {
    state
        .global_commands
        .iter()
        .chain(state.guild_commands.values().flatten())
        .find(|c| c["name"] == name)
        .and_then(|c| c["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| "1".to_string())
}

pub fn ready(state: &State, session_id: &str, shard: (u32, u32), guilds: &[u64]) -> Value {
    let guilds: Vec<Value> = guilds
        .iter()
        .map(|g| json!({"id": g.to_string(), "unavailable": true}))
        .collect();
    let bot = state
        .users
        .get(&state.bot_id)
        .map(user)
        .unwrap_or(Value::Null);
    json!({
        "v": 10,
        "user": bot,
        "guilds": guilds,
        "session_id": session_id,
        "resume_gateway_url": super::gateway::ws_url(&state.base_url),
        "shard": [shard.0, shard.1],
        "application": {"id": state.application_id.to_string(), "flags": 0},
    })
}

/// The application object of `GET /oauth2/applications/@me` (what discord.py reads at login).
pub fn application(state: &State) -> Value {
    let bot = state
        .users
        .get(&state.bot_id)
        .map(user)
        .unwrap_or(Value::Null);
    let owner = state
        .guilds
        .values()
        .next()
        .map(|g| user_by_id(state, g.owner_id))
        .unwrap_or_else(|| bot.clone());
    json!({
        "id": state.application_id.to_string(),
        "name": state.config.bot_name,
        "icon": null,
        "description": "",
        "summary": "",
        "type": null,
        "bot": bot,
        "bot_public": true,
        "bot_require_code_grant": false,
        "verify_key": hex::encode(state.signing_key.verifying_key().to_bytes()),
        "owner": owner,
        "team": null,
        "flags": 0,
        "hook": true,
        "is_monetized": false,
        "is_verified": false,
        "is_discoverable": false,
        "interactions_endpoint_url": state.interactions_url,
        "redirect_uris": [],
        "tags": [],
        "approximate_guild_count": state.guilds.len(),
        "integration_types_config": {"0": {}},
    })
}

/// Discord's error body: `{"code", "message"}` and, for form errors, `errors`.
pub fn error(code: u32, message: &str) -> Value {
    json!({"code": code, "message": message})
}

/// 50035 with one field error, the shape of every "Invalid Form Body".
pub fn form_error(field: &str, code: &str, message: &str) -> Value {
    json!({
        "code": 50035,
        "message": "Invalid Form Body",
        "errors": {field: {"_errors": [{"code": code, "message": message}]}},
    })
}
