//! Platform trouble: socket disconnects and drops, 429 storms, text that grows past Slack's
//! limits.

use super::support::{expect_reply, Setup, WAIT};
use robit_emulators::slack::{GENERAL, UPDATE_MAX_CHARS};
use robit_slack::mrkdwn::to_mrkdwn;
use robit_testkit::Reply;
use std::time::Duration;

fn words(n: usize) -> String {
    (0..n)
        .map(|i| format!("w{i} "))
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[tokio::test]
async fn disconnect_mid_reply_reconnects_and_the_reply_completes() {
    let s = Setup::socket().await;
    let answer = words(40);
    s.llm
        .push(Reply::text(&answer).delay(Duration::from_millis(40)));
    let d = s.emulator.user_mentions(GENERAL, "long one");
    let thread = d.thread();
    assert!(
        s.emulator
            .wait_for(WAIT, |e| !e.bot_replies(&thread).is_empty())
            .await
    );
    s.emulator.disconnect_sockets("refresh_requested");
    expect_reply(&s.emulator, &thread, &answer).await;
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.connections_opened() >= 2
                && e.socket_connections() == 1)
            .await,
        "the adapter did not reconnect"
    );
    // Events keep flowing on the new connection.
    let next = s.emulator.user_mentions(GENERAL, "after reconnect");
    expect_reply(&s.emulator, &next.thread(), "echo: after reconnect").await;
}

#[tokio::test]
async fn dropped_connection_reconnects_and_waiting_events_are_delivered() {
    let s = Setup::socket().await;
    s.emulator.drop_sockets();
    // Sent while the adapter is away: Slack keeps it for the next connection.
    let d = s.emulator.user_mentions(GENERAL, "are you there?");
    expect_reply(&s.emulator, &d.thread(), "echo: are you there?").await;
    assert!(s.emulator.connections_opened() >= 2);
    assert_eq!(s.llm.chat_requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_storm_every_reply_completes() {
    let s = Setup::socket().await;
    // Twelve 429s (Retry-After: 1) spread over whichever calls come next.
    s.emulator.rate_limit(None, 12, 1);
    // The three turns run concurrently, so which reaches the model first is up to the
    // scheduler: echo replies tie each answer to its own question instead of to a FIFO script.
    s.llm
        .set_default(Reply::echo().delay(Duration::from_millis(15)));
    let questions: Vec<String> = (0..3)
        .map(|i| format!("question {i} {}", words(12 + i)))
        .collect();
    let asks: Vec<_> = questions
        .iter()
        .map(|q| s.emulator.user_mentions(GENERAL, q))
        .collect();
    for (q, d) in questions.iter().zip(&asks) {
        expect_reply(&s.emulator, &d.thread(), &format!("echo: {q}")).await;
    }
    let limited = s
        .emulator
        .calls()
        .iter()
        .filter(|c| c.status == 429)
        .count();
    assert_eq!(limited, 12);
}

#[tokio::test]
async fn long_replies_are_split_and_every_message_fits() {
    let s = Setup::socket().await;
    // Escapes grow `<`, `>` and `&` in Slack's encoding: a code block full of them grows
    // past chat.update's limit unless the sink re-splits.
    let html: String = (0..300)
        .map(|i| format!("<p a=\"{i}\">&amp;</p>\n"))
        .collect();
    let answer = format!("Intro **text**.\n\n```html\n{html}```\n\n{}", words(800));
    s.llm.push(Reply::text(&answer).chunk_chars(400));
    let d = s.emulator.user_mentions(GENERAL, "long please");
    let thread = d.thread();
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.reply_text(&thread).contains("w799"))
            .await,
        "reply never completed: {:?}",
        s.emulator.reply_text(&thread)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replies = s.emulator.bot_replies(&thread);
    assert!(replies.len() >= 3, "{} messages", replies.len());
    for m in &replies {
        assert!(m.text.chars().count() <= UPDATE_MAX_CHARS);
        assert_eq!(
            m.text.matches("```").count() % 2,
            0,
            "broken fence in {:?}",
            m.text
        );
    }
    assert!(
        s.emulator.calls().iter().all(|c| c.error.is_none()),
        "errors: {:?}",
        s.emulator
            .calls()
            .iter()
            .filter(|c| c.error.is_some())
            .collect::<Vec<_>>()
    );
    let all = s.emulator.reply_text(&thread);
    for i in [0, 150, 299] {
        assert!(
            all.contains(&format!("&lt;p a=\"{i}\"&gt;&amp;amp;&lt;/p&gt;")),
            "line {i} lost"
        );
    }
    for i in 0..800 {
        assert!(all.contains(&format!("w{i}")), "word {i} lost");
    }
    assert!(all.starts_with(&to_mrkdwn("Intro **text**.")));
}
