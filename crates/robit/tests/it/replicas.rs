//! Several `robit serve` processes on one PostgreSQL database and one Slack workspace behave
//! as one bot: an event delivered to both is answered once, a replica killed mid-turn leaves
//! the conversation (and its unfinished answer) to the other once its lease expires, and together they stay inside one
//! channel's posting budget.

use crate::support::{drop_schema, free_port, pg_url, schema, sigterm, text};
use robit_emulators::slack::{SlackEmulator, BOT_TOKEN, GENERAL, SIGNING_SECRET};
use robit_testkit::llm::{FakeLlm, Reply};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// One replica: `robit serve` with the Slack Events API intake on its own port.
struct Replica {
    child: Child,
    events_url: String,
}

impl Replica {
    async fn start(schema: &str, llm: &FakeLlm, slack: &SlackEmulator, lease_ttl_ms: u64) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_robit"))
            .arg("serve")
            .env_remove("RUST_LOG")
            .env("ROBIT_DATABASE__URL", pg_url())
            .env("ROBIT_DATABASE__SCHEMA", schema)
            .env("ROBIT_LLM__BASE_URL", llm.base_url())
            .env("ROBIT_SANDBOX__ENABLED", "false")
            .env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{port}"))
            // One listener for webhooks and operators, as a single-port deployment would.
            .env("ROBIT_HTTP__ADMIN_ADDR", format!("127.0.0.1:{port}"))
            .env("ROBIT_ENGINE__LEASE_TTL_MS", lease_ttl_ms.to_string())
            .env("ROBIT_SLACK__BOT_TOKEN", BOT_TOKEN)
            .env("ROBIT_SLACK__SIGNING_SECRET", SIGNING_SECRET)
            .env("ROBIT_SLACK__API_URL", slack.api_url())
            .env("ROBIT_SLACK__EDIT_INTERVAL_MS", "50")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                started.elapsed() < WAIT,
                "replica on {port} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Replica {
            child,
            events_url: format!("{base}/slack/events"),
        }
    }

    fn stop(self) -> String {
        sigterm(self.child.id());
        let out = self.child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
        stderr
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_delivered_to_both_replicas_is_answered_once() {
    let schema = schema("both");
    let llm = FakeLlm::start().await;
    let slack = SlackEmulator::start().await;
    let a = Replica::start(&schema, &llm, &slack, 30_000).await;
    let b = Replica::start(&schema, &llm, &slack, 30_000).await;

    let mut threads = Vec::new();
    for i in 0..3 {
        // Both deliveries are in flight at once: the first goes to A, the redelivery to B.
        slack.set_events_url(&a.events_url);
        let d = slack.user_mentions(GENERAL, &format!("question {i}"));
        slack.set_events_url(&b.events_url);
        slack.redeliver(&d.event_id);
        threads.push((d, format!("echo: question {i}")));
    }
    for (d, expected) in &threads {
        let reply = slack
            .wait_for_reply(&d.thread(), WAIT, |t| t.contains(expected.as_str()))
            .await;
        assert!(reply.is_some(), "no reply to {expected}");
        assert!(
            slack
                .wait_for(WAIT, |e| e
                    .delivery_attempts()
                    .iter()
                    .filter(|x| x.id == d.event_id && x.status == Some(200))
                    .count()
                    == 2)
                .await,
            "both deliveries of {} were acknowledged",
            d.event_id
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (d, _) in &threads {
        assert_eq!(slack.bot_replies(&d.thread()).len(), 1, "{}", d.event_id);
    }
    assert_eq!(llm.chat_requests().len(), 3, "one model call per event");
    a.stop();
    b.stop();
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_turn_leaves_the_conversation_to_the_other() {
    let schema = schema("kill");
    let llm = FakeLlm::start().await;
    let slack = SlackEmulator::start().await;
    let ttl = Duration::from_millis(2_000);
    let a = Replica::start(&schema, &llm, &slack, ttl.as_millis() as u64).await;
    let b = Replica::start(&schema, &llm, &slack, ttl.as_millis() as u64).await;

    // A starts answering, shows some text, and dies holding the conversation's lease.
    llm.push(Reply::stall_after("Let me think about"));
    slack.set_events_url(&a.events_url);
    let d = slack.user_mentions(GENERAL, "first question");
    let shown = slack
        .wait_for_reply(&d.thread(), WAIT, |t| t.contains("Let me think"))
        .await;
    assert!(shown.is_some(), "A never started its reply");
    a.kill();
    let killed_at = Instant::now();

    // B waits out A's lease, finishes A's answer from the turn journal, then answers the
    // next message in the thread with the conversation's history from the database.
    slack.set_events_url(&b.events_url);
    llm.push(Reply::text("Let me think about it: done by B"));
    llm.push(Reply::text("B picks it up"));
    slack.user_replies(&d.thread(), "are you there?");
    let reply = slack
        .wait_for_reply(&d.thread(), WAIT, |t| {
            t.contains("B picks it up") && t.contains("done by B")
        })
        .await;
    assert!(reply.is_some(), "B never answered");
    let waited = killed_at.elapsed();
    assert!(
        waited >= ttl - Duration::from_millis(300),
        "B answered before A's lease expired: {waited:?}"
    );
    // B runs the two turns in whichever order their leases free up; the request for the new
    // message carries the whole history from the database.
    let contents: Vec<String> = llm
        .chat_requests()
        .iter()
        .map(|r| {
            r.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["content"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<String>>()
        })
        .find(|c| c.last().is_some_and(|l| l.contains("are you there?")))
        .expect("a request for the new message");
    assert!(
        contents.iter().any(|c| c.contains("first question")),
        "{contents:?}"
    );
    assert!(
        contents.last().unwrap().contains("are you there?"),
        "{contents:?}"
    );
    b.stop();
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_one_channel_posting_budget() {
    let schema = schema("budget");
    let llm = FakeLlm::start().await;
    let slack = SlackEmulator::start().await;
    let a = Replica::start(&schema, &llm, &slack, 30_000).await;
    let b = Replica::start(&schema, &llm, &slack, 30_000).await;

    // Eight mentions in one channel, half to each replica, all at once: eight replies, each a
    // `chat.postMessage` into that channel. The shared bucket allows a burst of 3 and then one
    // per second, whichever replica posts.
    let mut threads = Vec::new();
    for i in 0..8 {
        slack.set_events_url(if i % 2 == 0 {
            &a.events_url
        } else {
            &b.events_url
        });
        threads.push(slack.user_mentions(GENERAL, &format!("burst {i}")));
    }
    for (i, d) in threads.iter().enumerate() {
        let expected = format!("echo: burst {i}");
        assert!(
            slack
                .wait_for_reply(&d.thread(), WAIT, |t| t.contains(&expected))
                .await
                .is_some(),
            "no reply to burst {i}"
        );
    }
    let mut posts: Vec<Instant> = slack
        .calls_to("chat.postMessage")
        .iter()
        .filter(|c| c.status == 200)
        .map(|c| c.at)
        .collect();
    posts.sort();
    assert_eq!(posts.len(), 8);
    // Any span of t seconds holds at most 3 + t posts (a little slack for clock reads).
    for (i, first) in posts.iter().enumerate() {
        for (j, later) in posts.iter().enumerate().skip(i) {
            let span = (*later - *first).as_secs_f64();
            let count = (j - i + 1) as f64;
            assert!(
                count <= 3.0 + span + 0.3,
                "{count} posts within {span:.2}s: {:?}",
                posts.iter().map(|p| *p - posts[0]).collect::<Vec<_>>()
            );
        }
    }
    assert!(
        posts[7] - posts[0] >= Duration::from_millis(4_500),
        "eight posts through a 3-burst, 1/s budget take about 5 s, took {:?}",
        posts[7] - posts[0]
    );
    a.stop();
    b.stop();
    drop_schema(&schema).await;
}
