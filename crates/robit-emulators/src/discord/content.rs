//! What a message body asks for (`content`, `embeds`, `components`, `flags`,
//! `message_reference`, `sticker_ids`), read and validated the way Discord validates it, and
//! applied to a stored message.
//!
//! Shared by channel messages, interaction responses, follow-ups and edits, so each of them
//! accepts embeds-only or components-only messages and refuses the same things with the same
//! error bodies. Pure functions on the model: no locking, no I/O.

use super::payloads;
use super::routes::Reply;
use super::state::{
    Message, FLAG_EPHEMERAL, FLAG_IS_COMPONENTS_V2, FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
};
use serde_json::Value;

/// Discord's message length limit, in Unicode scalar values.
pub const MAX_CONTENT: usize = 2000;
/// Flags a bot may set when it sends a message (others are ignored, as Discord does).
const SETTABLE_FLAGS: u64 =
    FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2 | FLAG_EPHEMERAL;

/// The message fields of one request body; `None` means "not in the body" (an edit keeps
/// what the message had).
#[derive(Debug, Default, Clone)]
pub struct MessageInput {
    pub content: Option<String>,
    pub embeds: Option<Vec<Value>>,
    pub components: Option<Vec<Value>>,
    pub flags: Option<u64>,
    /// `message_reference.message_id`, and whether a missing target is an error.
    pub reference: Option<(u64, bool)>,
    pub sticker_ids: Vec<String>,
}

fn form(field: &str, code: &str, message: &str) -> Reply {
    Reply::form(payloads::form_error(field, code, message))
}

fn list(body: &Value, key: &str) -> Result<Option<Vec<Value>>, Reply> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(_) => Err(form(key, "BASE_TYPE_ARRAY", "Must be an array.")),
    }
}

impl MessageInput {
    /// Reads and validates a body (for interaction responses, the callback's `data`).
    pub fn parse(body: &Value) -> Result<MessageInput, Reply> {
        let content = match body.get("content") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            // discord.py and serenity send strings; Discord coerces numbers too.
            Some(other) => Some(other.to_string()),
        };
        if content
            .as_deref()
            .is_some_and(|c| c.chars().count() > MAX_CONTENT)
        {
            return Err(form(
                "content",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 2000 or fewer in length.",
            ));
        }
        let embeds = list(body, "embeds")?;
        if let Some(e) = &embeds {
            check_embeds(e)?;
        }
        let components = list(body, "components")?;
        let flags = body.get("flags").and_then(Value::as_u64);
        let v2 = flags.unwrap_or(0) & FLAG_IS_COMPONENTS_V2 != 0;
        if let Some(c) = &components {
            check_components(c, v2)?;
        }
        if v2 {
            // Components v2 messages are laid out by components alone.
            if content.as_deref().is_some_and(|c| !c.is_empty()) {
                return Err(form(
                    "content",
                    "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                    "The 'content' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                ));
            }
            if embeds.as_ref().is_some_and(|e| !e.is_empty()) {
                return Err(form(
                    "embeds",
                    "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                    "The 'embeds' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                ));
            }
        }
        let reference = match body.get("message_reference") {
            Some(r) if r.is_object() => {
                let id = r["message_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| r["message_id"].as_u64());
                let fail = r["fail_if_not_exists"].as_bool().unwrap_or(true);
                id.map(|id| (id, fail))
            }
            _ => None,
        };
        let sticker_ids = body["sticker_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        s.as_str()
                            .map(str::to_string)
                            .or(s.as_u64().map(|n| n.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(MessageInput {
            content,
            embeds,
            components,
            flags: flags.map(|f| f & SETTABLE_FLAGS),
            reference,
            sticker_ids,
        })
    }

    /// Whether a new message from this body would show nothing (Discord's 50006), given the
    /// number of files uploaded with it.
    pub fn is_empty(&self, files: usize) -> bool {
        self.content.as_deref().unwrap_or_default().is_empty()
            && self.embeds.as_ref().is_none_or(Vec::is_empty)
            && self.components.as_ref().is_none_or(Vec::is_empty)
            && self.sticker_ids.is_empty()
            && files == 0
    }

    /// Copies the body's fields onto a new message.
    pub fn fill(&self, m: &mut Message) {
        m.embeds = self.embeds.clone().unwrap_or_default();
        m.components = self.components.clone().unwrap_or_default();
        m.flags |= self.flags.unwrap_or(0) & !FLAG_EPHEMERAL;
        m.sticker_ids = self.sticker_ids.clone();
    }

    /// Applies an edit: only the fields present change. Returns `Err` if the result would be
    /// an empty message.
    pub fn edit(&self, m: &mut Message, new_files: usize) -> Result<(), Reply> {
        let content = self.content.clone().unwrap_or_else(|| m.content.clone());
        let embeds = self.embeds.clone().unwrap_or_else(|| m.embeds.clone());
        let components = self
            .components
            .clone()
            .unwrap_or_else(|| m.components.clone());
        let v2 = (m.flags | self.flags.unwrap_or(0)) & FLAG_IS_COMPONENTS_V2 != 0;
        if v2 && (!content.is_empty() || !embeds.is_empty()) {
            return Err(form(
                "content",
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
            ));
        }
        if content.is_empty()
            && embeds.is_empty()
            && components.is_empty()
            && m.attachments.is_empty()
            && m.sticker_ids.is_empty()
            && new_files == 0
        {
            return Err(empty_message());
        }
        m.content = content;
        m.embeds = embeds;
        m.components = components;
        if let Some(f) = self.flags {
            // Only SUPPRESS_EMBEDS can be toggled by an edit; IS_COMPONENTS_V2 can be set
            // but never removed.
            m.flags = (m.flags & !FLAG_SUPPRESS_EMBEDS) | (f & FLAG_SUPPRESS_EMBEDS);
            m.flags |= f & FLAG_IS_COMPONENTS_V2;
        }
        Ok(())
    }
}

pub fn empty_message() -> Reply {
    Reply::error(400, 50006, "Cannot send an empty message")
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Discord's embed limits: 10 embeds, title 256, description 4096, 25 fields (name 256,
/// value 1024), footer 2048, author 256, 6000 characters in all.
fn check_embeds(embeds: &[Value]) -> Result<(), Reply> {
    if embeds.len() > 10 {
        return Err(form(
            "embeds",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        ));
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let at = |f: &str| format!("embeds.{i}.{f}");
        let limits = [
            (&e["title"], "title", 256),
            (&e["description"], "description", 4096),
            (&e["footer"]["text"], "footer.text", 2048),
            (&e["author"]["name"], "author.name", 256),
        ];
        for (v, name, max) in limits {
            let n = chars(v);
            if n > max {
                return Err(form(
                    &at(name),
                    "BASE_TYPE_MAX_LENGTH",
                    &format!("Must be {max} or fewer in length."),
                ));
            }
            total += n;
        }
        let fields = e["fields"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if fields.len() > 25 {
            return Err(form(
                &at("fields"),
                "BASE_TYPE_MAX_LENGTH",
                "Must be 25 or fewer in length.",
            ));
        }
        for f in fields {
            if chars(&f["name"]) > 256 || chars(&f["value"]) > 1024 {
                return Err(form(
                    &at("fields"),
                    "BASE_TYPE_MAX_LENGTH",
                    "Field name must be 256 or fewer, value 1024 or fewer in length.",
                ));
            }
            total += chars(&f["name"]) + chars(&f["value"]);
        }
    }
    if total > 6000 {
        return Err(form(
            "embeds",
            "MAX_EMBED_SIZE_EXCEEDED",
            "Embed size exceeds maximum size of 6000",
        ));
    }
    Ok(())
}

/// Component types (Discord's numbers).
pub const ACTION_ROW: u64 = 1;
pub const BUTTON: u64 = 2;
pub const LINK_STYLE: u64 = 5;
pub const PREMIUM_STYLE: u64 = 6;

/// Legacy messages: up to 5 action rows, each with up to 5 buttons or one select menu.
/// Components v2: up to 40 components of any layout type in all. Interactive components
/// need a `custom_id` (except link and premium buttons), unique within the message.
fn check_components(components: &[Value], v2: bool) -> Result<(), Reply> {
    let mut seen = Vec::new();
    let mut count = 0;
    if !v2 {
        if components.len() > 5 {
            return Err(form(
                "components",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 5 or fewer in length.",
            ));
        }
        for (i, row) in components.iter().enumerate() {
            if row["type"].as_u64() != Some(ACTION_ROW) {
                return Err(form(
                    &format!("components.{i}"),
                    "UNION_TYPE_CHOICES",
                    "Value of field \"type\" must be one of (1,).",
                ));
            }
            let inner = row["components"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let buttons = inner.iter().all(|c| c["type"].as_u64() == Some(BUTTON));
            if inner.is_empty() || inner.len() > 5 || (!buttons && inner.len() > 1) {
                return Err(form(
                    &format!("components.{i}.components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                ));
            }
        }
    }
    walk(components, "components", &mut seen, &mut count)?;
    if v2 && count > 40 {
        return Err(form(
            "components",
            "COMPONENT_MAX_TOTAL_COMPONENTS_EXCEEDED",
            "The maximum number of components was exceeded (40).",
        ));
    }
    Ok(())
}

fn walk(
    list: &[Value],
    path: &str,
    seen: &mut Vec<String>,
    count: &mut usize,
) -> Result<(), Reply> {
    for (i, c) in list.iter().enumerate() {
        *count += 1;
        let at = format!("{path}.{i}");
        let kind = c["type"].as_u64().unwrap_or(0);
        let interactive = (2..=8).contains(&kind);
        let exempt =
            kind == BUTTON && matches!(c["style"].as_u64(), Some(LINK_STYLE) | Some(PREMIUM_STYLE));
        if interactive && !exempt {
            let Some(id) = c["custom_id"].as_str() else {
                return Err(form(
                    &format!("{at}.custom_id"),
                    "BASE_TYPE_REQUIRED",
                    "This field is required",
                ));
            };
            if id.is_empty() || id.chars().count() > 100 {
                return Err(form(
                    &format!("{at}.custom_id"),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                ));
            }
            if seen.iter().any(|s| s == id) {
                return Err(form(
                    &format!("{at}.custom_id"),
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                ));
            }
            seen.push(id.to_string());
        }
        if kind == BUTTON && c["style"].as_u64() == Some(LINK_STYLE) && c["url"].as_str().is_none()
        {
            return Err(form(
                &format!("{at}.url"),
                "BASE_TYPE_REQUIRED",
                "This field is required",
            ));
        }
        // Containers and rows hold `components`; sections also hold an `accessory`.
        if let Some(inner) = c["components"].as_array() {
            walk(inner, &format!("{at}.components"), seen, count)?;
        }
        if c["accessory"].is_object() {
            walk(
                std::slice::from_ref(&c["accessory"]),
                &format!("{at}.accessory"),
                seen,
                count,
            )?;
        }
    }
    Ok(())
}

/// Finds the interactive component with `custom_id` anywhere in a message's components
/// (rows, containers, section accessories); returns its type.
pub fn find_component(components: &[Value], custom_id: &str) -> Option<u64> {
    for c in components {
        if c["custom_id"].as_str() == Some(custom_id) {
            return c["type"].as_u64();
        }
        if let Some(t) = c["components"]
            .as_array()
            .and_then(|inner| find_component(inner, custom_id))
        {
            return Some(t);
        }
        if c["accessory"].is_object() {
            if let Some(t) = find_component(std::slice::from_ref(&c["accessory"]), custom_id) {
                return Some(t);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn embeds_only_is_not_empty() {
        let m = MessageInput::parse(&json!({"embeds": [{"title": "t"}]})).unwrap();
        assert!(!m.is_empty(0));
        assert!(MessageInput::parse(&json!({"content": ""}))
            .unwrap()
            .is_empty(0));
    }

    #[test]
    fn components_v2_refuse_content() {
        let body = json!({"flags": 1 << 15, "content": "x",
                          "components": [{"type": 10, "content": "hi"}]});
        assert!(MessageInput::parse(&body).is_err());
        let ok = json!({"flags": 1 << 15, "components": [{"type": 10, "content": "hi"}]});
        assert!(!MessageInput::parse(&ok).unwrap().is_empty(0));
    }

    #[test]
    fn legacy_components_need_rows_and_custom_ids() {
        let bare = json!({"components": [{"type": 2, "style": 1, "custom_id": "a"}]});
        assert!(MessageInput::parse(&bare).is_err());
        let no_id = json!({"components": [{"type": 1, "components": [{"type": 2, "style": 1}]}]});
        assert!(MessageInput::parse(&no_id).is_err());
        let link = json!({"components": [{"type": 1, "components": [
            {"type": 2, "style": 5, "url": "https://example.com", "label": "x"}]}]});
        assert!(MessageInput::parse(&link).is_ok());
    }

    #[test]
    fn finds_nested_components() {
        let c = json!([{"type": 17, "components": [{"type": 9, "components": [],
            "accessory": {"type": 2, "style": 1, "custom_id": "deep"}}]}]);
        assert_eq!(find_component(c.as_array().unwrap(), "deep"), Some(2));
        assert_eq!(find_component(c.as_array().unwrap(), "nope"), None);
    }
}
