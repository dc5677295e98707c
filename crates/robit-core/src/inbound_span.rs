//! The root span of one inbound event, opened by the adapter where it takes the event, so
//! every adapter names and shapes it the same way. Everything the event causes (the
//! engine's accept and turn, the model call, the sandbox run, the platform posts) hangs
//! under it, across task boundaries and, through the turn journal, across replicas.

use robit_types::Platform;

/// A new trace for one event: `kind` says what the platform delivered (`message`,
/// `command`, `line`); `event_id` is filled in by the engine's accept span below it.
pub fn inbound_span(platform: Platform, kind: &'static str) -> tracing::Span {
    // A root whatever the caller is inside of (a platform client's own spans, an HTTP
    // server's): one trace per event.
    tracing::info_span!(parent: None, "inbound", platform = %platform, kind)
}
