//! The engine's own short replies (refusals, confirmations, errors): split to the platform's
//! limit, mentions made inert, rate limits waited out. Streamed answers go through
//! `render::StreamRenderer` instead.
//!
//! It must not know turns, commands or the store: every layer above may use it.

use crate::render::{neutralize_mentions, split_message, wait_out_rate_limits};
use robit_types::{ReplySink, UserId};
use std::sync::Arc;

/// Posts a short engine message (split if needed, mentions inert). Failures are logged: there
/// is nowhere else to show them.
pub(crate) async fn say(sink: &Arc<dyn ReplySink>, text: &str) {
    let max = sink.capabilities().max_message_len;
    for part in split_message(&neutralize_mentions(text), max) {
        if let Err(e) = wait_out_rate_limits(|| sink.post(&part)).await {
            tracing::warn!(error = %e, "posting a message failed");
            return;
        }
    }
}

/// Posts a message only `user` sees, where the platform can (a refusal, a `/config` error);
/// elsewhere it is posted to the thread. A failure is logged as `what` failing.
pub(crate) async fn whisper(sink: &Arc<dyn ReplySink>, user: &UserId, text: &str, what: &str) {
    if let Err(e) = wait_out_rate_limits(|| sink.post_ephemeral(user, text)).await {
        tracing::warn!(error = %e, "posting {what} failed");
    }
}
