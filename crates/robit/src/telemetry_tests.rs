//! Tests of `telemetry`, beside it rather than inside because they drive the wiring above
//! it (`app`): the `OTEL_*` parsing, and one event through the real wiring (the binary's
//! engine, a SQLite file, the fake model server, the console adapter, the Wasmtime sandbox)
//! with the OpenTelemetry layer on an in-memory exporter: the span tree it leaves.

use crate::telemetry::*;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::Value;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use robit_testkit::{FakeLlm, Reply};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// Runs the calling test again in a process of its own: `true` in that child, which runs the
/// test's body; `false` in the parent, once it has asserted that the child passed.
///
/// Why: tracing caches process-wide whether a callsite is enabled, and the other tests of this
/// binary hit the same callsites on their own threads under no subscriber. With the span
/// tests' subscriber scoped to their thread, that cache now and then said "disabled" for one
/// of the event's spans (`inbound`, `accept` or `turn` missing in about 1 run in 6 of these
/// tests alone), whatever the locking and cache rebuilds around it. Alone in a process,
/// nothing else touches the cache.
fn in_own_process(test: &str) -> bool {
    const CHILD: &str = "ROBIT_SPAN_TEST_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    // libtest names tests by module path without the crate.
    let name = test.split_once("::").map_or(test, |(_, rest)| rest);
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{name} failed in its own process:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "{name} did not run in its own process:\n{text}"
    );
    false
}

/// The binary's own layer and propagator on an in-memory exporter, installed for this thread
/// until dropped.
struct Recorder {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _scoped: tracing::subscriber::DefaultGuard,
}

impl Recorder {
    fn install() -> Recorder {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        let scoped = tracing::subscriber::set_default(subscriber);
        install_propagator();
        Recorder {
            exporter,
            provider,
            _scoped: scoped,
        }
    }
}

#[test]
fn export_is_off_without_an_otlp_endpoint() {
    assert_eq!(settings(env(&[])), None);
    // Naming the service or a sampler alone does not turn export on.
    assert_eq!(
        settings(env(&[
            ("OTEL_SERVICE_NAME", "bot"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "  "),
        ])),
        None
    );
}

#[test]
fn an_endpoint_turns_export_on_with_robits_defaults() {
    let s = settings(env(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://collector:4318",
    )]))
    .unwrap();
    assert_eq!(
        s,
        OtelSettings {
            endpoint: "http://collector:4318".into(),
            service_name: Some("robit".into()),
            instance_id: true,
        }
    );
    // The traces endpoint wins over the generic one, as the specification says.
    let s = settings(env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://b:4318/v1/traces",
        ),
    ]))
    .unwrap();
    assert_eq!(s.endpoint, "http://b:4318/v1/traces");
}

#[test]
fn the_environment_names_the_service_and_instance_over_robits_defaults() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    let s = settings(env(&[endpoint, ("OTEL_SERVICE_NAME", "bot-eu")])).unwrap();
    assert_eq!(s.service_name, None);
    let s = settings(env(&[
        endpoint,
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod, service.name=bot,service.instance.id=pod-7",
        ),
    ]))
    .unwrap();
    assert_eq!(s.service_name, None);
    assert!(!s.instance_id);
    // robit's defaults land on the resource only where the environment left a gap.
    let r = resource(&settings(env(&[endpoint])).unwrap(), "host-1-2a");
    let get = |k: &'static str| r.get(&opentelemetry::Key::from_static_str(k));
    assert_eq!(get("service.name"), Some(Value::from("robit")));
    assert_eq!(get("service.instance.id"), Some(Value::from("host-1-2a")));
}

#[test]
fn the_sdk_switch_and_other_exporters_turn_export_off() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    assert_eq!(
        settings(env(&[endpoint, ("OTEL_SDK_DISABLED", "true")])),
        None
    );
    assert_eq!(
        settings(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])),
        None
    );
    assert!(settings(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp")])).is_some());
    assert!(settings(env(&[endpoint, ("OTEL_SDK_DISABLED", "false")])).is_some());
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one `{name}` span in {:?}", names(spans));
    found[0]
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

/// The names of `span`'s ancestors, nearest first.
fn ancestors(spans: &[SpanData], span: &SpanData) -> Vec<String> {
    let mut chain = Vec::new();
    let mut parent = span.parent_span_id;
    while parent != SpanId::INVALID {
        let Some(p) = spans.iter().find(|s| s.span_context.span_id() == parent) else {
            chain.push(format!("<missing {parent}>"));
            break;
        };
        chain.push(p.name.to_string());
        parent = p.parent_span_id;
    }
    chain
}

/// `traceparent` = version-traceid-parentid-flags.
fn parse_traceparent(value: &str) -> (TraceId, SpanId) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {value}");
    (
        TraceId::from_hex(parts[1]).unwrap(),
        SpanId::from_hex(parts[2]).unwrap(),
    )
}

#[tokio::test(flavor = "current_thread")]
async fn one_event_is_one_trace_from_the_adapter_to_the_model_the_sandbox_and_the_posts() {
    if !in_own_process(concat!(
        module_path!(),
        "::one_event_is_one_trace_from_the_adapter_to_the_model_the_sandbox_and_the_posts"
    )) {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guests = root.join("data/guests");
    assert!(
        guests.join("quickjs.wasm").exists(),
        "sandbox guests missing in {}: run scripts/fetch-guests",
        guests.display()
    );
    let fake = FakeLlm::start().await;
    fake.push_all([
        Reply::tool_call(
            "run_code",
            r#"{"language":"javascript","code":"console.log(6*7)"}"#,
        )
        .usage(11, 3),
        Reply::text("It prints 42.").usage(29, 4),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let set = |k: &str, v: String| (k.to_string(), v);
    let overrides = [
        set(
            "database.url",
            format!("sqlite://{}", dir.path().join("otel.db").display()),
        ),
        set("llm.base_url", fake.base_url()),
        set("llm.model", "fake-model".into()),
        set(
            "sandbox.python_wasm",
            guests.join("python.wasm").display().to_string(),
        ),
        set(
            "sandbox.quickjs_wasm",
            guests.join("quickjs.wasm").display().to_string(),
        ),
        set(
            "sandbox.cache_dir",
            root.join("data/cache").display().to_string(),
        ),
        set("sandbox.python_pool_size", "0".into()),
    ];
    let loaded = crate::config::load_with_env(None, &overrides, Vec::new()).unwrap();

    // The binary's own layer and propagator, on an exporter the test can read.
    let recorder = Recorder::install();
    let (exporter, provider) = (&recorder.exporter, &recorder.provider);

    let (engine, _store) = crate::app::build_engine(&loaded.config, false)
        .await
        .unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let sink = Arc::new(robit_console::ConsoleSink::plain(Box::new(
        out.reopen().unwrap(),
    )));
    let options = robit_console::ConsoleOptions::default();
    robit_console::run(
        &engine,
        &options,
        &b"what does 6*7 print?\n"[..],
        sink,
        false,
    )
    .await
    .unwrap();
    // Every task of the turn has ended, so every span is closed and exported.
    engine.shutdown(std::time::Duration::from_secs(10)).await;
    provider.force_flush().unwrap();
    let printed = std::fs::read_to_string(out.path()).unwrap();
    assert!(printed.contains("It prints 42."), "console got {printed:?}");
    let spans = exporter.get_finished_spans().unwrap();

    // root → accept → turn → model.call / tool.round → tool.call → sandbox.run, and posts.
    let inbound = one(&spans, "inbound");
    assert_eq!(
        inbound.parent_span_id,
        SpanId::INVALID,
        "the adapter's span is the root"
    );
    assert_eq!(attr(inbound, "platform"), Some(Value::from("console")));
    let trace = inbound.span_context.trace_id();
    let id = |s: &SpanData| s.span_context.span_id();
    let accept = one(&spans, "accept");
    assert_eq!(accept.parent_span_id, id(inbound));
    let turn = one(&spans, "turn");
    assert_eq!(
        turn.parent_span_id,
        id(accept),
        "the worker task continues the trace"
    );
    assert_eq!(
        attr(turn, "replica"),
        Some(Value::from(crate::app::replica_id().to_string()))
    );
    let calls = named(&spans, "model.call");
    assert_eq!(calls.len(), 2, "a tool round, then the answer");
    for call in &calls {
        assert_eq!(call.parent_span_id, id(turn));
        assert_eq!(attr(call, "model"), Some(Value::from("fake-model")));
    }
    let mut calls = calls;
    calls.sort_by_key(|c| c.start_time);
    assert_eq!(attr(calls[0], "input_tokens"), Some(Value::I64(11)));
    assert_eq!(attr(calls[0], "end"), Some(Value::from("tool_calls")));
    assert_eq!(attr(calls[1], "output_tokens"), Some(Value::I64(4)));
    assert_eq!(attr(calls[1], "end"), Some(Value::from("answered")));
    let round = one(&spans, "tool.round");
    assert_eq!(round.parent_span_id, id(turn));
    let tool = one(&spans, "tool.call");
    assert_eq!(tool.parent_span_id, id(round));
    assert_eq!(attr(tool, "tool"), Some(Value::from("run_code")));
    let run = one(&spans, "sandbox.run");
    assert_eq!(run.parent_span_id, id(tool));
    assert_eq!(attr(run, "tier"), Some(Value::from("wasm")));
    assert_eq!(attr(run, "exit_code"), Some(Value::I64(0)));
    assert_eq!(attr(run, "outcome"), Some(Value::from("finished")));
    assert!(attr(run, "duration_ms").is_some());
    // The answer's post is made while the model streams; the code and its output while the
    // tool runs.
    let posts = named(&spans, "platform.post");
    assert!(
        posts.iter().any(|p| p.parent_span_id == id(calls[1])),
        "the answer is posted under its model call: {:?}",
        posts
            .iter()
            .map(|p| ancestors(&spans, p))
            .collect::<Vec<_>>()
    );
    assert!(
        posts.iter().any(|p| p.parent_span_id == id(tool)),
        "the code and its output are posted under the tool call"
    );
    for span in &spans {
        assert_eq!(
            span.span_context.trace_id(),
            trace,
            "{} in the event's trace",
            span.name
        );
        if span.name != "inbound" {
            assert_eq!(
                ancestors(&spans, span).last().map(String::as_str),
                Some("inbound"),
                "{} hangs under the root",
                span.name
            );
        }
    }

    // Each request to the provider carries its model call's context.
    let requests = fake.chat_requests();
    assert_eq!(requests.len(), 2);
    for (request, call) in requests.iter().zip(&calls) {
        let header = request
            .header("traceparent")
            .expect("the provider request carries traceparent");
        let (trace_id, parent) = parse_traceparent(header);
        assert_eq!(trace_id, trace);
        assert_eq!(parent, id(call));
    }
}

/// A thread another "replica" reopens by its route, recording what was posted and edited.
#[derive(Default)]
struct Thread {
    messages: std::sync::Mutex<Vec<String>>,
}

struct Routed(Arc<Thread>);

#[async_trait::async_trait]
impl robit_types::ReplySink for Routed {
    fn capabilities(&self) -> robit_types::Capabilities {
        robit_types::Capabilities {
            min_edit_interval: std::time::Duration::ZERO,
            ..robit_types::Capabilities::default()
        }
    }
    fn route(&self) -> Option<String> {
        Some("test:thread".into())
    }
    async fn post(&self, text: &str) -> Result<robit_types::MessageRef, robit_types::SinkError> {
        let mut m = self.0.messages.lock().unwrap();
        m.push(text.to_string());
        Ok(robit_types::MessageRef((m.len() - 1).to_string()))
    }
    async fn edit(
        &self,
        message: &robit_types::MessageRef,
        text: &str,
    ) -> Result<(), robit_types::SinkError> {
        let i: usize = message.0.parse().unwrap();
        self.0.messages.lock().unwrap()[i] = text.to_string();
        Ok(())
    }
}

struct Opener(Arc<Thread>);

impl robit_types::SinkOpener for Opener {
    fn open(
        &self,
        route: &str,
        _posted: &[robit_types::MessageRef],
    ) -> Option<Arc<dyn robit_types::ReplySink>> {
        (route == "test:thread")
            .then(|| Arc::new(Routed(self.0.clone())) as Arc<dyn robit_types::ReplySink>)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_turn_taken_over_after_a_stop_continues_the_events_trace() {
    if !in_own_process(concat!(
        module_path!(),
        "::a_turn_taken_over_after_a_stop_continues_the_events_trace"
    )) {
        return;
    }
    let fake = FakeLlm::start().await;
    fake.push_all([
        Reply::stall_after("The answer begins"),
        Reply::text("The answer begins and ends."),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let overrides = [
        (
            "database.url".to_string(),
            format!("sqlite://{}", dir.path().join("resume.db").display()),
        ),
        ("llm.base_url".to_string(), fake.base_url()),
        ("llm.model".to_string(), "fake-model".to_string()),
        ("sandbox.enabled".to_string(), "false".to_string()),
    ];
    let loaded = crate::config::load_with_env(None, &overrides, Vec::new()).unwrap();
    let recorder = Recorder::install();
    let (exporter, provider) = (&recorder.exporter, &recorder.provider);

    // The first process takes the event and stops (gracefully, but a crash leaves the same
    // journal row once its lease runs out) while the answer streams.
    let thread = Arc::new(Thread::default());
    let (first, _store) = crate::app::build_engine(&loaded.config, false)
        .await
        .unwrap();
    let inbound =
        robit_console::line_to_inbound(&robit_console::ConsoleOptions::default(), "a question");
    let span = robit_core::inbound_span(inbound.key.platform, "line");
    let submitted = first
        .submit(inbound, Arc::new(Routed(thread.clone())))
        .instrument(span)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !thread
        .messages
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains("begins"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the answer never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    first.shutdown(std::time::Duration::from_millis(50)).await;
    assert_eq!(submitted.wait().await, robit_core::TurnOutcome::Cancelled);

    // The next process takes the turn over from the journal.
    let (second, store) = crate::app::build_engine(&loaded.config, false)
        .await
        .unwrap();
    let opener: Arc<dyn robit_types::SinkOpener> = Arc::new(Opener(thread.clone()));
    let taken = second
        .recover(
            robit_types::Platform::Console,
            &opener,
            Some(std::time::SystemTime::now() + std::time::Duration::from_millis(1)),
        )
        .await
        .unwrap();
    assert_eq!(taken, 1);
    let key = robit_console::line_to_inbound(&robit_console::ConsoleOptions::default(), "x").key;
    let conversation = store.conversation(&key).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let turns = store.turns(conversation.id).await.unwrap();
        if turns[0].status == robit_store::TurnStatus::Done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not finished: {turns:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Its tasks have ended, so its spans are closed and exported.
    second.shutdown(std::time::Duration::from_secs(10)).await;
    assert!(
        thread.messages.lock().unwrap()[0].ends_with("The answer begins and ends."),
        "{:?}",
        thread.messages.lock().unwrap()
    );
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let inbound = one(&spans, "inbound");
    let accept = one(&spans, "accept");
    let resume = one(&spans, "resume");
    let id = |s: &SpanData| s.span_context.span_id();
    let trace = inbound.span_context.trace_id();
    assert_eq!(
        resume.span_context.trace_id(),
        trace,
        "the takeover is in the event's trace"
    );
    assert_eq!(
        resume.parent_span_id,
        id(accept),
        "a child of the stored accept span"
    );
    assert!(
        resume.parent_span_is_remote,
        "continued from the journal, not in memory"
    );
    let turns = named(&spans, "turn");
    assert_eq!(turns.len(), 2, "the cut attempt and the resumed one");
    let resumed = turns
        .iter()
        .find(|t| attr(t, "resumed") == Some(Value::Bool(true)))
        .expect("the resumed turn");
    assert_eq!(resumed.parent_span_id, id(resume));
    assert!(turns.iter().all(|t| t.span_context.trace_id() == trace));
    // The resumed model call is in the trace too, and so is its provider request.
    let calls = named(&spans, "model.call");
    assert!(calls.iter().any(|c| c.parent_span_id == id(resumed)));
    let last = fake.chat_requests().pop().unwrap();
    let (trace_id, _) = parse_traceparent(last.header("traceparent").unwrap());
    assert_eq!(trace_id, trace);
}
