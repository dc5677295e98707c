//! The terminal UI's [`ReplySink`]: every post and edit becomes an event for the reducer;
//! files the sandbox returns are saved under the files directory and their paths shown.
//!
//! One sink per line sent, naming the conversation it answers, so a reply that streams on
//! after the person switched conversations is not drawn into the other one.

use crate::state::Event;
use async_trait::async_trait;
use robit_types::{Capabilities, MessageRef, ReplySink, SinkError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Ids of messages across every sink of the process: a message's id names it in the state.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The largest file saved from a run. The engine's own upload limits apply first; this only
/// keeps a runaway run from filling the disk through the console.
const MAX_SAVED_BYTES: u64 = 64 * 1024 * 1024;

pub struct TuiSink {
    conversation: String,
    events: UnboundedSender<Event>,
    /// Where files of this conversation are saved.
    files_dir: PathBuf,
}

impl TuiSink {
    pub fn new(conversation: &str, events: UnboundedSender<Event>, files_dir: &Path) -> Self {
        Self {
            conversation: conversation.to_string(),
            events,
            files_dir: files_dir.join(file_name(conversation)),
        }
    }

    fn send(&self, event: Event) -> Result<(), SinkError> {
        // The UI is gone (quitting): the reply still completes and is stored.
        self.events
            .send(event)
            .map_err(|_| SinkError::Unavailable("the terminal UI has closed".into()))
    }
}

/// `name` made safe as one path component: no separators, no `..`, no control characters.
fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "file".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// A path in `dir` for `name` that does not exist yet: `name`, then `name-2.ext`, ….
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem}-{n}{ext}")))
        .find(|p| !p.exists())
        .expect("some number is free")
}

#[async_trait]
impl ReplySink for TuiSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The screen takes any length; one message per answer reads best.
            max_message_len: 100_000,
            // A redraw per edit: fast enough to look live, slow enough to stay cheap.
            min_edit_interval: Duration::from_millis(40),
            native_streaming: true,
            max_upload_bytes: Some(MAX_SAVED_BYTES),
            paced: false,
            // Ctrl-C is the terminal's Stop; there are no buttons to draw.
            controls: false,
        }
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.send(Event::Posted {
            conversation: self.conversation.clone(),
            id,
            text: text.to_string(),
        })?;
        Ok(MessageRef(id.to_string()))
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        let id = message
            .0
            .parse()
            .map_err(|_| SinkError::Rejected(format!("unknown message {}", message.0)))?;
        self.send(Event::Edited {
            conversation: self.conversation.clone(),
            id,
            text: text.to_string(),
        })
    }

    async fn upload(
        &self,
        name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        let dir = self.files_dir.clone();
        let name = file_name(name);
        let bytes = bytes.to_vec();
        let path = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            std::fs::create_dir_all(&dir)?;
            let path = free_path(&dir, &name);
            std::fs::write(&path, bytes)?;
            Ok(std::fs::canonicalize(&path).unwrap_or(path))
        })
        .await
        .map_err(|e| SinkError::Unavailable(e.to_string()))?
        .map_err(|e| SinkError::Unavailable(format!("saving the file: {e}")))?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.send(Event::Saved {
            conversation: self.conversation.clone(),
            path: path.display().to_string(),
            comment: comment.to_string(),
        })?;
        Ok(MessageRef(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_saved_under_the_conversation_without_escaping_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("files");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = TuiSink::new("../work", tx, &dir);
        sink.upload("../../chart.png", b"png", "from the run")
            .await
            .unwrap();
        sink.upload("../../chart.png", b"png2", "again")
            .await
            .unwrap();
        let mut paths = Vec::new();
        while let Ok(Event::Saved { path, .. }) = rx.try_recv() {
            paths.push(PathBuf::from(path));
        }
        let base = std::fs::canonicalize(&dir).unwrap().join("_work");
        assert_eq!(
            paths,
            [base.join("_.._chart.png"), base.join("_.._chart-2.png")]
        );
        assert_eq!(std::fs::read(&paths[1]).unwrap(), b"png2");
    }
}
