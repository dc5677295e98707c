//! Conversations over Socket Mode: mentions, thread follow-ups, DMs, the loop guard.

use super::support::{expect_reply, Setup, WAIT};
use robit_emulators::slack::{ThreadRef, DM_CHANNEL, GENERAL};
use robit_slack::mrkdwn::to_mrkdwn;
use robit_testkit::Reply;
use serde_json::Value;
use std::time::Duration;

fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn mention_gets_a_threaded_streamed_reply_matching_the_model() {
    let s = Setup::socket().await;
    let answer =
        "Hello **there**! Here is `a<b>` and a [link](https://example.com/?a=1&b=2).\n- one\n- two";
    s.llm
        .push(Reply::text(answer).delay(Duration::from_millis(40)));
    let d = s.emulator.user_mentions(GENERAL, "what is up?");
    let thread = d.thread();
    assert_eq!(
        thread.ts, d.ts,
        "a top-level mention starts a thread on itself"
    );
    expect_reply(&s.emulator, &thread, &to_mrkdwn(answer)).await;

    let replies = s.emulator.bot_replies(&thread);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].thread_ts.as_deref(), Some(d.ts.as_str()));
    assert!(
        replies[0].edits >= 1 && !s.emulator.calls_to("chat.update").is_empty(),
        "the reply was streamed with edits"
    );
    // The bot's own mention is not part of the prompt.
    let req = s.llm.chat_requests();
    assert_eq!(req.len(), 1);
    assert_eq!(last_user_text(&req[0].body), "what is up?");
    assert!(s.emulator.acked(&d.event_id));
}

#[tokio::test]
async fn thread_reply_without_a_mention_continues_the_conversation() {
    let s = Setup::socket().await;
    let first = s.emulator.user_mentions(GENERAL, "my name is Ada");
    let thread = first.thread();
    expect_reply(&s.emulator, &thread, "echo: my name is Ada").await;

    s.emulator.user_replies(&thread, "what is my name?");
    expect_reply(
        &s.emulator,
        &thread,
        "echo: my name is Ada\necho: what is my name?",
    )
    .await;
    let reqs = s.llm.chat_requests();
    assert_eq!(reqs.len(), 2);
    let history = reqs[1].body["messages"].to_string();
    assert!(history.contains("my name is Ada"), "history: {history}");
    assert!(
        history.contains("echo: my name is Ada"),
        "history: {history}"
    );
}

#[tokio::test]
async fn thread_reply_in_a_thread_without_the_bot_is_ignored() {
    let s = Setup::socket().await;
    let talk = s.emulator.user_says(GENERAL, "lunch?");
    let thread = talk.thread();
    let reply = s.emulator.user_replies(&thread, "sure");
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.acked(&talk.event_id)
                && e.acked(&reply.event_id))
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.llm.chat_requests().is_empty());
    assert!(s.emulator.bot_replies(&thread).is_empty());
    assert_eq!(s.emulator.calls_to("conversations.replies").len(), 1);
}

#[tokio::test]
async fn a_dm_is_a_conversation_answered_at_the_top_level() {
    let s = Setup::socket().await;
    s.emulator.user_dms("hello bot");
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e
                .channel_messages(DM_CHANNEL)
                .iter()
                .any(|m| m.bot_id.is_some() && m.text == "echo: hello bot"))
            .await
    );
    s.emulator.user_dms("again");
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e
                .channel_messages(DM_CHANNEL)
                .iter()
                .any(|m| m.bot_id.is_some() && m.text == "echo: again"))
            .await
    );
    let reqs = s.llm.chat_requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].body["messages"].to_string().contains("hello bot"));
}

#[tokio::test]
async fn the_bots_own_messages_never_start_a_turn() {
    // The emulator echoes every bot post back as a `message` event with `bot_id`.
    let s = Setup::socket().await;
    let d = s.emulator.user_mentions(GENERAL, "one");
    expect_reply(&s.emulator, &d.thread(), "echo: one").await;
    // Wait for the echo events to be acked, then check nothing else happened.
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.delivery_attempts().len() >= 3)
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.llm.chat_requests().len(), 1);
    assert_eq!(s.emulator.bot_messages_in(GENERAL).len(), 1);
}

#[tokio::test]
async fn status_and_native_streaming_when_enabled() {
    let s = Setup::new(Default::default(), None).await;
    let mut config = super::support::config(&s.emulator);
    config.use_streaming_api = true;
    config.assistant_status = true;
    s.start_socket(config);
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.socket_connections() == 1)
            .await
    );
    let answer = "streamed **markdown** answer in several pieces";
    s.llm
        .push(Reply::text(answer).delay(Duration::from_millis(30)));
    let d = s.emulator.user_mentions(GENERAL, "stream please");
    let thread: ThreadRef = d.thread();
    // Native streams carry Markdown, which Slack renders itself.
    expect_reply(&s.emulator, &thread, answer).await;
    assert_eq!(s.emulator.calls_to("chat.startStream").len(), 1);
    assert!(!s.emulator.calls_to("chat.appendStream").is_empty());
    assert!(s.emulator.calls_to("chat.postMessage").is_empty());
    assert!(!s.emulator.statuses().is_empty());
    // The stream is stopped when the answer ends, with the answer's buttons below it (a
    // streaming message takes no blocks, so it has no Stop while it streams).
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e
                .bot_replies(&thread)
                .iter()
                .all(|m| !m.streaming))
            .await
    );
    let finished = s.emulator.bot_replies(&thread);
    let buttons = finished
        .last()
        .and_then(|m| m.blocks.as_ref())
        .map(|b| b.to_string())
        .unwrap_or_default();
    assert!(
        buttons.contains("robit:regenerate:") && buttons.contains("robit:up:"),
        "{finished:?}"
    );
    assert_eq!(finished.last().unwrap().text, answer);
}

#[tokio::test]
async fn a_thread_reply_is_acknowledged_before_slack_is_asked_about_the_thread() {
    let s = Setup::socket().await;
    // A thread under the bot's top-level answer to a slash command: no mention started it,
    // so only Slack (conversations.replies) can tell that the bot takes part.
    s.llm.push(Reply::text("top-level answer"));
    s.emulator.slash("/robit", "ask start");
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e
                .bot_messages_in(GENERAL)
                .iter()
                .any(|m| m.text == "top-level answer"))
            .await
    );
    let root = s
        .emulator
        .bot_messages_in(GENERAL)
        .into_iter()
        .find(|m| m.text == "top-level answer")
        .unwrap();
    let thread = ThreadRef {
        channel: GENERAL.into(),
        ts: root.ts.clone(),
    };
    // Slack is slow to answer: its first answer is a 429 asking to wait 3 s.
    s.emulator.rate_limit(Some("conversations.replies"), 1, 3);
    let reply = s.emulator.user_replies(&thread, "follow up");
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.acked(&reply.event_id))
            .await
    );
    // The ack did not wait for Slack's answer about the thread.
    let answered = s
        .emulator
        .calls_to("conversations.replies")
        .iter()
        .filter(|c| c.status == 200)
        .count();
    assert_eq!(answered, 0, "the ack waited for conversations.replies");
    // The decision, taken after the ack, still answers in the thread.
    assert!(
        s.emulator
            .wait_for_reply(&thread, WAIT, |t| t.contains("echo: follow up"))
            .await
            .is_some(),
        "no answer in the thread: {:?}",
        s.emulator.reply_text(&thread)
    );
}

#[tokio::test]
async fn a_reply_in_a_thread_robit_started_needs_no_call_to_slack() {
    let mut s = Setup::socket().await;
    let first = s.emulator.user_mentions(GENERAL, "remember me");
    let thread = first.thread();
    expect_reply(&s.emulator, &thread, "echo: remember me").await;
    // A restarted process has no memory of the thread; the store's conversation answers.
    s.restart(robit_core::EngineConfig::default()).await;
    let reply = s.emulator.user_replies(&thread, "still there?");
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.acked(&reply.event_id))
            .await
    );
    expect_reply(
        &s.emulator,
        &thread,
        "echo: remember me\necho: still there?",
    )
    .await;
    assert!(s.emulator.calls_to("conversations.replies").is_empty());
}

/// Issue 15's attack through the native stream (`chat.*Stream` `markdown_text`, which is not
/// converted to mrkdwn): the four backticks inside the block are broken, so it cannot end early.
#[tokio::test]
async fn streamed_markdown_cannot_close_its_code_block() {
    let s = Setup::new(Default::default(), None).await;
    let mut config = super::support::config(&s.emulator);
    config.use_streaming_api = true;
    s.start_socket(config);
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.socket_connections() == 1)
            .await
    );
    let attack = "````<@&123> @everyone [verify](https://evil.example)";
    s.llm
        .push(Reply::text(format!("Here:\n```\n{attack}\n```")));
    let d = s.emulator.user_mentions(GENERAL, "show me");
    let thread: ThreadRef = d.thread();
    let shown = "Here:\n```\n``\u{200B}``<@&123> @everyone [verify](https://evil.example)\n```";
    expect_reply(&s.emulator, &thread, shown).await;
    assert_eq!(s.emulator.calls_to("chat.startStream").len(), 1);
    // Where Slack closes the block: the first three backticks after the opening line.
    let body = shown.find("```\n").unwrap() + 4;
    assert_eq!(body + shown[body..].find("```").unwrap(), shown.len() - 3);
}
