//! A database outage, made by cutting robit's connections in a TCP proxy (the shared server
//! keeps running): events are not acknowledged while it lasts, `/readyz` fails, a running
//! answer still reaches the thread, and once the database is back nothing acknowledged is
//! lost.

use robit_emulators::slack::{SlackEmulator, BOT_TOKEN, GENERAL, SIGNING_SECRET};
use robit_system_tests::{eventually, Db, Robit};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::Duration;

async fn ready(robit: &Robit) -> u16 {
    match reqwest::get(format!("{}/readyz", robit.base)).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_ready(robit: &Robit, status: u16) -> bool {
    for _ in 0..600 {
        if ready(robit).await == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_acknowledged_is_lost_when_the_database_goes_away() {
    let (db, proxy) = Db::postgres_behind_proxy().await;
    let llm = FakeLlm::start().await;
    let slack = SlackEmulator::start().await;
    let env: Vec<(String, String)> = [
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_SLACK__BOT_TOKEN", BOT_TOKEN.to_string()),
        ("ROBIT_SLACK__SIGNING_SECRET", SIGNING_SECRET.to_string()),
        ("ROBIT_SLACK__API_URL", slack.api_url()),
        ("ROBIT_SLACK__EDIT_INTERVAL_MS", "50".to_string()),
        ("ROBIT_DATABASE__ACQUIRE_TIMEOUT_MS", "1000".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let robit = Robit::start(&db, &env).await;
    slack.set_events_url(robit.events_url());

    // A turn is streaming when the database goes away.
    let answer = "alpha beta gamma delta epsilon zeta";
    llm.push(
        Reply::text(answer)
            .chunk_words(1)
            .delay(Duration::from_millis(300)),
    );
    let first = slack.user_mentions(GENERAL, "first question").thread();
    assert!(eventually(|| slack.reply_text(&first).contains("alpha")).await);
    proxy.cut();
    assert!(
        wait_ready(&robit, 503).await,
        "/readyz still ready without a database"
    );

    // An event arriving now is not acknowledged, so Slack delivers it again later.
    let second = slack.user_mentions(GENERAL, "second question");
    assert!(
        eventually(|| slack
            .delivery_attempts()
            .iter()
            .any(|a| a.id == second.event_id && a.status.is_some_and(|s| s >= 500)))
        .await,
        "the event was not refused: {:?}",
        slack.delivery_attempts()
    );
    // The running answer still reaches the thread.
    assert!(
        eventually(|| slack.reply_text(&first).contains("zeta")).await,
        "{}",
        slack.reply_text(&first)
    );
    assert!(
        !slack
            .delivery_attempts()
            .iter()
            .any(|a| a.id == second.event_id && a.status == Some(200)),
        "acknowledged while the database was down"
    );

    proxy.restore();
    assert!(
        wait_ready(&robit, 200).await,
        "never ready again: {}",
        robit.log()
    );
    slack.redeliver(&second.event_id);
    assert!(
        eventually(|| slack
            .reply_text(&second.thread())
            .contains("echo: second question"))
        .await,
        "the redelivered event was not answered: {}",
        robit.log()
    );
    // The answer that streamed through the outage is in the history too.
    let mut stored = Vec::new();
    for _ in 0..500 {
        stored = db
            .rows("SELECT content FROM messages WHERE role = 'assistant' ORDER BY id")
            .await;
        if stored.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first answer is stored when its retries meet the returned database, which may be
    // after the redelivered event's answer: order is not the point, completeness is.
    stored.sort();
    assert_eq!(
        stored,
        vec![
            vec![answer.to_string()],
            vec!["echo: second question".to_string()]
        ]
    );
    assert_eq!(slack.bot_replies(&first).len(), 1);
    assert_eq!(slack.bot_replies(&second.thread()).len(), 1);
    robit.stop();
    db.drop().await;
}
