//! Two replicas on one PostgreSQL database: the one answering is killed mid-stream, and the
//! other finishes the answer in the same message within the lease plus a few seconds.

use robit_emulators::slack::{SlackEmulator, BOT_TOKEN, GENERAL, SIGNING_SECRET};
use robit_system_tests::{eventually, Db, Robit};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn the_surviving_replica_finishes_a_dead_replicas_answer() {
    let db = Db::postgres();
    let llm = FakeLlm::start().await;
    let slack = SlackEmulator::start().await;
    let ttl = Duration::from_millis(2_000);
    let env: Vec<(String, String)> = [
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_ENGINE__LEASE_TTL_MS", ttl.as_millis().to_string()),
        ("ROBIT_SLACK__BOT_TOKEN", BOT_TOKEN.to_string()),
        ("ROBIT_SLACK__SIGNING_SECRET", SIGNING_SECRET.to_string()),
        ("ROBIT_SLACK__API_URL", slack.api_url()),
        ("ROBIT_SLACK__EDIT_INTERVAL_MS", "50".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let a = Robit::start(&db, &env).await;
    let b = Robit::start(&db, &env).await;

    llm.push(Reply::stall_after("Let me think about"));
    llm.push(Reply::text("Let me think about it: forty-two."));
    slack.set_events_url(a.events_url());
    let thread = slack.user_mentions(GENERAL, "the question").thread();
    assert!(
        eventually(|| slack.reply_text(&thread).contains("Let me think")).await,
        "A never started: {}",
        a.log()
    );
    assert!(db.wait_for_recorded_post().await);
    a.kill9();
    let killed = Instant::now();
    slack.set_events_url(b.events_url());

    assert!(
        eventually(|| slack.reply_text(&thread).contains("forty-two")).await,
        "B never finished the answer: {}",
        b.log()
    );
    let took = killed.elapsed();
    println!(
        "TAKEOVER slack postgres {} ms (lease {} ms)",
        took.as_millis(),
        ttl.as_millis()
    );
    assert!(
        took < ttl + Duration::from_secs(5),
        "took {took:?}, lease {ttl:?}"
    );
    let replies = slack.bot_replies(&thread);
    assert_eq!(
        replies.len(),
        1,
        "one message, edited in place: {replies:?}"
    );
    assert!(replies[0].text.contains("resumed"), "{replies:?}");
    // The answer is stored right after its last edit (which, with buttons, is the one that
    // draws them), so the store may lag the thread by a moment.
    let want = vec![vec!["Let me think about it: forty-two.".to_string()]];
    let mut stored = Vec::new();
    for _ in 0..500 {
        stored = db
            .rows("SELECT content FROM messages WHERE role = 'assistant'")
            .await;
        if stored == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored, want);
    b.stop();
    db.drop().await;
}
