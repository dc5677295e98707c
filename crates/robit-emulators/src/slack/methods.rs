//! Web API methods bolt apps commonly call besides posting: modals and the Home tab
//! (`views.*`), reactions, `users.info`, `conversations.history` / `.info`, and scheduled
//! messages; plus the `block_actions` payload a button click sends the app.
//!
//! Called from `web.rs` with the model locked, so nothing here awaits, except
//! [`post_when_due`], which `web.rs` spawns after `chat.scheduleMessage` answered.

use super::model::{Message, Model, Scheduled};
use super::web::{bot_message, str_param};
use super::{Shared, APP_ID, BOT_ID, BOT_USER, DM_CHANNEL, TEAM_ID, USER};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Answer = Result<Value, &'static str>;

/// How long a trigger id may be used to open a modal (Slack: 3 s).
const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);
/// `chat.scheduleMessage` refuses `post_at` more than 120 days ahead.
const MAX_SCHEDULE_SECS: u64 = 120 * 24 * 3600;

/// A parameter that may be JSON or, from a form-encoded call, a JSON string.
fn json_param(p: &Value, key: &str) -> Option<Value> {
    match p.get(key)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        Value::Null => None,
        other => Some(other.clone()),
    }
}

fn u64_param(p: &Value, key: &str) -> Option<u64> {
    let v = p.get(key)?;
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.split('.').next()?.parse().ok()))
        .or_else(|| v.as_f64().map(|f| f as u64))
}

/// `blocks` of a post or update: an array (JSON) or its string form (form-encoded). Slack
/// refuses more than 50 blocks and section text over 3000 characters (`invalid_blocks`).
pub(crate) fn blocks_param(p: &Value) -> Result<Option<Value>, &'static str> {
    if p.get("blocks").is_none_or(Value::is_null) {
        return Ok(None);
    }
    let blocks = json_param(p, "blocks").ok_or("invalid_blocks_format")?;
    let list = blocks.as_array().ok_or("invalid_blocks_format")?;
    if list.len() > 50 {
        return Err("invalid_blocks");
    }
    for b in list {
        if b["type"].as_str().is_none() {
            return Err("invalid_blocks");
        }
        if b["text"]["text"]
            .as_str()
            .is_some_and(|t| t.chars().count() > 3000)
        {
            return Err("invalid_blocks");
        }
    }
    Ok(Some(blocks))
}

pub(crate) fn dispatch(shared: &Shared, model: &mut Model, method: &str, p: &Value) -> Answer {
    match method {
        "views.open" => {
            take_trigger(model, p)?;
            let view = new_view(model, p, "modal", None)?;
            model.views.push(view.clone());
            Ok(json!({"view": view}))
        }
        "views.push" => {
            take_trigger(model, p)?;
            let root = model.views.last().ok_or("not_found")?["root_view_id"].clone();
            let mut view = new_view(model, p, "modal", None)?;
            view["root_view_id"] = root;
            model.views.push(view.clone());
            Ok(json!({"view": view}))
        }
        "views.update" => {
            let idx = model
                .views
                .iter()
                .position(|v| {
                    str_param(p, "view_id").is_some_and(|id| v["id"] == id)
                        || str_param(p, "external_id").is_some_and(|id| v["external_id"] == id)
                })
                .ok_or("not_found")?;
            if let Some(hash) = str_param(p, "hash") {
                if model.views[idx]["hash"] != hash {
                    return Err("hash_conflict");
                }
            }
            let id = model.views[idx]["id"].as_str().map(str::to_string);
            let mut view = new_view(model, p, "modal", id)?;
            view["root_view_id"] = model.views[idx]["root_view_id"].clone();
            model.views[idx] = view.clone();
            Ok(json!({"view": view}))
        }
        "views.publish" => {
            let user = str_param(p, "user_id").ok_or("invalid_arguments")?;
            if !known_user(model, user) {
                return Err("user_not_found");
            }
            let id = model
                .home_tabs
                .get(user)
                .and_then(|v| v["id"].as_str().map(str::to_string));
            let view = new_view(model, p, "home", id)?;
            model.home_tabs.insert(user.to_string(), view.clone());
            Ok(json!({"view": view}))
        }
        "reactions.add" | "reactions.remove" => {
            let add = method == "reactions.add";
            let name = str_param(p, "name")
                .map(|n| n.trim_matches(':').to_string())
                .filter(|n| !n.is_empty())
                .ok_or("invalid_name")?;
            let m = message(model, p)?;
            let pos = m.reactions.iter().position(|(n, _)| *n == name);
            match (add, pos) {
                (true, Some(i)) if m.reactions[i].1.iter().any(|u| u == BOT_USER) => {
                    return Err("already_reacted")
                }
                (true, Some(i)) => m.reactions[i].1.push(BOT_USER.to_string()),
                (true, None) => m.reactions.push((name, vec![BOT_USER.to_string()])),
                (false, Some(i)) if m.reactions[i].1.iter().any(|u| u == BOT_USER) => {
                    m.reactions[i].1.retain(|u| u != BOT_USER);
                    m.reactions.retain(|(_, users)| !users.is_empty());
                }
                (false, _) => return Err("no_reaction"),
            }
            Ok(json!({}))
        }
        "reactions.get" => {
            let m = message(model, p)?;
            let channel = m.channel.clone();
            let mut message = m.to_json();
            message["channel"] = json!(channel);
            Ok(json!({"type": "message", "channel": channel, "message": message}))
        }
        "users.info" => {
            let user = str_param(p, "user").ok_or("user_not_found")?;
            if !known_user(model, user) {
                return Err("user_not_found");
            }
            Ok(json!({"user": user_json(user)}))
        }
        "conversations.info" => {
            let channel = str_param(p, "channel").ok_or("channel_not_found")?;
            if !model.channels.contains_key(channel) {
                return Err("channel_not_found");
            }
            Ok(json!({"channel": channel_json(channel)}))
        }
        "conversations.history" => history(model, p),
        "chat.scheduleMessage" => schedule(model, p),
        "chat.scheduledMessages.list" => {
            let channel = str_param(p, "channel");
            let list: Vec<Value> = model
                .scheduled
                .iter()
                .filter(|s| s.posted_ts.is_none())
                .filter(|s| channel.is_none_or(|c| c == s.channel))
                .map(|s| {
                    json!({"id": s.id, "channel_id": s.channel, "post_at": s.post_at,
                           "date_created": super::unix_now(), "text": s.text})
                })
                .collect();
            Ok(json!({"scheduled_messages": list, "response_metadata": {"next_cursor": ""}}))
        }
        "chat.deleteScheduledMessage" => {
            let id = str_param(p, "scheduled_message_id").ok_or("invalid_scheduled_message_id")?;
            let before = model.scheduled.len();
            model
                .scheduled
                .retain(|s| !(s.id == id && s.posted_ts.is_none()));
            if model.scheduled.len() == before {
                return Err("invalid_scheduled_message_id");
            }
            Ok(json!({}))
        }
        "chat.getPermalink" => {
            let channel = str_param(p, "channel").ok_or("channel_not_found")?;
            let ts = str_param(p, "message_ts").ok_or("message_not_found")?;
            model.get(channel, ts).ok_or("message_not_found")?;
            Ok(json!({
                "channel": channel,
                "permalink": format!("http://{}/archives/{channel}/p{}", shared.addr, ts.replace('.', "")),
            }))
        }
        _ => Err("unknown_method"),
    }
}

fn take_trigger(model: &mut Model, p: &Value) -> Result<(), &'static str> {
    let trigger = str_param(p, "trigger_id").ok_or("invalid_trigger_id")?;
    let issued = model.triggers.remove(trigger).ok_or("invalid_trigger_id")?;
    if issued.elapsed() > TRIGGER_LIFETIME {
        return Err("expired_trigger_id");
    }
    Ok(())
}

/// A view object as Slack returns it, from the `view` parameter; `kind` is the type the
/// method requires (`modal` or `home`).
fn new_view(model: &mut Model, p: &Value, kind: &str, id: Option<String>) -> Answer {
    let view = json_param(p, "view").ok_or("invalid_arguments")?;
    if view["type"].as_str() != Some(kind) {
        return Err("invalid_arguments");
    }
    let blocks = view.get("blocks").cloned().unwrap_or(json!([]));
    if blocks.as_array().is_none_or(|b| b.len() > 100) {
        return Err("invalid_arguments");
    }
    if kind == "modal"
        && view["title"]["text"]
            .as_str()
            .is_none_or(|t| t.is_empty() || t.chars().count() > 24)
    {
        return Err("invalid_arguments");
    }
    let id = id.unwrap_or_else(|| model.next_id("V"));
    let hash = model.next_id("hash.");
    let mut v = json!({
        "id": id,
        "team_id": TEAM_ID,
        "type": kind,
        "blocks": blocks,
        "private_metadata": view.get("private_metadata").cloned().unwrap_or(json!("")),
        "callback_id": view.get("callback_id").cloned().unwrap_or(json!("")),
        "state": {"values": {}},
        "hash": hash,
        "clear_on_close": view.get("clear_on_close").cloned().unwrap_or(json!(false)),
        "notify_on_close": view.get("notify_on_close").cloned().unwrap_or(json!(false)),
        "root_view_id": id,
        "previous_view_id": null,
        "app_id": APP_ID,
        "external_id": view.get("external_id").cloned().unwrap_or(json!("")),
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    });
    for key in ["title", "submit", "close"] {
        v[key] = view.get(key).cloned().unwrap_or(Value::Null);
    }
    Ok(v)
}

fn message<'m>(model: &'m mut Model, p: &Value) -> Result<&'m mut Message, &'static str> {
    let channel = str_param(p, "channel").ok_or("channel_not_found")?;
    if !model.channels.contains_key(channel) {
        return Err("channel_not_found");
    }
    let ts = str_param(p, "timestamp").ok_or("message_not_found")?;
    model
        .get_mut(channel, ts)
        .filter(|m| !m.deleted)
        .ok_or("message_not_found")
}

/// The workspace's members: the scenario's users, the bot, and anyone who wrote a message.
fn known_user(model: &Model, user: &str) -> bool {
    user == USER
        || user == BOT_USER
        || model
            .channels
            .values()
            .any(|c| c.values().any(|m| m.user == user))
}

fn user_json(user: &str) -> Value {
    let bot = user == BOT_USER;
    let name = if bot {
        "robit".to_string()
    } else if user == USER {
        "alice".to_string()
    } else {
        user.to_lowercase()
    };
    let mut profile = json!({
        "real_name": name, "display_name": name,
        "real_name_normalized": name, "display_name_normalized": name,
        "first_name": name, "last_name": "", "title": "",
        "image_72": "", "image_192": "", "status_text": "", "status_emoji": "",
        "team": TEAM_ID,
    });
    if bot {
        profile["bot_id"] = json!(BOT_ID);
        profile["api_app_id"] = json!(APP_ID);
    } else {
        profile["email"] = json!(format!("{name}@emulator.invalid"));
    }
    json!({
        "id": user, "team_id": TEAM_ID, "name": name, "deleted": false, "color": "9f69e7",
        "real_name": name, "tz": "Etc/UTC", "tz_label": "Coordinated Universal Time",
        "tz_offset": 0, "profile": profile, "is_admin": false, "is_owner": false,
        "is_primary_owner": false, "is_restricted": false, "is_ultra_restricted": false,
        "is_bot": bot, "is_app_user": false, "updated": 1_700_000_000u64,
    })
}

fn channel_json(channel: &str) -> Value {
    let im = channel.starts_with('D');
    let mut c = json!({
        "id": channel, "created": 1_700_000_000u64, "is_archived": false,
        "is_channel": !im, "is_group": false, "is_im": im, "is_mpim": false,
        "is_private": im, "is_general": channel == super::GENERAL, "is_member": true,
        "is_shared": false, "is_org_shared": false, "is_ext_shared": false,
        "context_team_id": TEAM_ID,
    });
    if im {
        c["user"] = json!(if channel == DM_CHANNEL { USER } else { "" });
    } else {
        c["name"] = json!(channel.trim_start_matches('C').to_lowercase());
        c["name_normalized"] = c["name"].clone();
        c["topic"] = json!({"value": "", "creator": "", "last_set": 0});
        c["purpose"] = json!({"value": "", "creator": "", "last_set": 0});
    }
    c
}

/// Top-level messages (thread roots carry `reply_count`), newest first, paged with
/// `limit` and an opaque `cursor`; `latest` / `oldest` / `inclusive` bound the range.
fn history(model: &Model, p: &Value) -> Answer {
    let channel = str_param(p, "channel").ok_or("channel_not_found")?;
    let ch = model.channels.get(channel).ok_or("channel_not_found")?;
    let limit = u64_param(p, "limit").unwrap_or(100).clamp(1, 999) as usize;
    let inclusive = match p.get("inclusive") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    };
    let latest = str_param(p, "latest");
    let oldest = str_param(p, "oldest");
    let before = match str_param(p, "cursor") {
        Some(c) => Some(c.strip_prefix("before:").ok_or("invalid_cursor")?),
        None => None,
    };
    let ts_num = |t: &str| t.parse::<f64>().unwrap_or(0.0);
    let mut roots: Vec<&Message> = ch
        .values()
        .filter(|m| !m.deleted && m.thread_ts.as_ref().is_none_or(|t| *t == m.ts))
        .filter(|m| match latest {
            Some(l) if inclusive => ts_num(&m.ts) <= ts_num(l),
            Some(l) => ts_num(&m.ts) < ts_num(l),
            None => true,
        })
        .filter(|m| match oldest {
            Some(o) if inclusive => ts_num(&m.ts) >= ts_num(o),
            Some(o) => ts_num(&m.ts) > ts_num(o),
            None => true,
        })
        .filter(|m| before.is_none_or(|b| m.ts.as_str() < b))
        .collect();
    roots.reverse();
    let has_more = roots.len() > limit;
    let page: Vec<Value> = roots
        .iter()
        .take(limit)
        .map(|m| {
            let mut v = m.to_json();
            let replies: Vec<&Message> = ch
                .values()
                .filter(|r| !r.deleted && r.ts != m.ts && r.thread_ts.as_deref() == Some(&m.ts))
                .collect();
            if let Some(last) = replies.last() {
                v["thread_ts"] = json!(m.ts);
                v["reply_count"] = json!(replies.len());
                v["latest_reply"] = json!(last.ts);
            }
            v
        })
        .collect();
    let next = if has_more {
        format!("before:{}", roots[limit - 1].ts)
    } else {
        String::new()
    };
    Ok(json!({
        "messages": page, "has_more": has_more, "pin_count": 0,
        "channel_actions_count": 0, "channel_actions_ts": null,
        "response_metadata": {"next_cursor": next},
    }))
}

fn schedule(model: &mut Model, p: &Value) -> Answer {
    let channel = str_param(p, "channel")
        .ok_or("channel_not_found")?
        .to_string();
    if !model.channels.contains_key(&channel) {
        return Err("channel_not_found");
    }
    let post_at = u64_param(p, "post_at").ok_or("invalid_time")?;
    let now = super::unix_now();
    if post_at <= now {
        return Err("time_in_past");
    }
    if post_at > now + MAX_SCHEDULE_SECS {
        return Err("time_too_far");
    }
    let text = p
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let blocks = blocks_param(p)?;
    if text.trim().is_empty() && blocks.is_none() {
        return Err("no_text");
    }
    let thread_ts = match str_param(p, "thread_ts") {
        Some(t) => Some(
            model
                .get(&channel, t)
                .map(|m| m.thread_ts.clone().unwrap_or_else(|| t.to_string()))
                .ok_or("thread_not_found")?,
        ),
        None => None,
    };
    let id = model.next_id("Q");
    model.scheduled.push(Scheduled {
        id: id.clone(),
        channel: channel.clone(),
        post_at,
        text: text.clone(),
        thread_ts,
        blocks: blocks.clone(),
        posted_ts: None,
    });
    let mut message = json!({"type": "message", "text": text, "user": BOT_USER,
                             "bot_id": BOT_ID, "team": TEAM_ID});
    if let Some(b) = blocks {
        message["blocks"] = b;
    }
    Ok(
        json!({"channel": channel, "scheduled_message_id": id, "post_at": post_at,
              "message": message}),
    )
}

/// Posts a scheduled message when its time comes, unless it was deleted first.
pub(crate) async fn post_when_due(shared: Arc<Shared>, id: String) {
    let due = shared
        .model
        .lock()
        .unwrap()
        .scheduled
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.post_at);
    let Some(due) = due else {
        return;
    };
    let wait = due.saturating_sub(super::unix_now());
    let mut stop = shared.shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    let posted = {
        let mut model = shared.model.lock().unwrap();
        let Some(idx) = model
            .scheduled
            .iter()
            .position(|s| s.id == id && s.posted_ts.is_none())
        else {
            return;
        };
        let s = model.scheduled[idx].clone();
        let ts = model.next_ts();
        let mut m = bot_message(&s.channel, &ts, s.thread_ts.clone(), &s.text);
        m.blocks = s.blocks.clone();
        let mut json = m.to_json();
        json["channel"] = json!(s.channel);
        model.insert(m);
        model.scheduled[idx].posted_ts = Some(ts);
        json
    };
    shared.changed.notify_waiters();
    super::SlackEmulator::echo(&shared, &posted);
}

/// Finds the interactive element `action_id` in a message's blocks (an `actions` block's
/// elements, a section's accessory); returns it with its block's id.
pub(crate) fn find_action(blocks: &Value, action_id: &str) -> Option<(Value, String)> {
    for b in blocks.as_array()? {
        let block_id = b["block_id"].as_str().unwrap_or_default().to_string();
        let mut candidates: Vec<&Value> = b["elements"]
            .as_array()
            .map(|e| e.iter().collect())
            .unwrap_or_default();
        if b["accessory"].is_object() {
            candidates.push(&b["accessory"]);
        }
        if let Some(e) = candidates.into_iter().find(|e| e["action_id"] == action_id) {
            return Some((e.clone(), block_id));
        }
    }
    None
}

/// Records a fresh trigger id (for `views.open`) and returns it.
pub(crate) fn issue_trigger(model: &mut Model) -> String {
    let trigger = model.next_id("trig.");
    model.triggers.insert(trigger.clone(), Instant::now());
    trigger
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_buttons_in_actions_and_accessories() {
        let blocks = json!([
            {"type": "section", "block_id": "s", "text": {"type": "mrkdwn", "text": "x"},
             "accessory": {"type": "button", "action_id": "acc", "text": {"type": "plain_text", "text": "A"}}},
            {"type": "actions", "block_id": "a", "elements": [
                {"type": "button", "action_id": "go", "value": "1", "text": {"type": "plain_text", "text": "Go"}}]}
        ]);
        assert_eq!(find_action(&blocks, "go").unwrap().1, "a");
        assert_eq!(find_action(&blocks, "acc").unwrap().1, "s");
        assert!(find_action(&blocks, "none").is_none());
    }

    #[test]
    fn history_pages_newest_first() {
        let mut m = Model::default();
        m.ensure_channel("C1");
        for i in 0..3 {
            let ts = m.next_ts();
            m.insert(bot_message("C1", &ts, None, &format!("m{i}")));
        }
        let first = history(&m, &json!({"channel": "C1", "limit": 2})).unwrap();
        assert_eq!(first["messages"][0]["text"], "m2");
        assert_eq!(first["has_more"], true);
        let cursor = first["response_metadata"]["next_cursor"].as_str().unwrap();
        let second = history(&m, &json!({"channel": "C1", "limit": 2, "cursor": cursor})).unwrap();
        assert_eq!(second["messages"][0]["text"], "m0");
        assert_eq!(second["has_more"], false);
    }
}
