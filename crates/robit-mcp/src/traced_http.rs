//! The streamable HTTP client under rmcp's transport, with the W3C trace context
//! (`traceparent`, `tracestate`) as headers of each tool call's POST.
//!
//! rmcp 0.15 sends from its transport's worker task, outside the span of the turn that
//! called the tool, and has no per-request headers; so the caller puts the context in the
//! request's `_meta` (`client.rs`), and this client lifts it into headers. Every request is
//! sent by rmcp's own reqwest implementation: a traced tool call goes through a client whose
//! default headers carry the context. That client is built per call, so a traced call opens
//! its own connection; calls without a context (export off, or not a tool call) share the
//! pooled one. Re-implementing rmcp's POST handling instead would fork its protocol code.

use futures::stream::BoxStream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;
use std::sync::Arc;
use std::time::Duration;

/// The names of the trace context headers (lower case, as the propagator gives them).
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

#[derive(Clone)]
pub(crate) struct TracedHttp {
    pooled: reqwest::Client,
    connect_timeout: Duration,
}

impl TracedHttp {
    pub(crate) fn new(connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            pooled: reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .build()?,
            connect_timeout,
        })
    }

    /// The client to send `message` with: the pooled one, or one carrying its trace context.
    fn client_for(
        &self,
        message: &ClientJsonRpcMessage,
    ) -> Result<reqwest::Client, reqwest::Error> {
        let headers = trace_headers(message);
        if headers.is_empty() {
            return Ok(self.pooled.clone());
        }
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .default_headers(headers)
            .build()
    }
}

/// The trace context a tool call carries in its `_meta`, as headers; values that are not
/// valid header values are left out rather than failing the call.
fn trace_headers(message: &ClientJsonRpcMessage) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let JsonRpcMessage::Request(request) = message else {
        return headers;
    };
    let ClientRequest::CallToolRequest(call) = &request.request else {
        return headers;
    };
    let Some(meta) = &call.params.meta else {
        return headers;
    };
    for name in TRACE_HEADERS {
        if let Some(value) = meta.0.get(name).and_then(|v| v.as_str()) {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
    headers
}

impl StreamableHttpClient for TracedHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let client = self
            .client_for(&message)
            .map_err(StreamableHttpError::Client)?;
        client
            .post_message(uri, message, session_id, auth_token)
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_token: Option<String>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.pooled
            .delete_session(uri, session_id, auth_token)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.pooled
            .get_stream(uri, session_id, last_event_id, auth_token)
            .await
    }
}
