//! End to end on the gVisor sandbox tier: the real `robit serve`, with the tier enabled,
//! against the loopback Discord and Slack emulators and the fake model. A `/run gvisor` of
//! pandas + matplotlib code, and a model's `run_code` call that chooses the `gvisor` tier,
//! each post the program's output and the chart (an uploaded PNG) to the thread.
//!
//! The tier needs root, `runsc` (scripts/install-runsc) and the rootfs
//! (scripts/build-gvisor-rootfs; `ROBIT_GVISOR_ROOTFS` or the default path). Whether runsc
//! and the rootfs are there is decided the way robit decides it: `robit doctor`'s
//! `gvisor runsc` and `gvisor rootfs` checks. When one of those two fails, each test prints
//! why and passes without running; CI installs both, so there they run. Any other problem
//! of the tier (no root, a sandbox that does not start) fails the tests.

use robit_system_tests::platform;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use platform::{Platform, Posted};
use robit_system_tests::{eventually, robit_bin, Db, Robit};
use robit_testkit::llm::{FakeLlm, Reply};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// pandas sums a table, matplotlib draws it; `plt.show()` is how the tier posts a chart.
const SALES_CODE: &str = r#"import pandas as pd
import matplotlib.pyplot as plt
df = pd.read_csv("sales.csv")
totals = df.groupby("region")["amount"].sum()
print("totals", dict(totals))
totals.plot(kind="bar", title="sales by region")
plt.show()"#;

/// The same program with its table inline, for a platform whose emulator takes no user files.
fn inline_sales_code() -> String {
    SALES_CODE.replace(
        r#"pd.read_csv("sales.csv")"#,
        r#"pd.DataFrame({"region": ["north", "north", "south", "south"], "amount": [10, 5, 7, 1]})"#,
    )
}

const SALES_CSV: &str = "month,region,amount\n1,north,10\n2,north,5\n1,south,7\n2,south,1\n";

/// What the program prints for that table (pandas 1.5 sums to numpy ints).
const TOTALS: &str = "totals {'north': 15, 'south': 8}";

fn rootfs() -> PathBuf {
    std::env::var_os("ROBIT_GVISOR_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/robit-gvisor-rootfs"))
}

/// A work directory of this suite's own, so its sandboxes never mix with another suite's.
fn work_dir() -> PathBuf {
    PathBuf::from("/var/tmp/robit-gvisor-systest")
}

fn gvisor_env() -> Vec<(String, String)> {
    [
        ("ROBIT_SANDBOX__GVISOR__ENABLED", "true".to_string()),
        (
            "ROBIT_SANDBOX__GVISOR__ROOTFS",
            rootfs().display().to_string(),
        ),
        (
            "ROBIT_SANDBOX__GVISOR__WORK_DIR",
            work_dir().display().to_string(),
        ),
        // One warm sandbox: the pool is exercised in the real process, and four processes
        // of this suite at once stay light on a small machine.
        ("ROBIT_SANDBOX__GVISOR__POOL_SIZE", "1".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

/// `None` when the tier can run here; otherwise why the suite is skipped. Runs
/// `robit doctor` once per test binary: its runsc and rootfs checks decide the skip, and
/// with both present its real sandbox start must pass.
fn skip_reason() -> Option<&'static str> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("robit-gvisor-doctor-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut cmd = Command::new(robit_bin());
            cmd.arg("doctor").current_dir(&dir);
            for (k, _) in std::env::vars() {
                if k.starts_with("ROBIT_") || k == "RUST_LOG" {
                    cmd.env_remove(k);
                }
            }
            cmd.env(
                "ROBIT_DATABASE__URL",
                format!("sqlite://{}", dir.join("robit.db").display()),
            )
            .env("ROBIT_SANDBOX__ENABLED", "false")
            // Nothing listens there: the model check fails fast; only the tier's lines matter.
            .env("ROBIT_LLM__BASE_URL", "http://127.0.0.1:9/v1")
            .envs(gvisor_env())
            .env("ROBIT_SANDBOX__GVISOR__POOL_SIZE", "0");
            let out = cmd.output().expect("robit doctor runs");
            let _ = std::fs::remove_dir_all(&dir);
            let report = String::from_utf8_lossy(&out.stdout).into_owned();
            let missing: Vec<String> = report
                .lines()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| {
                    w[0].starts_with("FAIL  gvisor runsc")
                        || w[0].starts_with("FAIL  gvisor rootfs")
                })
                .map(|w| format!("{}\n{}", w[0], w[1]))
                .collect();
            if !missing.is_empty() {
                return Some(missing.join("\n"));
            }
            assert!(
                report.contains("ok    gvisor sandbox start"),
                "runsc and the rootfs are here but the gvisor tier does not work:\n{report}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        })
        .as_deref()
}

/// Whether to run; prints why not.
fn tier_present(test: &str) -> bool {
    match skip_reason() {
        None => true,
        Some(why) => {
            eprintln!("SKIPPED {test}: the gvisor tier is not installed here:\n{why}");
            false
        }
    }
}

async fn start(db: &Db, platform: &Platform, llm: &FakeLlm) -> Robit {
    let mut env = platform.env();
    env.push(("ROBIT_LLM__BASE_URL".into(), llm.base_url()));
    env.extend(gvisor_env());
    let robit = Robit::start(db, &env).await;
    platform.attach(&robit).await;
    robit
}

/// The program's output and a real chart (a PNG, not an empty image) are in the thread.
fn has_output_and_chart(posted: &Posted) -> bool {
    posted.texts.iter().any(|t| t.contains(TOTALS)) && chart(posted).is_some()
}

fn chart(posted: &Posted) -> Option<&(String, Vec<u8>)> {
    posted
        .files
        .iter()
        .find(|(name, bytes)| name.ends_with(".png") && bytes.starts_with(PNG_MAGIC))
}

fn assert_chart(posted: &Posted) {
    let (name, bytes) = chart(posted).expect("a PNG upload");
    assert_eq!(name, "figure-1.png", "the chart `plt.show()` saved");
    assert!(bytes.len() > 5_000, "a drawn chart: {} bytes", bytes.len());
}

/// Stops robit and checks it left no sandbox behind: its scratch mounts and sandbox
/// directories are gone with it.
fn stop_clean(robit: Robit) {
    let pid = robit.pid();
    robit.stop();
    let ours = format!("{}/{pid}-", work_dir().display());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&ours)).collect();
    assert!(left.is_empty(), "scratch mounts left after stop: {left:?}");
}

async fn run_command(platform: Platform) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    let robit = start(&db, &platform, &llm).await;
    let asked = match &platform {
        // Slack shares the CSV with the message: it lands in the sandbox's `/work`.
        Platform::Slack(_) => platform.ask_with_csv(
            &format!("/run gvisor\n```python\n{SALES_CODE}\n```"),
            "sales.csv",
            SALES_CSV,
        ),
        Platform::Discord(_) => platform.ask(&format!(
            "/run gvisor\n```python\n{}\n```",
            inline_sales_code()
        )),
    };
    let done = eventually(|| has_output_and_chart(&platform.posted(&asked))).await;
    let posted = platform.posted(&asked);
    assert!(
        done,
        "{}: no output and chart in the thread: {:?}, files {:?}\n{}",
        platform.name(),
        posted.texts,
        posted.names(),
        robit.log()
    );
    assert_chart(&posted);
    assert!(
        posted.texts.iter().any(|t| t.contains("exit 0")),
        "{:?}",
        posted.texts
    );
    assert!(
        llm.chat_requests().is_empty(),
        "a /run never asks the model"
    );
    stop_clean(robit);
    db.drop().await;
}

async fn model_tool_call(platform: Platform) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    let args = serde_json::json!({
        "language": "python",
        "tier": "gvisor",
        "code": inline_sales_code(),
    });
    llm.push(Reply::tool_call("run_code", args.to_string()));
    llm.push(Reply::text("North sold the most; the chart is above."));
    let robit = start(&db, &platform, &llm).await;
    let asked = platform.ask("plot sales by region");
    let done = eventually(|| {
        let posted = platform.posted(&asked);
        has_output_and_chart(&posted)
            && posted
                .texts
                .iter()
                .any(|t| t.contains("North sold the most"))
    })
    .await;
    let posted = platform.posted(&asked);
    assert!(
        done,
        "{}: no output, chart and answer in the thread: {:?}, files {:?}\n{}",
        platform.name(),
        posted.texts,
        posted.names(),
        robit.log()
    );
    assert_chart(&posted);
    assert!(
        posted
            .texts
            .iter()
            .any(|t| t.contains("Running python (gvisor)")),
        "the code is shown with its tier: {:?}",
        posted.texts
    );
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 2, "one tool round, then the answer");
    // The model was offered the tier, and read the program's output.
    let tools = requests[0].body["tools"].to_string();
    assert!(tools.contains("gvisor"), "tier offered: {tools}");
    let told = requests[1].body["messages"].to_string();
    assert!(told.contains("totals"), "tool result: {told}");
    stop_clean(robit);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_run_gvisor_posts_output_and_chart() {
    if tier_present("slack_run_gvisor_posts_output_and_chart") {
        run_command(Platform::slack().await).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_run_gvisor_posts_output_and_chart() {
    if tier_present("discord_run_gvisor_posts_output_and_chart") {
        run_command(Platform::discord().await).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_model_run_code_on_gvisor_posts_output_and_chart() {
    if tier_present("slack_model_run_code_on_gvisor_posts_output_and_chart") {
        model_tool_call(Platform::slack().await).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_model_run_code_on_gvisor_posts_output_and_chart() {
    if tier_present("discord_model_run_code_on_gvisor_posts_output_and_chart") {
        model_tool_call(Platform::discord().await).await;
    }
}
