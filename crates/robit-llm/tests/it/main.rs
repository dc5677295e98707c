//! Integration tests of the provider clients and decorators against the loopback fake servers
//! from `robit-testkit`: real HTTP, real SSE, no network beyond 127.0.0.1.
//!
//! `errors`, `request`, `streaming` and `timeouts` cover the OpenAI-compatible client;
//! `anthropic` the Anthropic client; `retry`, `router` and `local` the decorators and local
//! server discovery.

mod anthropic;
mod errors;
mod local;
mod request;
mod retry;
mod router;
mod streaming;
mod timeouts;

use futures::StreamExt;
use robit_llm::{
    ChatMessage, ChatRequest, ChatStream, LlmError, OpenAiCompatible, OpenAiConfig, Provider, Role,
    StreamEvent,
};
use robit_testkit::FakeLlm;
use secrecy::SecretString;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Timeouts small enough to keep the suite fast, large enough for a loaded CI machine.
const FIRST_TOKEN: Duration = Duration::from_millis(300);
const IDLE: Duration = Duration::from_millis(300);

fn config(fake: &FakeLlm, key: Option<&str>) -> OpenAiConfig {
    OpenAiConfig {
        name: "fake".into(),
        base_url: fake.base_url(),
        api_key: key.map(|k| SecretString::from(k.to_string())),
        connect_timeout: Duration::from_secs(2),
        first_token_timeout: FIRST_TOKEN,
        idle_timeout: IDLE,
        extra_headers: Vec::new(),
    }
}

fn client(fake: &FakeLlm) -> OpenAiCompatible {
    OpenAiCompatible::new(config(fake, None)).unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        model: "fake-model".into(),
        messages: vec![ChatMessage::new(Role::User, text)],
        tools: Vec::new(),
        max_tokens: None,
    }
}

async fn start(client: &OpenAiCompatible, request: ChatRequest) -> Result<ChatStream, LlmError> {
    client.stream(request, CancellationToken::new()).await
}

/// Every item of the stream up to and including the first error.
async fn collect(mut stream: ChatStream) -> (Vec<StreamEvent>, Option<LlmError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(e) => {
                // After an error the stream must be over.
                assert!(
                    stream.next().await.is_none(),
                    "stream continued after {e:?}"
                );
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn deltas(events: &[StreamEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, StreamEvent::TextDelta(_)))
        .count()
}
