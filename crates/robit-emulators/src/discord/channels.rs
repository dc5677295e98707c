//! The channel and message routes beyond sending and editing: history, deletion, reactions,
//! pins, typing, standalone threads and DM channels, each with the gateway event Discord
//! fires for it.
//!
//! Called from `routes.rs` with the state lock held, so nothing here may await or block.

use super::gateway::{
    self, INTENT_DIRECT_MESSAGES, INTENT_DIRECT_MESSAGE_REACTIONS, INTENT_GUILDS,
    INTENT_GUILD_MESSAGES, INTENT_GUILD_MESSAGE_REACTIONS,
};
use super::payloads;
use super::routes::{unknown_channel, unknown_message, ApiBody, Reply};
use super::state::{Channel, Reaction, State, GUILD_TEXT, PRIVATE_THREAD, PUBLIC_THREAD};
use serde_json::{json, Value};
use std::time::SystemTime;

type RouteResult = Result<Reply, Reply>;

/// Pins per channel (Discord: 50; 250 since 2025 for some channels).
const MAX_PINS: usize = 50;

fn id(s: &str) -> Option<u64> {
    s.parse().ok()
}

fn channel(st: &State, cid: &str) -> Result<Channel, Reply> {
    id(cid)
        .and_then(|c| st.channels.get(&c))
        .cloned()
        .ok_or_else(unknown_channel)
}

fn message_in(st: &State, cid: &str, mid: &str) -> Result<(u64, u64), Reply> {
    let c = channel(st, cid)?;
    let m = id(mid)
        .filter(|m| st.messages.get(m).is_some_and(|m| m.channel_id == c.id))
        .ok_or_else(unknown_message)?;
    Ok((c.id, m))
}

/// Percent-decodes one path segment (emoji arrive URL-encoded).
fn decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn guild_of(st: &State, channel: u64) -> Option<u64> {
    st.channels.get(&channel).and_then(|c| c.guild_id)
}

pub fn typing(st: &mut State, cid: &str) -> RouteResult {
    let c = channel(st, cid)?;
    *st.typing.entry(c.id).or_default() += 1;
    Ok(Reply::no_content())
}

/// `GET /channels/{id}/messages?limit&before&after&around`: newest first, as Discord answers.
pub fn history(st: &mut State, cid: &str, body: &ApiBody<'_>) -> RouteResult {
    let c = channel(st, cid)?;
    let limit = match body.param("limit") {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(Reply::form(payloads::form_error(
                    "limit",
                    "NUMBER_TYPE_MAX",
                    "Int value should be less than or equal to 100.",
                )))
            }
        },
    };
    let param = |k: &str| body.param(k).and_then(|v| v.parse::<u64>().ok());
    // Ids are snowflakes, so id order is time order.
    let mut ids: Vec<u64> = c.messages.clone();
    ids.sort_unstable();
    let picked: Vec<u64> = if let Some(before) = param("before") {
        ids.into_iter()
            .filter(|m| *m < before)
            .rev()
            .take(limit)
            .collect()
    } else if let Some(after) = param("after") {
        let mut v: Vec<u64> = ids.into_iter().filter(|m| *m > after).take(limit).collect();
        v.reverse();
        v
    } else if let Some(around) = param("around") {
        let pos = ids.partition_point(|m| *m < around);
        let start = pos.saturating_sub(limit / 2);
        let mut v: Vec<u64> = ids.into_iter().skip(start).take(limit).collect();
        v.reverse();
        v
    } else {
        ids.into_iter().rev().take(limit).collect()
    };
    let list: Vec<Value> = picked
        .iter()
        .filter_map(|m| st.messages.get(m))
        .map(|m| payloads::message(st, m, false))
        .collect();
    Ok(Reply::ok(json!(list)))
}

/// Removes a message from the model and dispatches MESSAGE_DELETE.
pub fn remove_message(st: &mut State, mid: u64) {
    let Some(m) = st.messages.remove(&mid) else {
        return;
    };
    if let Some(c) = st.channels.get_mut(&m.channel_id) {
        c.messages.retain(|x| *x != mid);
    }
    if let Some(p) = st.pins.get_mut(&m.channel_id) {
        p.retain(|(x, _)| *x != mid);
    }
    let guild = guild_of(st, m.channel_id);
    let mut d = json!({"id": mid.to_string(), "channel_id": m.channel_id.to_string()});
    if let Some(g) = guild {
        d["guild_id"] = json!(g.to_string());
    }
    let intent = if guild.is_some() {
        INTENT_GUILD_MESSAGES
    } else {
        INTENT_DIRECT_MESSAGES
    };
    gateway::dispatch(st, guild, "MESSAGE_DELETE", intent, |_| d.clone());
}

/// Bots may delete their own messages, and others' in guilds (the emulated bot has every
/// permission); never another user's message in a DM.
pub fn delete_message(st: &mut State, cid: &str, mid: &str) -> RouteResult {
    let (c, m) = message_in(st, cid, mid)?;
    if guild_of(st, c).is_none() && st.messages[&m].author_id != st.bot_id {
        return Err(Reply::error(
            403,
            50003,
            "Cannot execute action on a DM channel",
        ));
    }
    remove_message(st, m);
    Ok(Reply::no_content())
}

/// `POST /channels/{id}/threads` (a thread without a starter message). `type` defaults to
/// PRIVATE_THREAD (12), as on Discord.
pub fn create_thread(st: &mut State, cid: &str, body: &Value) -> RouteResult {
    let parent = channel(st, cid)?;
    if parent.kind != GUILD_TEXT {
        return Err(Reply::error(
            400,
            50024,
            "Cannot execute action on this channel type",
        ));
    }
    let name = body["name"].as_str().unwrap_or_default();
    if !(1..=100).contains(&name.chars().count()) {
        return Err(Reply::form(payloads::form_error(
            "name",
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        )));
    }
    let kind = body["type"].as_u64().unwrap_or(u64::from(PRIVATE_THREAD));
    let kind = match u8::try_from(kind) {
        Ok(k @ (PUBLIC_THREAD | PRIVATE_THREAD)) => k,
        _ => {
            return Err(Reply::form(payloads::form_error(
                "type",
                "BASE_TYPE_CHOICES",
                "Value must be one of {11, 12}.",
            )))
        }
    };
    if let Some(d) = body.get("auto_archive_duration").and_then(Value::as_u64) {
        if ![60, 1440, 4320, 10080].contains(&d) {
            return Err(Reply::form(payloads::form_error(
                "auto_archive_duration",
                "BASE_TYPE_CHOICES",
                "Value must be one of {60, 1440, 4320, 10080}.",
            )));
        }
    }
    let bot = st.bot_id;
    let tid = st.add_channel(kind, name, parent.guild_id, Some(parent.id), Some(bot));
    let thread = st.channels[&tid].clone();
    let mut created = payloads::channel(st, &thread);
    created["newly_created"] = json!(true);
    gateway::dispatch(st, parent.guild_id, "THREAD_CREATE", INTENT_GUILDS, |_| {
        created.clone()
    });
    Ok(Reply {
        status: 201,
        body: Some(payloads::channel(st, &thread)),
        bucket: None,
    })
}

/// `POST /users/@me/channels {"recipient_id"}`: the DM channel with a user (made once).
pub fn create_dm(st: &mut State, body: &Value) -> RouteResult {
    let user = body["recipient_id"]
        .as_str()
        .and_then(id)
        .or_else(|| body["recipient_id"].as_u64())
        .filter(|u| st.users.contains_key(u) && *u != st.bot_id)
        .ok_or_else(|| {
            Reply::form(payloads::form_error(
                "recipient_id",
                "NUMBER_TYPE_COERCE",
                "Value is not a known user.",
            ))
        })?;
    let cid = st.dm_channel(user);
    let c = st.channels[&cid].clone();
    Ok(Reply::ok(payloads::channel(st, &c)))
}

fn pinned_messages(st: &State, channel: u64) -> Vec<(u64, SystemTime)> {
    let mut pins = st.pins.get(&channel).cloned().unwrap_or_default();
    pins.reverse();
    pins
}

/// `GET /channels/{id}/pins`: the pinned messages, newest pin first.
pub fn pins_legacy(st: &mut State, cid: &str) -> RouteResult {
    let c = channel(st, cid)?;
    let list: Vec<Value> = pinned_messages(st, c.id)
        .iter()
        .filter_map(|(m, _)| st.messages.get(m))
        .map(|m| payloads::message(st, m, false))
        .collect();
    Ok(Reply::ok(json!(list)))
}

/// `GET /channels/{id}/messages/pins`: `{items: [{pinned_at, message}], has_more}`.
pub fn pins(st: &mut State, cid: &str) -> RouteResult {
    let c = channel(st, cid)?;
    let items: Vec<Value> = pinned_messages(st, c.id)
        .iter()
        .filter_map(|(m, at)| st.messages.get(m).map(|m| (m, at)))
        .map(|(m, at)| {
            json!({"pinned_at": super::state::rfc3339(*at),
                   "message": payloads::message(st, m, false)})
        })
        .collect();
    Ok(Reply::ok(json!({"items": items, "has_more": false})))
}

/// Pins or unpins; fires CHANNEL_PINS_UPDATE and MESSAGE_UPDATE (the `pinned` field).
pub fn pin(st: &mut State, cid: &str, mid: &str, on: bool) -> RouteResult {
    let (c, m) = message_in(st, cid, mid)?;
    let pins = st.pins.entry(c).or_default();
    let had = pins.iter().any(|(x, _)| *x == m);
    if on && !had {
        if pins.len() >= MAX_PINS {
            return Err(Reply::error(
                400,
                30003,
                "Maximum number of pins reached (50)",
            ));
        }
        pins.push((m, SystemTime::now()));
    } else if !on {
        pins.retain(|(x, _)| *x != m);
    }
    if had == on {
        return Ok(Reply::no_content());
    }
    let last = pins.last().map(|(_, at)| super::state::rfc3339(*at));
    if let Some(msg) = st.messages.get_mut(&m) {
        msg.pinned = on;
    }
    let guild = guild_of(st, c);
    let mut d = json!({"channel_id": c.to_string(), "last_pin_timestamp": last});
    if let Some(g) = guild {
        d["guild_id"] = json!(g.to_string());
    }
    let intent = if guild.is_some() {
        INTENT_GUILDS
    } else {
        INTENT_DIRECT_MESSAGES
    };
    gateway::dispatch(st, guild, "CHANNEL_PINS_UPDATE", intent, |_| d.clone());
    gateway::dispatch_message(st, m, "MESSAGE_UPDATE");
    Ok(Reply::no_content())
}

/// `…/reactions/{emoji}/@me` (PUT, DELETE), `…/reactions/{emoji}/{user}` (DELETE),
/// `…/reactions/{emoji}` (GET users, DELETE all of one emoji), `…/reactions` (DELETE all).
pub fn reactions(
    st: &mut State,
    method: &str,
    cid: &str,
    mid: &str,
    rest: &[&str],
    body: &ApiBody<'_>,
) -> RouteResult {
    let (c, m) = message_in(st, cid, mid)?;
    let bot = st.bot_id;
    let emoji = rest.first().map(|e| decode(e));
    if emoji.as_deref().is_some_and(|e| e.is_empty()) {
        return Err(Reply::error(400, 10014, "Unknown Emoji"));
    }
    match (method, emoji, rest.get(1).copied()) {
        ("PUT", Some(e), Some("@me")) => {
            react(st, c, m, bot, &e, true);
            Ok(Reply::no_content())
        }
        ("DELETE", Some(e), Some(who)) => {
            let user = if who == "@me" {
                bot
            } else {
                id(who).ok_or_else(|| Reply::error(404, 10013, "Unknown User"))?
            };
            react(st, c, m, user, &e, false);
            Ok(Reply::no_content())
        }
        ("GET", Some(e), None) => {
            let limit = body
                .param("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(25)
                .clamp(1, 100);
            let users: Vec<Value> = st.messages[&m]
                .reactions
                .iter()
                .find(|r| r.emoji == e)
                .map(|r| r.users.clone())
                .unwrap_or_default()
                .iter()
                .take(limit)
                .filter_map(|u| st.users.get(u))
                .map(payloads::user)
                .collect();
            Ok(Reply::ok(json!(users)))
        }
        ("DELETE", e, None) => {
            if let Some(msg) = st.messages.get_mut(&m) {
                match &e {
                    Some(e) => msg.reactions.retain(|r| &r.emoji != e),
                    None => msg.reactions.clear(),
                }
            }
            Ok(Reply::no_content())
        }
        _ => Err(Reply::error(405, 0, "405: Method Not Allowed")),
    }
}

/// Adds or removes `user`'s reaction and fires MESSAGE_REACTION_ADD / _REMOVE when it
/// changed anything.
pub fn react(st: &mut State, channel: u64, message: u64, user: u64, emoji: &str, add: bool) {
    let Some(msg) = st.messages.get_mut(&message) else {
        return;
    };
    let author = msg.author_id;
    let changed = match msg.reactions.iter_mut().find(|r| r.emoji == emoji) {
        Some(r) if add => {
            let new = !r.users.contains(&user);
            if new {
                r.users.push(user);
            }
            new
        }
        Some(r) => {
            let before = r.users.len();
            r.users.retain(|u| *u != user);
            r.users.len() != before
        }
        None if add => {
            msg.reactions.push(Reaction {
                emoji: emoji.to_string(),
                users: vec![user],
            });
            true
        }
        None => false,
    };
    msg.reactions.retain(|r| !r.users.is_empty());
    if !changed {
        return;
    }
    let guild = guild_of(st, channel);
    let mut d = json!({
        "user_id": user.to_string(),
        "channel_id": channel.to_string(),
        "message_id": message.to_string(),
        "emoji": payloads::emoji(emoji),
        "burst": false,
        "type": 0,
    });
    if add {
        d["message_author_id"] = json!(author.to_string());
        d["burst_colors"] = json!([]);
    }
    if let Some(g) = guild {
        d["guild_id"] = json!(g.to_string());
        if add {
            if let Some(u) = st.users.get(&user) {
                d["member"] = json!({"user": payloads::user(u), "roles": [],
                    "joined_at": super::state::rfc3339(SystemTime::now()),
                    "deaf": false, "mute": false, "flags": 0});
            }
        }
    }
    let intent = if guild.is_some() {
        INTENT_GUILD_MESSAGE_REACTIONS
    } else {
        INTENT_DIRECT_MESSAGE_REACTIONS
    };
    let t = if add {
        "MESSAGE_REACTION_ADD"
    } else {
        "MESSAGE_REACTION_REMOVE"
    };
    gateway::dispatch(st, guild, t, intent, |_| d.clone());
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(super::decode("%F0%9F%91%8D"), "👍");
        assert_eq!(super::decode("blob:123"), "blob:123");
        assert_eq!(super::decode("a%2"), "a%2");
    }
}
