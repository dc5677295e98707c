//! `/run gvisor` and `run_code` with `tier: gvisor`, through the engine, with the real
//! wasm sandbox and the real gVisor tier behind `robit_sandbox::Tiers`.
//!
//! Without `runsc` these tests print why and pass without running (CI installs it); with
//! runsc but no rootfs they fail.

use crate::support::{key, message, Harness, RecordingSink};
use async_trait::async_trait;
use robit_core::{EngineConfig, TurnOutcome};
use robit_sandbox::{CodeRunner, Tier, Tiers};
use robit_store::SettingPlace;
use robit_testkit::llm::Reply;
use robit_types::{Capabilities, MessageRef, Platform, ReplySink, SinkError};
use std::sync::{Arc, Mutex};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

const CHART: &str = "import pandas as pd, matplotlib.pyplot as plt\n\
df = pd.DataFrame({'x': [1, 2, 3], 'y': [2, 4, 9]})\n\
print(df['y'].sum())\n\
df.plot(x='x', y='y')\n\
plt.show()";

/// A sink that takes uploads, like Discord and Slack.
struct UploadSink {
    inner: Arc<RecordingSink>,
    files: Mutex<Vec<(String, Vec<u8>)>>,
}

#[async_trait]
impl ReplySink for UploadSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_upload_bytes: Some(8 << 20),
            ..self.inner.capabilities()
        }
    }
    async fn post(&self, t: &str) -> Result<MessageRef, SinkError> {
        self.inner.post(t).await
    }
    async fn edit(&self, m: &MessageRef, t: &str) -> Result<(), SinkError> {
        self.inner.edit(m, t).await
    }
    async fn upload(
        &self,
        name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        self.files
            .lock()
            .unwrap()
            .push((name.to_string(), bytes.to_vec()));
        self.inner.post(comment).await
    }
}

fn upload_sink() -> Arc<UploadSink> {
    Arc::new(UploadSink {
        inner: RecordingSink::fast(),
        files: Mutex::new(Vec::new()),
    })
}

/// Both tiers, or `None` (printed) when runsc is absent.
async fn tiers() -> Option<Arc<dyn CodeRunner>> {
    let has_runsc = std::process::Command::new("runsc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_runsc {
        eprintln!("SKIPPED: runsc is not installed (run scripts/install-runsc)");
        return None;
    }
    let rootfs = std::env::var_os("ROBIT_GVISOR_ROOTFS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| robit_sandbox_gvisor::DEFAULT_ROOTFS.into());
    let mut config = robit_sandbox_gvisor::GvisorConfig::new(rootfs);
    config.pool_size = 0;
    config.work_root = "/var/tmp/robit-gvisor-test".into();
    let gvisor = robit_sandbox_gvisor::GvisorSandbox::new(config)
        .await
        .expect("gvisor tier starts (scripts/build-gvisor-rootfs)");
    let wasm = crate::support::sandbox().await;
    Some(Arc::new(
        Tiers::new(Some(wasm)).with(Tier::Gvisor, Arc::new(gvisor)),
    ))
}

async fn harness(runner: Arc<dyn CodeRunner>) -> (Harness, tempfile::TempDir) {
    Harness::with_runner(EngineConfig::default(), runner).await
}

async fn submit(h: &Harness, sink: &Arc<UploadSink>, text: &str, channel: &str) -> TurnOutcome {
    h.engine
        .submit(message(&key(channel), text), sink.clone())
        .await
        .unwrap()
        .wait()
        .await
}

#[tokio::test]
async fn run_gvisor_posts_pandas_output_and_the_chart() {
    let Some(runner) = tiers().await else { return };
    let (h, _dir) = harness(runner).await;
    let sink = upload_sink();
    let out = submit(
        &h,
        &sink,
        &format!("/run gvisor\n```python\n{CHART}\n```"),
        "gv",
    )
    .await;
    assert_eq!(out, TurnOutcome::Command);
    let shown = sink.inner.transcript();
    assert!(shown.contains("```\n15\n```"), "{shown}");
    assert!(shown.contains("exit 0"), "{shown}");
    let files = sink.files.lock().unwrap().clone();
    assert_eq!(files.len(), 1, "{shown}");
    assert_eq!(files[0].0, "figure-1.png");
    assert!(files[0].1.starts_with(PNG_MAGIC));

    // The same code on the default tier has no pandas: the tiers are really different.
    let wasm = upload_sink();
    submit(&h, &wasm, &format!("/run python {CHART}"), "gv").await;
    assert!(
        wasm.inner.transcript().contains("ModuleNotFoundError"),
        "{}",
        wasm.inner.transcript()
    );
}

#[tokio::test]
async fn the_model_picks_the_gvisor_tier_and_the_chart_is_posted() {
    let Some(runner) = tiers().await else { return };
    let (h, _dir) = harness(runner).await;
    let args = serde_json::json!({"language": "python", "tier": "gvisor", "code": CHART});
    h.llm
        .push(Reply::tool_call("run_code", args.to_string()).with_text("Plotting."));
    h.llm.push(Reply::text("Here is the chart."));
    let sink = upload_sink();
    assert_eq!(
        submit(&h, &sink, "plot y against x", "gvmodel").await,
        TurnOutcome::Replied
    );
    let shown = sink.inner.transcript();
    assert!(shown.contains("Running python (gvisor)"), "{shown}");
    assert!(shown.contains("```\n15\n```"), "{shown}");
    let files = sink.files.lock().unwrap().clone();
    assert_eq!(files.len(), 1, "{shown}");
    assert!(files[0].1.starts_with(PNG_MAGIC));
    let reqs = h.llm.chat_requests();
    // The tool offered the tier and said when to use it.
    let tool = &reqs[0].body["tools"][0]["function"];
    assert_eq!(
        tool["parameters"]["properties"]["tier"]["enum"],
        serde_json::json!(["wasm", "gvisor"])
    );
    assert!(tool["description"].as_str().unwrap().contains("pandas"));
    // The model read the output and learned of the file.
    let second = reqs[1].body["messages"].as_array().unwrap().clone();
    let result = second[second.len() - 1]["content"].as_str().unwrap();
    assert!(
        result.contains("15") && result.contains("figure-1.png"),
        "{result}"
    );
}

#[tokio::test]
async fn a_channel_can_forbid_the_tier() {
    let Some(runner) = tiers().await else { return };
    let (h, _dir) = harness(runner).await;
    let k = key("nogv");
    h.store
        .put_setting(
            &SettingPlace {
                platform: Platform::Console,
                workspace: k.workspace.clone(),
                channel: Some(k.channel.clone()),
            },
            "sandbox.gvisor",
            Some("false"),
            "admin",
        )
        .await
        .unwrap();
    let sink = upload_sink();
    submit(&h, &sink, "/run gvisor print(1)", "nogv").await;
    let shown = sink.inner.transcript();
    assert!(shown.contains("turned off in this channel"), "{shown}");
    assert!(!shown.contains("exit 0"), "{shown}");

    // The model is not offered the tier there, and a call naming it anyway is refused.
    let args = serde_json::json!({"language": "python", "tier": "gvisor", "code": "print(1)"});
    h.llm.push(Reply::tool_call("run_code", args.to_string()));
    h.llm.push(Reply::text("ok"));
    submit(&h, &sink, "run it", "nogv").await;
    let reqs = h.llm.chat_requests();
    let tool = &reqs[0].body["tools"][0]["function"];
    assert!(tool["parameters"]["properties"].get("tier").is_none());
    let second = reqs[1].body["messages"].as_array().unwrap().clone();
    let result = second[second.len() - 1]["content"].as_str().unwrap();
    assert!(result.contains("turned off"), "{result}");
}

#[tokio::test]
async fn without_the_tier_run_gvisor_says_it_is_not_available() {
    // Wasm only: no runsc needed.
    let (h, _dir) = harness(crate::support::sandbox().await).await;
    let sink = upload_sink();
    submit(&h, &sink, "/run gvisor print(1)", "absent").await;
    let shown = sink.inner.transcript();
    assert!(shown.contains("not available on this server"), "{shown}");
}

/// A runner that counts the engine's `shutdown` calls and runs nothing.
#[derive(Default)]
struct CountsShutdowns(std::sync::atomic::AtomicUsize);

#[async_trait]
impl CodeRunner for CountsShutdowns {
    async fn run(
        &self,
        _language: robit_sandbox::Language,
        _code: &str,
        _stdin: &[u8],
        _limits: robit_sandbox::Limits,
    ) -> Result<robit_sandbox::RunOutput, robit_sandbox::SandboxError> {
        Err(robit_sandbox::SandboxError::Internal("not used".into()))
    }

    async fn shutdown(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The engine's graceful stop shuts its sandbox down, every tier of it: the gVisor tier
/// removes its warm sandboxes and their scratch mounts then, not never (robit exited with a
/// warm sandbox's mount left behind before).
#[tokio::test]
async fn a_graceful_stop_shuts_every_tier_down() {
    let wasm = Arc::new(CountsShutdowns::default());
    let gvisor = Arc::new(CountsShutdowns::default());
    let tiers = Tiers::new(Some(wasm.clone())).with(Tier::Gvisor, gvisor.clone());
    let (h, _dir) = harness(Arc::new(tiers)).await;
    h.engine.shutdown(std::time::Duration::from_secs(1)).await;
    for tier in [&wasm, &gvisor] {
        assert_eq!(tier.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
