//! The seam for trace context propagation: how a library asks for "the headers that carry
//! the current span" (W3C `traceparent`, `tracestate`) without depending on OpenTelemetry.
//!
//! Library crates only create `tracing` spans. Which tracing backend turns those spans into
//! a distributed trace is the binary's choice, so the binary installs a [`Propagator`] once
//! at start; until then (and in every test that installs none) the functions here do
//! nothing. A global hook rather than a port handed to each constructor because the span it
//! reads is already a global of the `tracing` dispatcher: the hook only translates it. This
//! crate names `tracing` (a facade without I/O or runtime) only for the span type.

use std::sync::OnceLock;

/// Translates between a `tracing` span and the headers that carry it to another process.
/// Implemented by the binary over its tracing backend.
pub trait Propagator: Send + Sync + 'static {
    /// The headers that make the receiver's spans children of `span`; empty when `span` is
    /// not part of a recorded trace.
    fn inject(&self, span: &tracing::Span) -> Vec<(String, String)>;

    /// Makes `span` a child of the span `headers` carry (as [`Propagator::inject`] returned
    /// them, perhaps in another process). Only a span that has not been entered yet and has
    /// no children can take a new parent.
    fn adopt(&self, span: &tracing::Span, headers: &[(String, String)]);
}

static PROPAGATOR: OnceLock<Box<dyn Propagator>> = OnceLock::new();

/// Installs the process's propagator. The first one stays; `false` if one was already there.
pub fn install(propagator: Box<dyn Propagator>) -> bool {
    PROPAGATOR.set(propagator).is_ok()
}

/// The headers that carry the current span to another service (empty without a propagator).
pub fn current_headers() -> Vec<(String, String)> {
    PROPAGATOR
        .get()
        .map(|p| p.inject(&tracing::Span::current()))
        .unwrap_or_default()
}

/// The current span's W3C `traceparent`, the one header a stored turn keeps so another
/// replica can continue its trace.
pub fn current_traceparent() -> Option<String> {
    current_headers()
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
        .map(|(_, value)| value)
}

/// Makes `span`, new and not entered yet, a child of the span a stored `traceparent` names.
pub fn continue_from(span: &tracing::Span, traceparent: &str) {
    if let Some(p) = PROPAGATOR.get() {
        p.adopt(span, &[(TRACEPARENT.to_string(), traceparent.to_string())]);
    }
}

/// The W3C Trace Context header name.
pub const TRACEPARENT: &str = "traceparent";
