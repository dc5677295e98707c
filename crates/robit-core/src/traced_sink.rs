//! A span around each platform call a turn makes through its sink (post, edit, upload), so
//! a trace shows when the answer reached the thread and what each call cost.
//!
//! A decorator rather than spans in each adapter: every adapter (the console included) gets
//! the same spans, and the engine wraps the adapter's own sink, under the journal's, so a
//! span is one real platform call. Adapters may add spans of their own inside (retries,
//! 429 waits). Every method of `ReplySink` is forwarded, the defaulted ones too: a default
//! here would quietly turn the adapter's own version (buttons, idempotent posts) off.

use async_trait::async_trait;
use robit_types::{
    AnswerControls, Attachment, Capabilities, MessageRef, ReplySink, SinkError, UserId,
};
use std::future::Future;
use std::sync::Arc;
use tracing::Instrument;

pub(crate) struct TracedSink {
    inner: Arc<dyn ReplySink>,
}

impl TracedSink {
    pub(crate) fn new(inner: Arc<dyn ReplySink>) -> Self {
        Self { inner }
    }
}

/// Runs one platform call in its span and records its failure there.
async fn traced<T>(
    span: tracing::Span,
    call: impl Future<Output = Result<T, SinkError>>,
) -> Result<T, SinkError> {
    let result = call.instrument(span.clone()).await;
    if let Err(e) = &result {
        span.record("error", tracing::field::display(e));
    }
    result
}

/// A platform call's span; counts are i64 because the OpenTelemetry bridge exports a u64
/// as a string.
macro_rules! call_span {
    ($name:literal $(, $field:ident = $value:expr)*) => {
        tracing::info_span!(
            $name,
            $($field = $value,)*
            error = tracing::field::Empty,
        )
    };
}

#[async_trait]
impl ReplySink for TracedSink {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn route(&self) -> Option<String> {
        self.inner.route()
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        let span = call_span!("platform.post", chars = text.chars().count() as i64);
        traced(span, self.inner.post(text)).await
    }

    async fn post_once(&self, key: &str, text: &str) -> Result<MessageRef, SinkError> {
        let span = call_span!(
            "platform.post",
            chars = text.chars().count() as i64,
            key = key
        );
        traced(span, self.inner.post_once(key, text)).await
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        let span = call_span!("platform.edit", chars = text.chars().count() as i64);
        traced(span, self.inner.edit(message, text)).await
    }

    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        let span = call_span!("platform.edit", chars = text.chars().count() as i64);
        traced(span, self.inner.edit_controls(message, text, controls)).await
    }

    async fn set_controls(
        &self,
        message: &MessageRef,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        let span = call_span!("platform.edit", chars = 0i64);
        traced(span, self.inner.set_controls(message, controls)).await
    }

    async fn upload(
        &self,
        file_name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        let span = call_span!("platform.upload", bytes = bytes.len() as i64);
        traced(span, self.inner.upload(file_name, bytes, comment)).await
    }

    async fn fetch_attachment(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        let span = call_span!("platform.download");
        traced(span, self.inner.fetch_attachment(attachment, max_bytes)).await
    }

    async fn post_ephemeral(&self, user: &UserId, text: &str) -> Result<MessageRef, SinkError> {
        let span = call_span!(
            "platform.post_ephemeral",
            chars = text.chars().count() as i64
        );
        traced(span, self.inner.post_ephemeral(user, text)).await
    }

    async fn typing(&self) -> Result<(), SinkError> {
        // Best effort and frequent: not worth a span.
        self.inner.typing().await
    }
}
