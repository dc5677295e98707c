//! One reply per Slack event, whatever the redeliveries: Socket Mode redelivery, HTTP retries,
//! and two processes sharing one database.

use super::support::{config, engine, expect_reply, serve_events, Setup, WAIT};
use robit_emulators::slack::GENERAL;
use robit_testkit::Reply;
use std::time::Duration;

async fn settle(s: &Setup, id: &str, deliveries: usize) {
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e
                .delivery_attempts()
                .iter()
                .filter(|a| a.id == id)
                .count()
                >= deliveries
                && e.acked(id))
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn duplicate_slack_event_replies_once() {
    let s = Setup::socket().await;
    s.llm
        .push(Reply::text("only once").delay(Duration::from_millis(20)));
    let d = s.emulator.user_mentions(GENERAL, "hi");
    s.emulator.redeliver(&d.event_id);
    s.emulator.redeliver(&d.event_id);
    expect_reply(&s.emulator, &d.thread(), "only once").await;
    settle(&s, &d.event_id, 3).await;
    assert_eq!(s.llm.chat_requests().len(), 1);
    assert_eq!(s.emulator.bot_replies(&d.thread()).len(), 1);
    assert_eq!(s.emulator.reply_text(&d.thread()), "only once");
}

#[tokio::test]
async fn http_event_delivered_three_times_replies_once() {
    let s = Setup::http().await;
    s.llm.push(Reply::text("just one"));
    let d = s.emulator.user_mentions(GENERAL, "hi");
    s.emulator.redeliver(&d.event_id);
    s.emulator.redeliver(&d.event_id);
    expect_reply(&s.emulator, &d.thread(), "just one").await;
    settle(&s, &d.event_id, 3).await;
    assert_eq!(s.llm.chat_requests().len(), 1);
    assert_eq!(s.emulator.bot_replies(&d.thread()).len(), 1);
}

#[tokio::test]
async fn events_are_deduped_across_processes_sharing_a_database() {
    let s = Setup::new(Default::default(), None).await;
    // A second "replica": its own engine on the same SQLite file, its own HTTP intake.
    let other = engine(&s.db, &s.llm, None).await;
    let url_a = serve_events(s.engine.clone(), config(&s.emulator)).await;
    let url_b = serve_events(other, config(&s.emulator)).await;
    s.llm.push(Reply::text("from one replica"));

    s.emulator.set_events_url(url_a);
    let d = s.emulator.user_mentions(GENERAL, "hi");
    expect_reply(&s.emulator, &d.thread(), "from one replica").await;
    s.emulator.set_events_url(url_b);
    s.emulator.redeliver(&d.event_id);
    settle(&s, &d.event_id, 2).await;
    assert_eq!(s.llm.chat_requests().len(), 1);
    assert_eq!(s.emulator.bot_replies(&d.thread()).len(), 1);

    // A third replica continues a thread it never saw: whether the bot takes part comes
    // from the shared database (the conversation the mention started), not from the memory
    // of the replica that answered, and without asking Slack.
    let third = engine(&s.db, &s.llm, None).await;
    s.emulator
        .set_events_url(serve_events(third, config(&s.emulator)).await);
    s.emulator.user_replies(&d.thread(), "follow-up");
    expect_reply(
        &s.emulator,
        &d.thread(),
        "from one replica\necho: follow-up",
    )
    .await;
    assert!(s.emulator.calls_to("conversations.replies").is_empty());
}
