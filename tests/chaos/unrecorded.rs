//! Kills in the moments where the platform and the database disagree, made real by cutting
//! robit's PostgreSQL connections in a proxy (the shared server keeps running) and then
//! `kill -9`:
//! - a message was posted but its reference never reached the turn journal;
//! - the last edit showed the whole answer but the answer was never stored.
//!
//! After the restart the thread must still hold exactly one complete answer.

use crate::crash::{assert_one_complete_answer, full_answer, start_with};
use crate::platform::Platform;
use robit_system_tests::{eventually, Db};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::{Duration, Instant};

/// A pool that notices a cut database within a second instead of five.
fn fast_failing() -> Vec<(String, String)> {
    vec![("ROBIT_DATABASE__ACQUIRE_TIMEOUT_MS".into(), "1000".into())]
}

async fn count(db: &Db, sql: &str) -> String {
    db.rows(sql).await[0][0].clone()
}

/// The database goes away after the turn started and before its first message is posted:
/// the post returns but its reference is never recorded. The resumed turn posts that slot
/// again under the same key; Discord hands back the same message (`enforce_nonce`), which is
/// edited to the new text, so there is still one message.
#[tokio::test(flavor = "multi_thread")]
async fn discord_postgres_post_returned_but_never_recorded() {
    let platform = Platform::discord().await;
    let (db, proxy) = Db::postgres_behind_proxy().await;
    let llm = FakeLlm::start().await;
    // The first words come late enough for the test to cut the database in between.
    llm.push(
        Reply::stall_after("word0 word1 word2 word3")
            .chunk_words(2)
            .delay(Duration::from_millis(1500)),
    );
    llm.push(Reply::text(full_answer()));
    let env = fast_failing();
    let robit = start_with(&db, &platform, &llm, &env).await;
    let asked = platform.ask("tell me a long story");
    assert!(
        eventually(|| llm.chat_requests().len() == 1).await,
        "the model was never asked: {}",
        robit.log()
    );
    proxy.cut();
    assert!(
        eventually(|| platform.answers(&asked).iter().any(|a| a.contains("word3"))).await,
        "the answer never reached the thread: {}",
        robit.log()
    );
    assert_eq!(
        count(&db, "SELECT CAST(COUNT(*) AS TEXT) FROM turn_posts").await,
        "0",
        "the post was recorded despite the cut"
    );
    robit.kill9();
    proxy.restore();
    let restarted = Instant::now();
    let robit = start_with(&db, &platform, &llm, &env).await;
    assert!(
        eventually(|| llm.chat_requests().len() == 2).await,
        "the resumed turn never asked the model: {}",
        robit.log()
    );
    // The journal never learned that anything was shown, so the answer carries no
    // "resumed" mark: the message simply grows from the part shown to the whole answer.
    assert_one_complete_answer(&db, &platform, &asked, false, restarted).await;
    robit.stop();
    db.drop().await;
}

/// The database goes away mid-stream; the stream ends and its last edit shows the whole
/// answer, but storing it cannot succeed. Killed then, the restarted process runs the turn
/// again in the same message (marked resumed) and stores one answer.
async fn killed_between_the_last_edit_and_storing_the_answer(platform: Platform) {
    let (db, proxy) = Db::postgres_behind_proxy().await;
    let llm = FakeLlm::start().await;
    llm.push(
        Reply::text(full_answer())
            .chunk_words(10)
            .delay(Duration::from_millis(400)),
    );
    llm.push(Reply::text(full_answer()));
    let env = fast_failing();
    let robit = start_with(&db, &platform, &llm, &env).await;
    let asked = platform.ask("tell me a long story");
    assert!(db.wait_for_recorded_post().await, "{}", robit.log());
    proxy.cut();
    let full = full_answer();
    assert!(
        eventually(|| platform.answers(&asked).iter().any(|a| a.ends_with(&full))).await,
        "the whole answer never reached the thread: {:?} {}",
        platform.answers(&asked),
        robit.log()
    );
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE role = 'assistant'"
        )
        .await,
        "0",
        "the answer was stored despite the cut"
    );
    robit.kill9();
    proxy.restore();
    let restarted = Instant::now();
    let robit = start_with(&db, &platform, &llm, &env).await;
    // The whole answer was on screen before the crash: wait for the resumed run's edit.
    assert!(
        eventually(|| platform
            .answers(&asked)
            .iter()
            .any(|a| a.contains("resumed") && a.ends_with(&full)))
        .await,
        "the answer was never resumed: {:?} {}",
        platform.answers(&asked),
        robit.log()
    );
    assert_one_complete_answer(&db, &platform, &asked, true, restarted).await;
    assert_eq!(llm.chat_requests().len(), 2, "one model call per attempt");
    robit.stop();
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_postgres_killed_between_the_last_edit_and_storing_the_answer() {
    killed_between_the_last_edit_and_storing_the_answer(Platform::discord().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_postgres_killed_between_the_last_edit_and_storing_the_answer() {
    killed_between_the_last_edit_and_storing_the_answer(Platform::slack().await).await;
}
