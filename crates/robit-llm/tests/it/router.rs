//! `ModelRouter`: aliases to upstream models, failover before the first token, and the
//! `Served` event naming who answered.

use super::*;
use robit_llm::{Anthropic, AnthropicConfig, ModelRouter};
use robit_testkit::{FakeAnthropic, Reply};
use std::sync::Arc;

/// A router with alias `smart` → primary (`FakeLlm` as `gpt-big`), then fallback
/// (`FakeAnthropic` as `claude-big`); and `local` → the primary only.
async fn setup() -> (FakeLlm, FakeAnthropic, ModelRouter) {
    let primary = FakeLlm::start().await;
    let fallback = FakeAnthropic::start().await;
    let anthropic = Anthropic::new(AnthropicConfig {
        base_url: fallback.base_url(),
        first_token_timeout: FIRST_TOKEN,
        idle_timeout: IDLE,
        ..AnthropicConfig::default()
    })
    .unwrap();
    let router = ModelRouter::builder()
        .provider("openai", Arc::new(client(&primary)))
        .provider("anthropic", Arc::new(anthropic))
        .model(
            "smart",
            [("openai", "gpt-big"), ("anthropic", "claude-big")],
        )
        .model("local", [("openai", "llama")])
        .build()
        .unwrap();
    (primary, fallback, router)
}

fn ask_model(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        ..ask("hello router")
    }
}

fn served(provider: &str, model: &str) -> StreamEvent {
    StreamEvent::Served {
        provider: provider.into(),
        model: model.into(),
    }
}

async fn run(
    router: &ModelRouter,
    model: &str,
) -> Result<(Vec<StreamEvent>, Option<LlmError>), LlmError> {
    let stream = router
        .stream(ask_model(model), CancellationToken::new())
        .await?;
    Ok(collect(stream).await)
}

#[tokio::test]
async fn unknown_model_is_an_unknown_model_error() {
    let (primary, _fallback, router) = setup().await;
    let error = run(&router, "gpt-7").await.err().unwrap();
    assert!(
        matches!(&error, LlmError::UnknownModel(m) if m == "gpt-7"),
        "{error:?}"
    );
    assert!(primary.requests().is_empty());
}

#[tokio::test]
async fn models_lists_the_aliases_in_order() {
    let (_primary, _fallback, router) = setup().await;
    assert_eq!(router.models(), vec!["smart", "local"]);
}

#[tokio::test]
async fn primary_serves_first_with_the_upstream_model_id() {
    let (primary, fallback, router) = setup().await;
    primary.push(Reply::text("from the primary"));
    let (events, error) = run(&router, "smart").await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events[0], served("openai", "gpt-big"));
    assert_eq!(text_of(&events), "from the primary");
    assert_eq!(primary.chat_requests()[0].body["model"], "gpt-big");
    assert!(fallback.requests().is_empty());
}

#[tokio::test]
async fn primary_503_fails_over_and_served_names_the_fallback() {
    let (primary, fallback, router) = setup().await;
    primary.push(Reply::status(503));
    fallback.push(Reply::text("from the fallback"));
    let (events, error) = run(&router, "smart").await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events[0], served("anthropic", "claude-big"));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Served { .. }))
            .count(),
        1
    );
    assert_eq!(text_of(&events), "from the fallback");
    assert_eq!(primary.chat_requests()[0].body["model"], "gpt-big");
    assert_eq!(fallback.message_requests()[0].body["model"], "claude-big");
}

#[tokio::test]
async fn no_first_token_in_time_fails_over() {
    let (primary, fallback, router) = setup().await;
    primary.push(Reply::stall_after(""));
    fallback.push(Reply::text("patient answer"));
    let (events, error) = run(&router, "smart").await.unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events[0], served("anthropic", "claude-big"));
    assert_eq!(text_of(&events), "patient answer");
}

#[tokio::test]
async fn auth_errors_do_not_fail_over() {
    let (primary, fallback, router) = setup().await;
    primary.push(Reply::status(401));
    let error = run(&router, "smart").await.err().unwrap();
    assert!(
        matches!(error, LlmError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(fallback.requests().is_empty());
}

#[tokio::test]
async fn a_started_answer_is_never_moved() {
    let (primary, fallback, router) = setup().await;
    primary.push(Reply::error_after("half of it", "the model crashed"));
    let (events, error) = run(&router, "smart").await.unwrap();
    assert_eq!(events[0], served("openai", "gpt-big"));
    assert_eq!(text_of(&events), "half of it");
    assert!(matches!(error, Some(LlmError::Stream(_))), "{error:?}");
    assert!(fallback.requests().is_empty());
}

#[tokio::test]
async fn when_every_target_fails_the_last_error_is_returned() {
    let (primary, fallback, router) = setup().await;
    primary.push(Reply::status(500));
    fallback.push(Reply::status(529));
    let error = run(&router, "smart").await.err().unwrap();
    assert!(
        matches!(error, LlmError::Status { status: 529, .. }),
        "{error:?}"
    );
    // An alias with a single target reports that target's error as is.
    primary.push(Reply::status(503));
    let error = run(&router, "local").await.err().unwrap();
    assert!(
        matches!(error, LlmError::Status { status: 503, .. }),
        "{error:?}"
    );
}
