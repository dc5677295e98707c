//! Attachments through the real engine and store, with the real provider clients talking to
//! the fake LLM servers of both protocols: images in each protocol's format for models that
//! can see, an "omitted" note for the others, and long text files cut with a note.

use crate::support::{key, message, provider, RecordingSink};
use async_trait::async_trait;
use robit_core::{Engine, EngineConfig, TurnOutcome};
use robit_llm::{Anthropic, AnthropicConfig, Provider};
use robit_store::SettingPlace;
use robit_testkit::{FakeAnthropic, FakeLlm, Reply};
use robit_types::{
    Attachment, Capabilities, Inbound, InboundKind, MessageRef, ReplySink, SettingKey, SinkError,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A recording sink that also serves attachment bytes by URL and logs each fetch's limit.
struct FileSink {
    inner: Arc<RecordingSink>,
    files: HashMap<String, Vec<u8>>,
    fetches: Mutex<Vec<(String, u64)>>,
}

impl FileSink {
    fn new(files: &[(&str, &[u8])]) -> Arc<Self> {
        Arc::new(Self {
            inner: RecordingSink::fast(),
            files: files
                .iter()
                .map(|(n, b)| (format!("mem://{n}"), b.to_vec()))
                .collect(),
            fetches: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl ReplySink for FileSink {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        self.inner.post(text).await
    }
    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.inner.edit(message, text).await
    }
    async fn fetch_attachment(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        let url = attachment.url.clone().unwrap_or_default();
        self.fetches.lock().unwrap().push((url.clone(), max_bytes));
        let bytes = self
            .files
            .get(&url)
            .ok_or(SinkError::Rejected("no such file".into()))?;
        Ok(bytes[..bytes.len().min(max_bytes as usize)].to_vec())
    }
}

fn with_files(text: &str, files: &[(&str, &str, u64)]) -> Inbound {
    let mut inbound = message(&key(&format!("att-{}", rand_id())), text);
    if let InboundKind::Message { attachments, .. } = &mut inbound.kind {
        *attachments = files
            .iter()
            .map(|(name, mime, size)| Attachment {
                name: name.to_string(),
                content_type: Some(mime.to_string()),
                size: *size,
                url: Some(format!("mem://{name}")),
            })
            .collect();
    }
    inbound
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn engine(config: EngineConfig, provider: Arc<dyn Provider>) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = robit_store::connect_sqlite(dir.path().join("a.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (Engine::new(config, store, Some(provider), None), dir)
}

async fn turn(engine: &Engine, sink: &Arc<FileSink>, inbound: Inbound) -> TurnOutcome {
    engine
        .submit(inbound, sink.clone())
        .await
        .unwrap()
        .wait()
        .await
}

fn vision(model: &str) -> EngineConfig {
    let mut config = EngineConfig {
        default_model: model.to_string(),
        ..EngineConfig::default()
    };
    config.attachments.vision_models = vec![model.to_string()];
    config
}

fn last_user(messages: &Value) -> Value {
    messages
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .cloned()
        .unwrap()
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\npixels";
const PNG_B64: &str = "iVBORw0KGgpwaXhlbHM=";

#[tokio::test]
async fn an_image_reaches_an_anthropic_vision_model_as_a_base64_block() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("a cat"));
    let client = Anthropic::new(AnthropicConfig {
        base_url: fake.base_url(),
        api_key: Some("sk-ant-test".to_string().into()),
        connect_timeout: Duration::from_secs(5),
        first_token_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        ..AnthropicConfig::default()
    })
    .unwrap();
    let (engine, _dir) = engine(vision("claude-test"), Arc::new(client)).await;
    let sink = FileSink::new(&[("cat.png", PNG)]);
    let outcome = turn(
        &engine,
        &sink,
        with_files(
            "what is this?",
            &[("cat.png", "image/png", PNG.len() as u64)],
        ),
    )
    .await;
    assert_eq!(outcome, TurnOutcome::Replied);
    let requests = fake.message_requests();
    let body = &requests.last().unwrap().body;
    // The user's text and the attachments' message are one user message on this API.
    assert_eq!(
        last_user(&body["messages"])["content"],
        json!([
            {"type": "text", "text": "what is this?"},
            {"type": "text", "text": "[image: cat.png]"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        ])
    );
}

#[tokio::test]
async fn an_image_reaches_an_openai_vision_model_as_a_data_url_and_only_once() {
    let llm = FakeLlm::start().await;
    llm.push_all([Reply::text("a cat"), Reply::text("still a cat")]);
    let (engine, _dir) = engine(vision("gpt-test"), provider(&llm)).await;
    let sink = FileSink::new(&[("cat.png", PNG)]);
    let first = with_files("what is this?", &[("cat.png", "image/png", 0)]);
    let conversation = first.key.clone();
    assert_eq!(turn(&engine, &sink, first).await, TurnOutcome::Replied);
    let body = llm.chat_requests().last().unwrap().body.clone();
    assert_eq!(
        last_user(&body["messages"])["content"],
        json!([
            {"type": "text", "text": "[image: cat.png]"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}")}},
        ])
    );
    // Later turns replay the placeholder from history, not the image.
    let again = message(&conversation, "and now?");
    assert_eq!(turn(&engine, &sink, again).await, TurnOutcome::Replied);
    let body = llm.chat_requests().last().unwrap().body.clone();
    let texts: Vec<Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert!(texts.contains(&json!("[image: cat.png]")), "{texts:?}");
    assert!(!body.to_string().contains(PNG_B64));
}

#[tokio::test]
async fn an_image_to_a_model_without_vision_becomes_an_omitted_note() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("ok"));
    let (engine, _dir) = engine(EngineConfig::default(), provider(&llm)).await;
    let sink = FileSink::new(&[("cat.png", PNG)]);
    let inbound = with_files("look", &[("cat.png", "image/png", 0)]);
    assert_eq!(turn(&engine, &sink, inbound).await, TurnOutcome::Replied);
    let body = llm.chat_requests().last().unwrap().body.clone();
    assert_eq!(
        last_user(&body["messages"])["content"],
        json!("[image omitted: cat.png — the model cannot see images]")
    );
    assert!(
        sink.fetches.lock().unwrap().is_empty(),
        "nothing to download"
    );
}

/// An engine whose configuration's default model is `default`, where only `vision-model`
/// sees images, and whose test channel has its model set to `channel`.
async fn channel_model_engine(
    default: &str,
    channel: &str,
    llm: &FakeLlm,
) -> (Engine, tempfile::TempDir, Inbound) {
    let mut config = EngineConfig {
        default_model: default.to_string(),
        ..EngineConfig::default()
    };
    config.attachments.vision_models = vec!["vision-model".to_string()];
    let (engine, dir) = engine(config, provider(llm)).await;
    let inbound = with_files("what is this?", &[("cat.png", "image/png", 0)]);
    let place = SettingPlace {
        platform: inbound.key.platform,
        workspace: inbound.key.workspace.clone(),
        channel: Some(inbound.key.channel.clone()),
    };
    engine
        .change_setting(&place, SettingKey::Model, Some(channel), "admin")
        .await
        .unwrap();
    (engine, dir, inbound)
}

#[tokio::test]
async fn a_channel_set_to_a_vision_model_gets_images_though_the_default_cannot_see() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("a cat"));
    let (engine, _dir, inbound) = channel_model_engine("plain-model", "vision-model", &llm).await;
    let sink = FileSink::new(&[("cat.png", PNG)]);
    assert_eq!(turn(&engine, &sink, inbound).await, TurnOutcome::Replied);
    let body = llm.chat_requests().last().unwrap().body.clone();
    assert_eq!(body["model"], "vision-model");
    assert_eq!(
        last_user(&body["messages"])["content"],
        json!([
            {"type": "text", "text": "[image: cat.png]"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}")}},
        ])
    );
}

#[tokio::test]
async fn a_channel_set_to_a_model_without_vision_gets_no_images_though_the_default_sees() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("ok"));
    let (engine, _dir, inbound) = channel_model_engine("vision-model", "plain-model", &llm).await;
    let sink = FileSink::new(&[("cat.png", PNG)]);
    assert_eq!(turn(&engine, &sink, inbound).await, TurnOutcome::Replied);
    let body = llm.chat_requests().last().unwrap().body.clone();
    assert_eq!(body["model"], "plain-model");
    assert_eq!(
        last_user(&body["messages"])["content"],
        json!("[image omitted: cat.png — the model cannot see images]")
    );
    assert!(!body.to_string().contains(PNG_B64));
    assert!(
        sink.fetches.lock().unwrap().is_empty(),
        "nothing to download"
    );
}

#[tokio::test]
async fn a_long_text_file_is_cut_at_the_limit_with_a_note() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("ok"));
    let mut config = EngineConfig::default();
    config.attachments.max_text_bytes = 10;
    let (engine, _dir) = engine(config, provider(&llm)).await;
    let log = "0123456789abcdefghij";
    let sink = FileSink::new(&[("app.log", log.as_bytes())]);
    let inbound = with_files("why?", &[("app.log", "text/plain", 20)]);
    assert_eq!(turn(&engine, &sink, inbound).await, TurnOutcome::Replied);
    // One byte more than the limit is asked for, to learn that the file is longer.
    assert_eq!(
        *sink.fetches.lock().unwrap(),
        vec![("mem://app.log".to_string(), 11)]
    );
    let body = llm.chat_requests().last().unwrap().body.clone();
    assert_eq!(
        last_user(&body["messages"])["content"],
        json!("[attached file: app.log]\n```\n0123456789\n```\n[app.log was cut: only its first 10 of 20 bytes are shown]")
    );
}

#[tokio::test]
async fn a_binary_file_is_named_but_not_sent() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("ok"));
    let (engine, _dir) = engine(EngineConfig::default(), provider(&llm)).await;
    let sink = FileSink::new(&[("blob.bin", &[0u8, 159, 146, 150][..])]);
    let inbound = with_files("?", &[("blob.bin", "application/octet-stream", 4)]);
    assert_eq!(turn(&engine, &sink, inbound).await, TurnOutcome::Replied);
    let body = llm.chat_requests().last().unwrap().body.clone();
    assert_eq!(
        last_user(&body["messages"])["content"],
        json!("[attachment not read: blob.bin — only text files and images are supported]")
    );
}
