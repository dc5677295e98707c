//! 200 messages flooded into one thread while its turn is busy: the pending cap holds, every
//! message past it is refused visibly (ephemeral on Slack), and memory stays flat.

use robit_emulators::slack::{SlackEmulator, BOT_TOKEN, GENERAL, SIGNING_SECRET};
use robit_system_tests::{eventually, Db, Robit};
use robit_testkit::llm::{FakeLlm, Reply};

const CAP: usize = 20;
const FLOOD: usize = 200;

#[tokio::test(flavor = "multi_thread")]
async fn a_flooded_thread_keeps_its_cap() {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    let slack = SlackEmulator::start().await;
    let env: Vec<(String, String)> = [
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_SLACK__BOT_TOKEN", BOT_TOKEN.to_string()),
        ("ROBIT_SLACK__SIGNING_SECRET", SIGNING_SECRET.to_string()),
        ("ROBIT_SLACK__API_URL", slack.api_url()),
        (
            "ROBIT_ENGINE__MAX_PENDING_PER_CONVERSATION",
            CAP.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let robit = Robit::start(&db, &env).await;
    slack.set_events_url(robit.events_url());

    // The first turn never ends, so everything after it waits.
    llm.push(Reply::stall_after("thinking"));
    let thread = slack.user_mentions(GENERAL, "start").thread();
    assert!(eventually(|| slack.reply_text(&thread).contains("thinking")).await);
    let before = robit.rss_kib();

    let mut events = Vec::new();
    for i in 0..FLOOD {
        events.push(slack.user_replies(&thread, &format!("flood {i}")).event_id);
    }
    // Every message is acknowledged: taken or refused, none left for Slack to redeliver.
    assert!(
        eventually(|| events.iter().all(|e| slack.acked(e))).await,
        "not every flood message was acknowledged"
    );
    let refused = FLOOD + 1 - CAP;
    let enough = eventually(|| slack.ephemerals().len() >= refused).await;
    assert!(
        enough,
        "{} refusals, expected {refused}; turns {:?}; first {:?}; log {}",
        slack.ephemerals().len(),
        db.rows("SELECT status, CAST(COUNT(*) AS TEXT) FROM turns GROUP BY status")
            .await,
        slack.ephemerals().first(),
        robit
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ephemerals = slack.ephemerals();
    assert_eq!(ephemerals.len(), refused, "the cap is exact");
    assert!(
        ephemerals.iter().all(|e| e.text.contains("waiting")),
        "{:?}",
        ephemerals.first()
    );
    let turns = db.rows("SELECT CAST(COUNT(*) AS TEXT) FROM turns").await;
    assert_eq!(
        turns,
        vec![vec![CAP.to_string()]],
        "only taken messages are journaled"
    );
    // Each refusal is audited right after the user is told.
    let mut audited = Vec::new();
    for _ in 0..500 {
        audited = db
            .rows("SELECT CAST(COUNT(*) AS TEXT) FROM audit_log WHERE action = 'refused.busy'")
            .await;
        if audited == vec![vec![refused.to_string()]] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(audited, vec![vec![refused.to_string()]]);
    let after = robit.rss_kib();
    println!("FLOOD rss before {before} KiB, after {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    robit.stop();
    db.drop().await;
}
