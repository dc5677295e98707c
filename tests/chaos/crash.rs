//! `kill -9` of `robit serve` at points of a turn, then a restart on the same database: the
//! thread ends with exactly one complete answer, the store holds it once, and every journaled
//! turn is closed.

use crate::platform::Platform;
use robit_system_tests::{eventually, Db, Robit};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::Instant;

/// The whole answer the model gives on the second try.
pub(crate) fn full_answer() -> String {
    (0..60)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) async fn start(db: &Db, platform: &Platform, llm: &FakeLlm) -> Robit {
    start_with(db, platform, llm, &[]).await
}

/// [`start`] with `extra` settings.
pub(crate) async fn start_with(
    db: &Db,
    platform: &Platform,
    llm: &FakeLlm,
    extra: &[(String, String)],
) -> Robit {
    let mut env = platform.env();
    env.extend_from_slice(extra);
    env.push(("ROBIT_LLM__BASE_URL".into(), llm.base_url()));
    // On PostgreSQL a restarted process is a new holder: it waits out its predecessor's lease.
    env.push(("ROBIT_ENGINE__LEASE_TTL_MS".into(), "2000".into()));
    let robit = Robit::start(db, &env).await;
    platform.attach(&robit).await;
    robit
}

/// After the restart: one bot message, holding the complete answer, marked as resumed when
/// `resumed`; one stored answer; no open turn.
pub(crate) async fn assert_one_complete_answer(
    db: &Db,
    platform: &Platform,
    asked: &crate::platform::Asked,
    resumed: bool,
    restarted: Instant,
) {
    let full = full_answer();
    let done = eventually(|| platform.answers(asked).iter().any(|a| a.contains(&full))).await;
    let answers = platform.answers(asked);
    assert!(done, "no complete answer after the restart: {answers:?}");
    let recovered = restarted.elapsed();
    println!(
        "RECOVERY {} {} {} ms",
        platform.name(),
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        recovered.as_millis()
    );
    assert_eq!(answers.len(), 1, "exactly one message: {answers:?}");
    assert_eq!(
        answers[0].contains("resumed"),
        resumed,
        "resumed note: {answers:?}"
    );
    // The store catches up right after the last edit.
    let closed = async {
        for _ in 0..500 {
            let open = db
                .rows("SELECT CAST(id AS TEXT) FROM turns WHERE status NOT IN ('done')")
                .await;
            if open.is_empty() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }
    .await;
    assert!(closed, "every turn is done");
    let stored = db
        .rows(
            "SELECT content, status FROM messages WHERE role = 'assistant' AND tool_calls IS NULL",
        )
        .await;
    assert_eq!(
        stored,
        vec![vec![full.clone(), "complete".to_string()]],
        "one complete stored answer"
    );
    let turns = db.rows("SELECT CAST(COUNT(*) AS TEXT) FROM turns").await;
    assert_eq!(turns, vec![vec!["1".to_string()]], "one turn for one event");
}

/// Killed while the answer streams: the restarted process edits the same message from the
/// start and says it resumed.
async fn killed_mid_stream(platform: Platform, db: Db) {
    let llm = FakeLlm::start().await;
    llm.push(Reply::stall_after("word0 word1 word2 word3"));
    llm.push(Reply::text(full_answer()));
    let robit = start(&db, &platform, &llm).await;
    let asked = platform.ask("tell me a long story");
    let shown = eventually(|| platform.answers(&asked).iter().any(|a| a.contains("word3"))).await;
    assert!(shown, "the answer never started: {}", robit.log());
    assert!(db.wait_for_recorded_post().await);
    robit.kill9();
    let restarted = Instant::now();
    let robit = start(&db, &platform, &llm).await;
    assert_one_complete_answer(&db, &platform, &asked, true, restarted).await;
    assert_eq!(llm.chat_requests().len(), 2, "one model call per attempt");
    robit.stop();
    db.drop().await;
}

/// Killed after the event was acknowledged and the model was asked, before anything was
/// shown: the restarted process answers it.
async fn killed_before_the_model_answered(platform: Platform, db: Db) {
    let llm = FakeLlm::start().await;
    llm.push(Reply::stall_after(""));
    llm.push(Reply::text(full_answer()));
    let robit = start(&db, &platform, &llm).await;
    let asked = platform.ask("a question");
    assert!(
        eventually(|| llm.chat_requests().len() == 1).await,
        "the model was never asked"
    );
    robit.kill9();
    let restarted = Instant::now();
    let robit = start(&db, &platform, &llm).await;
    // Nothing had been shown, so nothing needs to say it was resumed.
    assert_one_complete_answer(&db, &platform, &asked, false, restarted).await;
    robit.stop();
    db.drop().await;
}

/// Killed while a `run_code` tool call runs in the sandbox: the restarted process does not
/// run the code again by itself; the model hears the result is unknown and finishes.
async fn killed_during_a_sandbox_run(platform: Platform, db: Db) {
    let llm = FakeLlm::start().await;
    llm.push(Reply::tool_call(
        "run_code",
        r#"{"language":"python","code":"while True:\n    pass"}"#,
    ));
    llm.push(Reply::text(full_answer()));
    let guests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/guests");
    let cache = std::env::temp_dir().join(format!("robit-chaos-cache-{}", std::process::id()));
    let mut env = platform.env();
    env.extend(
        [
            ("ROBIT_LLM__BASE_URL", llm.base_url()),
            ("ROBIT_SANDBOX__ENABLED", "true".to_string()),
            (
                "ROBIT_SANDBOX__PYTHON_WASM",
                guests.join("python.wasm").display().to_string(),
            ),
            (
                "ROBIT_SANDBOX__QUICKJS_WASM",
                guests.join("quickjs.wasm").display().to_string(),
            ),
            ("ROBIT_SANDBOX__CACHE_DIR", cache.display().to_string()),
            ("ROBIT_SANDBOX__WALL_TIME_MS", "60000".to_string()),
            ("ROBIT_ENGINE__LEASE_TTL_MS", "2000".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    let robit = Robit::start(&db, &env).await;
    platform.attach(&robit).await;
    let asked = platform.ask("run something slow");
    assert!(
        eventually(|| platform
            .answers(&asked)
            .iter()
            .any(|a| a.contains("Running python")))
        .await,
        "the run never started: {}",
        robit.log()
    );
    assert!(db.wait_for_recorded_post().await);
    robit.kill9();
    let restarted = Instant::now();
    let robit = Robit::start(&db, &env).await;
    platform.attach(&robit).await;
    assert_one_complete_answer(&db, &platform, &asked, true, restarted).await;
    let requests = llm.chat_requests();
    assert_eq!(requests.len(), 2, "the tool call is not repeated by robit");
    let told = requests[1].body["messages"].to_string();
    assert!(told.contains("result is unknown"), "{told}");
    robit.stop();
    db.drop().await;
    let _ = std::fs::remove_dir_all(cache);
}

/// Every kill point on both platforms and both backends.
macro_rules! matrix {
    ($($name:ident: $case:ident($platform:ident, $db:ident);)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            $case(Platform::$platform().await, Db::$db()).await;
        }
    )*};
}

matrix! {
    slack_sqlite_killed_before_the_model_answered: killed_before_the_model_answered(slack, sqlite);
    slack_postgres_killed_before_the_model_answered: killed_before_the_model_answered(slack, postgres);
    discord_sqlite_killed_before_the_model_answered: killed_before_the_model_answered(discord, sqlite);
    discord_postgres_killed_before_the_model_answered: killed_before_the_model_answered(discord, postgres);
    slack_sqlite_killed_mid_stream: killed_mid_stream(slack, sqlite);
    slack_postgres_killed_mid_stream: killed_mid_stream(slack, postgres);
    discord_sqlite_killed_mid_stream: killed_mid_stream(discord, sqlite);
    discord_postgres_killed_mid_stream: killed_mid_stream(discord, postgres);
    slack_sqlite_killed_during_a_sandbox_run: killed_during_a_sandbox_run(slack, sqlite);
    slack_postgres_killed_during_a_sandbox_run: killed_during_a_sandbox_run(slack, postgres);
    discord_sqlite_killed_during_a_sandbox_run: killed_during_a_sandbox_run(discord, sqlite);
    discord_postgres_killed_during_a_sandbox_run: killed_during_a_sandbox_run(discord, postgres);
}
