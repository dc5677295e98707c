//! Files attached to a user's message, in a chat turn, and the limits on files in and out.
//!
//! Text and code files become part of the user's turn (cut at a size limit, with a note
//! saying so); images go to models configured as able to see, and become a short "omitted"
//! note for the others. The files of a `/run` message and the files a run leaves behind are
//! `code_run.rs`'s, under the limits defined here.
//!
//! The bytes come through [`ReplySink::fetch_attachment`], because only the adapter knows how
//! to fetch from its platform; this module decides what to fetch and what to do with it.

use robit_llm::{ChatMessage, ImagePart, Role};
use robit_store::{Conversation, NewMessage, Store};
use robit_types::{Attachment, Inbound, InboundKind, ReplySink};
use std::sync::Arc;

/// What the engine accepts from attachments and uploads after runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// Attachments of one message that are looked at; the rest get a note.
    pub max_files: usize,
    /// Bytes of one text file included in the turn; longer files are cut with a note.
    pub max_text_bytes: usize,
    /// Largest image sent to a model (Anthropic takes up to 5 MB per image).
    pub max_image_bytes: u64,
    /// Largest file placed in the sandbox's scratch directory for `/run`.
    pub max_run_file_bytes: u64,
    /// Files uploaded to the thread after one run.
    pub max_upload_files: usize,
    /// Largest file uploaded after a run (the platform's own limit applies too).
    pub max_upload_bytes: u64,
    /// Models (names as the conversation selects them) that accept images.
    pub vision_models: Vec<String>,
}

impl AttachmentLimits {
    /// Whether `model` (the name a turn's request uses) is sent images.
    pub(crate) fn sees_images(&self, model: &str) -> bool {
        self.vision_models.iter().any(|m| m == model)
    }
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        Self {
            max_files: 10,
            max_text_bytes: 100_000,
            max_image_bytes: 5 * 1024 * 1024,
            max_run_file_bytes: 8 * 1024 * 1024,
            max_upload_files: 5,
            max_upload_bytes: 8 * 1024 * 1024,
            vision_models: Vec::new(),
        }
    }
}

/// How the engine treats an attachment, from its declared type or its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An image type both provider protocols accept, with its media type.
    Image(&'static str),
    Text,
    /// Neither: read it and keep it as text only if it turns out to be UTF-8.
    Unknown,
}

const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "md",
    "markdown",
    "rst",
    "csv",
    "tsv",
    "json",
    "jsonl",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "conf",
    "xml",
    "html",
    "htm",
    "css",
    "log",
    "sql",
    "py",
    "js",
    "mjs",
    "ts",
    "tsx",
    "jsx",
    "rs",
    "go",
    "java",
    "kt",
    "c",
    "h",
    "cc",
    "cpp",
    "hpp",
    "cs",
    "rb",
    "php",
    "sh",
    "bash",
    "zsh",
    "ps1",
    "swift",
    "scala",
    "lua",
    "r",
    "pl",
    "hs",
    "ex",
    "exs",
    "erl",
    "clj",
    "dart",
    "vue",
    "svelte",
    "tex",
    "diff",
    "patch",
    "env",
    "dockerfile",
    "makefile",
    "gradle",
];

fn kind(attachment: &Attachment) -> Kind {
    let mime = attachment
        .content_type
        .as_deref()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let ext = attachment
        .name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_else(|| attachment.name.to_ascii_lowercase());
    let image = match (mime.as_str(), ext.as_str()) {
        ("image/png", _) | ("", "png") => Some("image/png"),
        ("image/jpeg" | "image/jpg", _) | ("", "jpg" | "jpeg") => Some("image/jpeg"),
        ("image/gif", _) | ("", "gif") => Some("image/gif"),
        ("image/webp", _) | ("", "webp") => Some("image/webp"),
        _ => None,
    };
    if let Some(media_type) = image {
        return Kind::Image(media_type);
    }
    let text_mime = mime.starts_with("text/")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/x-yaml"
                | "application/yaml"
                | "application/toml"
                | "application/x-sh"
                | "application/sql"
                | "application/x-python"
        );
    if text_mime || TEXT_EXTENSIONS.contains(&ext.as_str()) {
        Kind::Text
    } else {
        Kind::Unknown
    }
}

/// The first `limit` bytes of `bytes` as text, and whether it was cut. A cut inside a
/// multi-byte character drops that character's partial bytes. `None` when the bytes are not
/// text (invalid UTF-8 before the cut, or a NUL byte).
pub(crate) fn cut_text(bytes: &[u8], limit: usize) -> Option<(String, bool)> {
    let cut = bytes.len() > limit;
    let head = &bytes[..bytes.len().min(limit)];
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // Only an incomplete character at the very end of a cut is forgiven.
        Err(e) if cut && e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).expect("valid up to here")
        }
        Err(_) => return None,
    };
    if text.contains('\0') {
        return None;
    }
    Some((text.to_string(), cut))
}

/// A Markdown fence longer than any run of backticks in `text`, so the file cannot close it.
/// (This block goes to the model, which reads CommonMark; the file's text is left exact.)
fn fence_for(text: &str) -> String {
    "`".repeat((robit_types::fence::longest_backtick_run(text) + 1).max(3))
}

/// How a text file appears in the user's turn.
pub(crate) fn text_block(name: &str, text: &str, cut: bool, limit: usize, size: u64) -> String {
    let fence = fence_for(text);
    let mut block = format!(
        "[attached file: {name}]\n{fence}\n{}\n{fence}",
        text.trim_end_matches('\n')
    );
    if cut {
        let of = if size > limit as u64 {
            format!(" of {size}")
        } else {
            String::new()
        };
        block.push_str(&format!(
            "\n[{name} was cut: only its first {limit}{of} bytes are shown]"
        ));
    }
    block
}

/// The message's attachments (a command has none).
pub(crate) fn attachments(inbound: &Inbound) -> &[Attachment] {
    match &inbound.kind {
        InboundKind::Message { attachments, .. } => attachments,
        InboundKind::Command(_) | InboundKind::Action { .. } | InboundKind::Edit { .. } => &[],
    }
}

/// What the attachments of one message add to the user's turn.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// Text for the model and for history: included files, image placeholders, notes.
    pub text: String,
    /// Images for this request only.
    pub images: Vec<ImagePart>,
}

/// Reads the message's attachments for a model that can (`vision`) or cannot see images.
pub(crate) async fn gather(
    sink: &Arc<dyn ReplySink>,
    attachments: &[Attachment],
    vision: bool,
    limits: &AttachmentLimits,
) -> Gathered {
    let mut parts = Vec::new();
    let mut images = Vec::new();
    for (i, a) in attachments.iter().enumerate() {
        if i >= limits.max_files {
            parts.push(format!(
                "[{} more attachment(s) not read: at most {} per message]",
                attachments.len() - i,
                limits.max_files
            ));
            break;
        }
        let name = a.name.as_str();
        match kind(a) {
            Kind::Image(_) if !vision => {
                parts.push(format!(
                    "[image omitted: {name} — the model cannot see images]"
                ));
            }
            Kind::Image(media_type) => {
                match sink
                    .fetch_attachment(a, limits.max_image_bytes.saturating_add(1))
                    .await
                {
                    Ok(bytes) if bytes.len() as u64 > limits.max_image_bytes => {
                        parts.push(format!(
                            "[image omitted: {name} is larger than {} bytes]",
                            limits.max_image_bytes
                        ))
                    }
                    Ok(bytes) => {
                        images.push(ImagePart::new(media_type, &bytes));
                        parts.push(format!("[image: {name}]"));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, file = name, "fetching an image failed");
                        parts.push(format!(
                            "[image not read: {name} — it could not be downloaded]"
                        ));
                    }
                }
            }
            k @ (Kind::Text | Kind::Unknown) => {
                let limit = limits.max_text_bytes;
                match sink.fetch_attachment(a, limit as u64 + 1).await {
                    Ok(bytes) => match cut_text(&bytes, limit) {
                        Some((text, cut)) => parts.push(text_block(name, &text, cut, limit, a.size)),
                        None if k == Kind::Text => parts.push(format!(
                            "[attachment not read: {name} — it is not UTF-8 text]"
                        )),
                        None => parts.push(format!(
                            "[attachment not read: {name} — only text files and images are supported]"
                        )),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, file = name, "fetching an attachment failed");
                        parts.push(format!(
                            "[attachment not read: {name} — it could not be downloaded]"
                        ));
                    }
                }
            }
        }
    }
    Gathered {
        text: parts.join("\n\n"),
        images,
    }
}

/// For a chat turn: reads the message's attachments and stores what they add as a second user
/// message of the turn, right after the user's text, so later turns replay it. Returns the
/// images, which go with this request only.
///
/// Storage decision: text files are stored in full (as cut), because history must show the
/// model what it answered about; images are stored only as their `[image: name]` placeholder:
/// the store holds text, an image in every later request would cost tokens each time, and the
/// model's own answer already records what it saw.
pub(crate) async fn include_in_turn(
    store: &dyn Store,
    limits: &AttachmentLimits,
    inbound: &Inbound,
    conversation: &Conversation,
    turn: i64,
    sink: &Arc<dyn ReplySink>,
    model: &str,
) -> Vec<ImagePart> {
    let list = attachments(inbound);
    if list.is_empty() {
        return Vec::new();
    }
    let gathered = gather(sink, list, limits.sees_images(model), limits).await;
    if !gathered.text.is_empty() {
        let message = NewMessage {
            turn: Some(turn),
            ..NewMessage::user(inbound.author.id.clone(), gathered.text)
        };
        if let Err(e) = store.append_message(conversation.id, message).await {
            tracing::error!(error = %e, "storing the attachments' text failed");
        }
    }
    gathered.images
}

/// Puts `images` on the last user message (the attachments' message of this turn).
pub(crate) fn attach_images(messages: &mut [ChatMessage], images: Vec<ImagePart>) {
    if images.is_empty() {
        return;
    }
    if let Some(last_user) = messages.iter_mut().rev().find(|m| m.role == Role::User) {
        last_user.images = images;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(name: &str, content_type: Option<&str>) -> Attachment {
        Attachment {
            name: name.into(),
            content_type: content_type.map(str::to_string),
            size: 0,
            url: None,
        }
    }

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(cut_text(b"hello\n", 100), Some(("hello\n".into(), false)));
        assert_eq!(cut_text(b"hello", 5), Some(("hello".into(), false)));
    }

    #[test]
    fn long_text_is_cut_at_the_limit() {
        assert_eq!(cut_text(b"hello world", 5), Some(("hello".into(), true)));
    }

    #[test]
    fn a_cut_inside_a_character_drops_its_partial_bytes() {
        // "é" is two bytes: a cut after its first byte keeps only "a".
        assert_eq!(cut_text("aé".as_bytes(), 2), Some(("a".into(), true)));
    }

    #[test]
    fn binary_is_not_text() {
        assert_eq!(cut_text(&[0x89, b'P', b'N', b'G'], 100), None);
        assert_eq!(cut_text(b"a\0b", 100), None);
    }

    #[test]
    fn a_cut_file_says_so_and_how_big_it_was() {
        let block = text_block("log.txt", "abc", true, 3, 10);
        assert!(
            block.starts_with("[attached file: log.txt]\n```\nabc\n```"),
            "{block}"
        );
        assert!(
            block.ends_with("[log.txt was cut: only its first 3 of 10 bytes are shown]"),
            "{block}"
        );
        let whole = text_block("a.py", "print(1)\n", false, 100, 9);
        assert_eq!(whole, "[attached file: a.py]\n```\nprint(1)\n```");
    }

    #[test]
    fn file_content_cannot_close_the_fence() {
        let block = text_block("x.md", "```\ncode\n```", false, 100, 0);
        assert!(block.contains("````\n```\ncode\n```\n````"), "{block}");
    }

    #[test]
    fn kinds_come_from_the_type_or_the_name() {
        assert_eq!(
            kind(&att("cat.png", Some("image/png"))),
            Kind::Image("image/png")
        );
        assert_eq!(kind(&att("cat.JPG", None)), Kind::Image("image/jpeg"));
        assert_eq!(
            kind(&att("x", Some("image/webp"))),
            Kind::Image("image/webp")
        );
        assert_eq!(kind(&att("a.svg", Some("image/svg+xml"))), Kind::Unknown);
        assert_eq!(kind(&att("main.rs", None)), Kind::Text);
        assert_eq!(
            kind(&att("data", Some("text/csv; charset=utf-8"))),
            Kind::Text
        );
        assert_eq!(kind(&att("Makefile", None)), Kind::Text);
        assert_eq!(
            kind(&att("blob.bin", Some("application/octet-stream"))),
            Kind::Unknown
        );
    }
}
