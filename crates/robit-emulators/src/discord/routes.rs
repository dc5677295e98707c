//! One function per Discord REST route the emulator serves, working on the locked [`State`]:
//! validation with Discord's error codes, the per-channel / per-webhook message buckets, the
//! model update, and the gateway dispatches the real API would fire.
//!
//! Called by `rest.rs` with the state lock held, so a route must not await or block.

use super::channels;
use super::content::{empty_message, MessageInput};
use super::gateway::{self, INTENT_GUILDS};
use super::payloads;
use super::rest::{rate_limited, FilePart};
use super::state::{
    BucketState, Interaction, State, StoredAttachment, FLAG_EPHEMERAL, FLAG_LOADING, GUILD_TEXT,
    PUBLIC_THREAD,
};
use serde_json::{json, Value};
use std::time::{Instant, SystemTime};

pub struct ApiBody<'a> {
    pub json: &'a Value,
    pub files: &'a [FilePart],
    /// The raw query string (`""` when there is none).
    pub query: &'a str,
}

impl ApiBody<'_> {
    /// A query parameter's value, if present.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .trim_start_matches('?')
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// What a route answers: status, optional JSON body, and the rate-limit bucket it counted
/// against (for the `X-RateLimit-*` headers).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub bucket: Option<(BucketState, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body: Some(body),
            bucket: None,
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            bucket: None,
        }
    }

    /// A 400 "Invalid Form Body" (code 50035) with its `errors` tree.
    pub fn form(body: Value) -> Self {
        Self {
            status: 400,
            body: Some(body),
            bucket: None,
        }
    }

    pub fn error(status: u16, code: u32, message: &str) -> Self {
        Self {
            status,
            body: Some(payloads::error(code, message)),
            bucket: None,
        }
    }

    pub fn with_bucket(mut self, bucket: Option<(BucketState, String)>) -> Self {
        self.bucket = bucket;
        self
    }
}

type RouteResult = Result<Reply, Reply>;

pub fn unknown_channel() -> Reply {
    Reply::error(404, 10003, "Unknown Channel")
}

pub fn unknown_message() -> Reply {
    Reply::error(404, 10008, "Unknown Message")
}

fn unknown_webhook() -> Reply {
    Reply::error(404, 10015, "Unknown Webhook")
}

pub fn route(
    st: &mut State,
    method: &str,
    segments: &[&str],
    body: ApiBody<'_>,
    authorized: bool,
) -> Reply {
    // Interaction callbacks and webhooks authenticate by their token, not the bot token.
    let token_route = matches!(segments.first(), Some(&"interactions") | Some(&"webhooks"));
    if !token_route && !authorized {
        return Reply::error(401, 0, "401: Unauthorized");
    }
    route_inner(st, method, segments, body).unwrap_or_else(|e| e)
}

fn route_inner(st: &mut State, method: &str, segments: &[&str], body: ApiBody<'_>) -> RouteResult {
    match (method, segments) {
        ("GET", ["gateway"]) => Ok(Reply::ok(json!({"url": gateway::ws_url(&st.base_url)}))),
        ("GET", ["gateway", "bot"]) => Ok(Reply::ok(json!({
            "url": gateway::ws_url(&st.base_url),
            "shards": 1,
            "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1,
            },
        }))),
        ("GET", ["users", "@me"]) => {
            let mut me = st
                .users
                .get(&st.bot_id)
                .map(payloads::user)
                .unwrap_or(Value::Null);
            me["verified"] = json!(true);
            me["mfa_enabled"] = json!(false);
            me["flags"] = json!(0);
            Ok(Reply::ok(me))
        }
        ("GET", ["oauth2", "applications", "@me"]) | ("GET", ["applications", "@me"]) => {
            Ok(Reply::ok(payloads::application(st)))
        }
        ("GET", ["users", uid]) => {
            let u = id(uid)
                .and_then(|u| st.users.get(&u))
                .ok_or_else(|| Reply::error(404, 10013, "Unknown User"))?;
            Ok(Reply::ok(payloads::user(u)))
        }
        ("POST", ["users", "@me", "channels"]) => channels::create_dm(st, body.json),
        ("PUT", ["applications", app, "commands"]) => put_commands(st, app, None, body.json),
        ("PUT", ["applications", app, "guilds", guild, "commands"]) => {
            put_commands(st, app, Some(guild), body.json)
        }
        ("GET", ["applications", _app, "commands"]) => Ok(Reply::ok(json!(st.global_commands))),
        ("POST", ["interactions", id, token, "callback"]) => callback(st, id, token, &body),
        ("POST", ["webhooks", app, token]) => followup(st, app, token, &body),
        (m, ["webhooks", app, token, "messages", id]) => {
            webhook_message(st, m, app, token, id, &body)
        }
        ("GET", ["channels", cid]) => {
            let c = channel(st, cid)?;
            Ok(Reply::ok(payloads::channel(st, &c)))
        }
        ("POST", ["channels", cid, "typing"]) => channels::typing(st, cid),
        ("POST", ["channels", cid, "messages"]) => create_message(st, cid, &body),
        ("GET", ["channels", cid, "messages"]) => channels::history(st, cid, &body),
        ("POST", ["channels", cid, "threads"]) => channels::create_thread(st, cid, body.json),
        ("PUT", ["channels", cid, "thread-members", "@me"])
        | ("DELETE", ["channels", cid, "thread-members", "@me"]) => {
            channel(st, cid).map(|_| Reply::no_content())
        }
        ("GET", ["channels", cid, "pins"]) => channels::pins_legacy(st, cid),
        ("GET", ["channels", cid, "messages", "pins"]) => channels::pins(st, cid),
        ("PUT", ["channels", cid, "pins", mid])
        | ("PUT", ["channels", cid, "messages", "pins", mid]) => channels::pin(st, cid, mid, true),
        ("DELETE", ["channels", cid, "pins", mid])
        | ("DELETE", ["channels", cid, "messages", "pins", mid]) => {
            channels::pin(st, cid, mid, false)
        }
        (m, ["channels", cid, "messages", mid, "reactions", rest @ ..]) => {
            channels::reactions(st, m, cid, mid, rest, &body)
        }
        ("DELETE", ["channels", cid, "messages", mid]) => channels::delete_message(st, cid, mid),
        ("GET", ["channels", cid, "messages", mid]) => {
            let (_, m) = message_in(st, cid, mid)?;
            let m = st.messages[&m].clone();
            Ok(Reply::ok(payloads::message(st, &m, false)))
        }
        ("PATCH", ["channels", cid, "messages", mid]) => edit_channel_message(st, cid, mid, &body),
        ("POST", ["channels", cid, "messages", mid, "threads"]) => {
            thread_from_message(st, cid, mid, body.json)
        }
        _ => Err(Reply::error(404, 0, "404: Not Found")),
    }
}

fn id(s: &str) -> Option<u64> {
    s.parse().ok()
}

fn channel(st: &State, cid: &str) -> Result<super::state::Channel, Reply> {
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

/// Counts a request against a message bucket; a 429 if it is spent.
fn charge(st: &mut State, key: String) -> Result<Option<(BucketState, String)>, Reply> {
    let bucket = st.hit_bucket(&key);
    if bucket.limited.is_some() {
        return Err(rate_limited(bucket, &key));
    }
    Ok(Some((bucket, key)))
}

/// `@everyone` resolves only if `allowed_mentions` lets it (absent means the default: all).
fn everyone_allowed(body: &Value) -> bool {
    match body.get("allowed_mentions") {
        None | Some(Value::Null) => true,
        Some(am) => am["parse"]
            .as_array()
            .is_some_and(|p| p.iter().any(|v| v == "everyone")),
    }
}

fn attachments(st: &mut State, files: &[FilePart]) -> Vec<StoredAttachment> {
    files
        .iter()
        .filter(|f| f.field.starts_with("files["))
        .map(|f| StoredAttachment {
            id: st.next_id(),
            filename: f.filename.clone(),
            content_type: f.content_type.clone(),
            data: f.data.clone(),
        })
        .collect()
}

fn create_message(st: &mut State, cid: &str, body: &ApiBody<'_>) -> RouteResult {
    let c = channel(st, cid)?;
    let bucket = charge(st, format!("channel:{}", c.id))?;
    let input = MessageInput::parse(body.json).map_err(|e| e.with_bucket(bucket.clone()))?;
    if input.is_empty(body.files.len()) {
        return Err(empty_message().with_bucket(bucket));
    }
    let reference = match input.reference {
        Some((r, fail)) => {
            let known = st.messages.get(&r).is_some_and(|m| m.channel_id == c.id);
            if !known && fail {
                return Err(Reply::form(payloads::form_error(
                    "message_reference",
                    "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                    "Unknown message",
                ))
                .with_bucket(bucket));
            }
            known.then_some(r)
        }
        None => None,
    };
    // With `enforce_nonce`, a retried create returns the message the first try made.
    let nonce = body.json["nonce"].as_str().map(str::to_string);
    if let (Some(n), Some(true)) = (&nonce, body.json["enforce_nonce"].as_bool()) {
        if let Some(m) = c
            .messages
            .iter()
            .filter_map(|m| st.messages.get(m))
            .find(|m| m.nonce.as_ref() == Some(n) && m.author_id == st.bot_id)
        {
            let m = m.clone();
            return Ok(Reply::ok(payloads::message(st, &m, false)).with_bucket(bucket));
        }
    }
    let everyone = everyone_allowed(body.json);
    let bot = st.bot_id;
    let content = input.content.clone().unwrap_or_default();
    let mid = st.create_message(c.id, bot, &content, everyone);
    let files = attachments(st, body.files);
    if let Some(m) = st.messages.get_mut(&mid) {
        m.attachments = files;
        m.nonce = nonce;
        m.reference = reference;
        input.fill(m);
    }
    gateway::dispatch_message(st, mid, "MESSAGE_CREATE");
    let m = st.messages[&mid].clone();
    Ok(Reply::ok(payloads::message(st, &m, false)).with_bucket(bucket))
}

/// Applies an edit body (content, new files) to a stored message.
fn apply_edit(st: &mut State, mid: u64, body: &ApiBody<'_>) -> Result<(), Reply> {
    apply_edit_json(st, mid, body.json, body.files)
}

/// Applies an edit (`json` is the message fields: a PATCH body, or a callback's `data`).
fn apply_edit_json(
    st: &mut State,
    mid: u64,
    json: &Value,
    files: &[FilePart],
) -> Result<(), Reply> {
    let input = MessageInput::parse(json)?;
    let content = input.content.as_deref();
    let everyone = everyone_allowed(json);
    let mentions = content.map(super::state::parse_mentions);
    let new_files = attachments(st, files);
    let m = st.messages.get_mut(&mid).ok_or_else(unknown_message)?;
    input.edit(m, new_files.len())?;
    if let Some(c) = content {
        m.mention_everyone = everyone && (c.contains("@everyone") || c.contains("@here"));
    }
    if let Some(mentions) = mentions {
        m.mentions = mentions;
    }
    m.attachments.extend(new_files);
    m.flags &= !FLAG_LOADING;
    m.edits += 1;
    m.edited = Some(SystemTime::now());
    gateway::dispatch_message(st, mid, "MESSAGE_UPDATE");
    Ok(())
}

fn edit_channel_message(st: &mut State, cid: &str, mid: &str, body: &ApiBody<'_>) -> RouteResult {
    let (c, m) = message_in(st, cid, mid)?;
    let bucket = charge(st, format!("channel:{c}"))?;
    if st.messages[&m].author_id != st.bot_id {
        return Err(
            Reply::error(403, 50005, "Cannot edit a message authored by another user")
                .with_bucket(bucket),
        );
    }
    apply_edit(st, m, body).map_err(|e| e.with_bucket(bucket.clone()))?;
    let m = st.messages[&m].clone();
    Ok(Reply::ok(payloads::message(st, &m, false)).with_bucket(bucket))
}

fn thread_from_message(st: &mut State, cid: &str, mid: &str, body: &Value) -> RouteResult {
    let (c, m) = message_in(st, cid, mid)?;
    let parent = st.channels[&c].clone();
    if parent.kind != GUILD_TEXT {
        return Err(Reply::error(
            400,
            50024,
            "Cannot execute action on this channel type",
        ));
    }
    if st.messages[&m].thread_id.is_some() {
        return Err(Reply::error(
            400,
            160_004,
            "A thread has already been created for this message",
        ));
    }
    let name = body["name"].as_str().unwrap_or_default();
    let len = name.chars().count();
    if !(1..=100).contains(&len) {
        return Err(Reply {
            status: 400,
            body: Some(payloads::form_error(
                "name",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )),
            bucket: None,
        });
    }
    // "The id of the created thread will be the same as the id of the source message."
    let bot = st.bot_id;
    st.insert_channel(m, PUBLIC_THREAD, name, parent.guild_id, Some(c), Some(bot));
    if let Some(msg) = st.messages.get_mut(&m) {
        msg.thread_id = Some(m);
    }
    let thread = st.channels[&m].clone();
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

fn put_commands(st: &mut State, app: &str, guild: Option<&str>, body: &Value) -> RouteResult {
    if id(app) != Some(st.application_id) {
        return Err(Reply::error(403, 50001, "Missing Access"));
    }
    let guild_id = match guild {
        Some(g) => Some(
            id(g)
                .filter(|g| st.guilds.contains_key(g))
                .ok_or_else(|| Reply::error(404, 10004, "Unknown Guild"))?,
        ),
        None => None,
    };
    let Some(list) = body.as_array() else {
        return Err(Reply::error(
            400,
            50109,
            "The request body contains invalid JSON.",
        ));
    };
    if list.len() > 100 {
        return Err(Reply::error(
            400,
            30032,
            "Maximum number of application commands reached (100)",
        ));
    }
    let existing = match guild_id {
        Some(g) => st.guild_commands.get(&g).cloned().unwrap_or_default(),
        None => st.global_commands.clone(),
    };
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        let desc = c["description"].as_str().unwrap_or_default();
        let name_ok = (1..=32).contains(&name.chars().count())
            && name
                .chars()
                .all(|ch| ch.is_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_');
        if !name_ok || !(1..=100).contains(&desc.chars().count()) {
            return Err(Reply {
                status: 400,
                body: Some(payloads::form_error(
                    &i.to_string(),
                    "APPLICATION_COMMAND_INVALID",
                    "Invalid application command",
                )),
                bucket: None,
            });
        }
        // Overwriting keeps the id of a command with the same name, as Discord does.
        let cmd_id = existing
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| st.next_id().to_string());
        let mut cmd = json!({
            "id": cmd_id,
            "type": c.get("type").cloned().unwrap_or(json!(1)),
            "application_id": st.application_id.to_string(),
            "name": name,
            "description": desc,
            "options": c.get("options").cloned().unwrap_or(json!([])),
            "default_member_permissions": null,
            "dm_permission": true,
            "nsfw": false,
            "version": st.next_id().to_string(),
        });
        if let Some(g) = guild_id {
            cmd["guild_id"] = json!(g.to_string());
        }
        out.push(cmd);
    }
    match guild_id {
        Some(g) => {
            st.guild_commands.insert(g, out.clone());
        }
        None => st.global_commands = out.clone(),
    }
    Ok(Reply::ok(json!(out)))
}

fn interaction_by_token(st: &State, app: &str, token: &str) -> Result<Interaction, Reply> {
    if id(app) != Some(st.application_id) {
        return Err(unknown_webhook());
    }
    let i = st
        .interactions
        .values()
        .find(|i| i.token == token)
        .cloned()
        .ok_or_else(unknown_webhook)?;
    if i.created.elapsed() > st.config.interaction_token_lifetime {
        return Err(Reply::error(401, 50027, "Invalid Webhook Token"));
    }
    Ok(i)
}

fn callback(st: &mut State, iid: &str, token: &str, body: &ApiBody<'_>) -> RouteResult {
    let unknown = || Reply::error(404, 10062, "Unknown interaction");
    let i = id(iid)
        .and_then(|i| st.interactions.get(&i))
        .filter(|i| i.token == token)
        .cloned()
        .ok_or_else(unknown)?;
    if i.response_type.is_some() {
        return Err(Reply::error(
            400,
            40060,
            "Interaction has already been acknowledged.",
        ));
    }
    // Past the deadline the token is dead, and Discord no longer knows the interaction.
    if i.created.elapsed() > st.config.interaction_deadline {
        return Err(unknown());
    }
    let kind = body.json["type"].as_u64().unwrap_or(0) as u8;
    let data = &body.json["data"];
    let flags = data["flags"].as_u64().unwrap_or(0);
    let not_valid = || {
        Reply::error(
            400,
            40_004,
            "Interaction response type not valid for this interaction",
        )
    };
    // The message the response made or changed, and whether it is a "thinking" placeholder.
    let (message, loading) = match kind {
        4 | 5 => {
            let (input, loading) = if kind == 4 {
                let input = MessageInput::parse(data)?;
                if input.is_empty(body.files.len()) {
                    return Err(empty_message());
                }
                (input, false)
            } else {
                if flags & !FLAG_EPHEMERAL != 0 {
                    return Err(Reply::form(payloads::form_error(
                        "data.flags",
                        "INTERACTION_RESPONSE_FLAGS_INVALID",
                        "Only EPHEMERAL may be set on a deferred response",
                    )));
                }
                (MessageInput::default(), true)
            };
            let everyone = everyone_allowed(data);
            let bot = st.bot_id;
            let content = input.content.clone().unwrap_or_default();
            let mid = st.create_message(i.channel_id, bot, &content, everyone);
            let files = attachments(st, body.files);
            let app = st.application_id;
            if let Some(m) = st.messages.get_mut(&mid) {
                m.attachments = files;
                m.webhook_id = Some(app);
                m.interaction_id = Some(i.id);
                input.fill(m);
                m.flags |= (flags & FLAG_EPHEMERAL) | if loading { FLAG_LOADING } else { 0 };
            }
            if flags & FLAG_EPHEMERAL != 0 {
                // Only the invoking user sees an ephemeral reply: it is not part of the channel.
                if let Some(c) = st.channels.get_mut(&i.channel_id) {
                    c.messages.retain(|m| *m != mid);
                }
            } else {
                gateway::dispatch_message(st, mid, "MESSAGE_CREATE");
            }
            (Some(mid), loading)
        }
        // A component's message: acknowledged now, edited later (6), or edited now (7).
        6 | 7 => {
            let Some(source) = i.message_id.filter(|m| st.messages.contains_key(m)) else {
                return Err(not_valid());
            };
            if kind == 7 {
                apply_edit_json(st, source, data, body.files)?;
            }
            (Some(source), false)
        }
        9 => {
            if i.kind == 5 {
                return Err(not_valid());
            }
            let title = data["title"].as_str().unwrap_or_default();
            if data["custom_id"].as_str().is_none_or(str::is_empty)
                || !(1..=45).contains(&title.chars().count())
                || data["components"].as_array().is_none_or(Vec::is_empty)
            {
                return Err(Reply::form(payloads::form_error(
                    "data",
                    "BASE_TYPE_REQUIRED",
                    "A modal needs a custom_id, a title (1-45) and components",
                )));
            }
            if let Some(entry) = st.interactions.get_mut(&i.id) {
                entry.modal = Some(data.clone());
            }
            (None, false)
        }
        _ => return Err(not_valid()),
    };
    if let Some(entry) = st.interactions.get_mut(&i.id) {
        entry.response_type = Some(kind);
        entry.original = message;
    }
    // `?with_response=true` (discord.py sends `1`) answers with the interaction callback
    // response object instead of 204.
    let with_response = body
        .param("with_response")
        .is_some_and(|v| matches!(v, "true" | "True" | "1"));
    if !with_response {
        return Ok(Reply::no_content());
    }
    let mut resource = json!({"type": kind});
    let mut interaction = json!({
        "id": i.id.to_string(),
        "type": i.kind,
        "response_message_loading": loading,
        "response_message_ephemeral": flags & FLAG_EPHEMERAL != 0,
    });
    if let Some(m) = message.and_then(|m| st.messages.get(&m)).cloned() {
        interaction["response_message_id"] = json!(m.id.to_string());
        resource["message"] = payloads::message(st, &m, false);
    }
    Ok(Reply::ok(
        json!({"interaction": interaction, "resource": resource}),
    ))
}

fn followup(st: &mut State, app: &str, token: &str, body: &ApiBody<'_>) -> RouteResult {
    let i = interaction_by_token(st, app, token)?;
    let bucket = charge(st, format!("webhook:{token}"))?;
    let input = MessageInput::parse(body.json).map_err(|e| e.with_bucket(bucket.clone()))?;
    if input.is_empty(body.files.len()) {
        return Err(empty_message().with_bucket(bucket));
    }
    // After a deferred response, the first follow-up replaces the "thinking" placeholder.
    if let Some(original) = i.original.filter(|o| {
        st.messages
            .get(o)
            .is_some_and(|m| m.flags & FLAG_LOADING != 0)
    }) {
        apply_edit(st, original, body).map_err(|e| e.with_bucket(bucket.clone()))?;
        let m = st.messages[&original].clone();
        return Ok(Reply::ok(payloads::message(st, &m, false)).with_bucket(bucket));
    }
    if i.response_type.is_none() {
        return Err(unknown_webhook().with_bucket(bucket));
    }
    let everyone = everyone_allowed(body.json);
    let bot = st.bot_id;
    let content = input.content.clone().unwrap_or_default();
    let mid = st.create_message(i.channel_id, bot, &content, everyone);
    let files = attachments(st, body.files);
    let app_id = st.application_id;
    let ephemeral = input.flags.unwrap_or(0) & FLAG_EPHEMERAL != 0;
    if let Some(m) = st.messages.get_mut(&mid) {
        m.attachments = files;
        m.webhook_id = Some(app_id);
        m.interaction_id = Some(i.id);
        input.fill(m);
        if ephemeral {
            m.flags |= FLAG_EPHEMERAL;
        }
    }
    if let Some(entry) = st.interactions.get_mut(&i.id) {
        entry.followups.push(mid);
    }
    if ephemeral {
        // Only the invoking user sees an ephemeral follow-up: it is not part of the channel.
        if let Some(c) = st.channels.get_mut(&i.channel_id) {
            c.messages.retain(|m| *m != mid);
        }
    } else {
        gateway::dispatch_message(st, mid, "MESSAGE_CREATE");
    }
    let m = st.messages[&mid].clone();
    Ok(Reply::ok(payloads::message(st, &m, false)).with_bucket(bucket))
}

fn webhook_message(
    st: &mut State,
    method: &str,
    app: &str,
    token: &str,
    which: &str,
    body: &ApiBody<'_>,
) -> RouteResult {
    let i = interaction_by_token(st, app, token)?;
    let mid = if which == "@original" {
        i.original.ok_or_else(unknown_webhook)?
    } else {
        id(which)
            .filter(|m| i.original == Some(*m) || i.followups.contains(m))
            .ok_or_else(unknown_message)?
    };
    match method {
        "GET" => {
            let m = st.messages[&mid].clone();
            Ok(Reply::ok(payloads::message(st, &m, false)))
        }
        "PATCH" => {
            let bucket = charge(st, format!("webhook:{token}"))?;
            apply_edit(st, mid, body).map_err(|e| e.with_bucket(bucket.clone()))?;
            let m = st.messages[&mid].clone();
            Ok(Reply::ok(payloads::message(st, &m, false)).with_bucket(bucket))
        }
        "DELETE" => {
            let bucket = charge(st, format!("webhook:{token}"))?;
            channels::remove_message(st, mid);
            Ok(Reply::no_content().with_bucket(bucket))
        }
        _ => Err(Reply::error(405, 0, "405: Method Not Allowed")),
    }
}

/// Creates an application-command interaction and dispatches INTERACTION_CREATE.
pub fn new_interaction(
    st: &mut State,
    guild_id: Option<u64>,
    channel_id: u64,
    user_id: u64,
    name: &str,
    options: &[(String, String)],
) -> (u64, String, Value) {
    let iid = st.next_id();
    let token = format!("aW50ZXJhY3Rpb24-{iid}-{}", st.next_id());
    let i = Interaction {
        id: iid,
        token: token.clone(),
        name: name.to_string(),
        guild_id,
        channel_id,
        user_id,
        created: Instant::now(),
        response_type: None,
        kind: 2,
        message_id: None,
        modal: None,
        original: None,
        followups: Vec::new(),
    };
    let d = payloads::interaction(st, &i, options);
    st.interactions.insert(iid, i);
    // With an Interactions Endpoint URL, Discord sends interactions there, not to the gateway.
    if st.interactions_url.is_none() {
        gateway::dispatch(st, guild_id, "INTERACTION_CREATE", 0, |_| d.clone());
    }
    (iid, token, d)
}

/// A user presses a button (`values: None`) or picks `values` in a select menu with
/// `custom_id` on bot message `message_id`: creates a MESSAGE_COMPONENT interaction and
/// dispatches INTERACTION_CREATE. `Err` names what is wrong (no such message or component).
pub fn new_component_interaction(
    st: &mut State,
    user_id: u64,
    message_id: u64,
    custom_id: &str,
    values: Option<Vec<String>>,
) -> Result<(u64, String, Value), String> {
    let m = st
        .messages
        .get(&message_id)
        .cloned()
        .ok_or_else(|| format!("unknown message {message_id}"))?;
    let component_type = super::content::find_component(&m.components, custom_id)
        .ok_or_else(|| format!("message {message_id} has no component {custom_id:?}"))?;
    let guild_id = st.channels.get(&m.channel_id).and_then(|c| c.guild_id);
    let iid = st.next_id();
    let token = format!("aW50ZXJhY3Rpb24-{iid}-{}", st.next_id());
    let i = Interaction {
        id: iid,
        token: token.clone(),
        name: String::new(),
        guild_id,
        channel_id: m.channel_id,
        user_id,
        created: Instant::now(),
        response_type: None,
        kind: 3,
        message_id: Some(message_id),
        modal: None,
        original: None,
        followups: Vec::new(),
    };
    let mut data = json!({"custom_id": custom_id, "component_type": component_type});
    if let Some(v) = values {
        data["values"] = json!(v);
    } else if component_type != super::content::BUTTON {
        data["values"] = json!([]);
    }
    let d = payloads::component_interaction(st, &i, &m, data);
    st.interactions.insert(iid, i);
    if st.interactions_url.is_none() {
        gateway::dispatch(st, guild_id, "INTERACTION_CREATE", 0, |_| d.clone());
    }
    Ok((iid, token, d))
}

/// Applies an interaction response that came back as the body of an HTTP delivery, exactly
/// as if it had been POSTed to the callback endpoint.
pub fn respond_in_body(st: &mut State, iid: u64, body: &Value) -> u16 {
    let Some(token) = st.interactions.get(&iid).map(|i| i.token.clone()) else {
        return 404;
    };
    let id = iid.to_string();
    let segments = ["interactions", id.as_str(), token.as_str(), "callback"];
    let body = ApiBody {
        json: body,
        files: &[],
        query: "",
    };
    route(st, "POST", &segments, body, true).status
}
