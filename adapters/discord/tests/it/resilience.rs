//! Failures Discord really produces: a dropped gateway (resume and replay), 429 storms, 5xx on
//! edits, and a stream faster than the channel's budget.

use crate::support::{config, count_429, mention, wait_bot_text, wait_thread, Bot, WAIT};
use robit_discord::DiscordConfig;
use robit_emulators::discord::{DiscordEmulator, EmulatorConfig, Fault};
use robit_testkit::Reply;
use std::time::Duration;

#[tokio::test]
async fn gateway_dropped_mid_reply_resumes_and_the_reply_completes_once() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let channel = emu.channel_id();
    let slow = "one two three four five six seven eight nine ten eleven twelve";
    bot.llm
        .push(Reply::text(slow).delay(Duration::from_millis(150)));
    emu.user_says(channel, &mention(&emu, "count slowly"));
    let thread = wait_thread(&emu, channel).await;
    emu.wait_for("the reply to start", WAIT, |e| {
        e.bot_messages(thread).first().map(|_| ())
    })
    .await;

    emu.drop_gateway();
    // Sent while the connection is down: only a RESUME's replay can deliver it.
    emu.user_says(thread, "and then?");

    wait_bot_text(&emu, thread, "echo: and then?").await;
    let bot_messages = emu.bot_messages(thread);
    assert_eq!(bot_messages.len(), 2, "one reply per message, no duplicate");
    assert_eq!(bot_messages[0].content, slow);
    assert_eq!(bot.llm.chat_requests().len(), 2);

    let log = emu.gateway_log();
    let identifies = log.iter().filter(|r| r.from_client && r.op == 2).count();
    let resumes = log.iter().filter(|r| r.from_client && r.op == 6).count();
    assert_eq!(identifies, 1, "resumed, not re-identified");
    assert!(resumes >= 1);
    assert!(log.iter().any(|r| r.t.as_deref() == Some("RESUMED")));
    bot.stop().await;
}

#[tokio::test]
async fn reconnect_request_and_resumable_invalid_session_keep_the_session() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let channel = emu.channel_id();
    emu.request_reconnect();
    emu.user_says(channel, &mention(&emu, "after reconnect"));
    let thread = wait_thread(&emu, channel).await;
    wait_bot_text(&emu, thread, "echo: after reconnect").await;
    emu.invalidate_sessions(true);
    emu.user_says(thread, "after invalid session");
    wait_bot_text(&emu, thread, "echo: after invalid session").await;
    let identifies = emu
        .gateway_log()
        .iter()
        .filter(|r| r.from_client && r.op == 2)
        .count();
    assert_eq!(identifies, 1);
    bot.stop().await;
}

#[tokio::test]
async fn every_reply_completes_through_a_429_storm() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let retry = Duration::from_millis(400);
    emu.inject(Fault::rate_limit("POST", "/channels/", 6, retry));
    emu.inject(Fault::rate_limit("PATCH", "/channels/", 6, retry));
    emu.inject(Fault::rate_limit("PATCH", "/webhooks/", 4, retry));
    let channels: Vec<u64> = (0..3)
        .map(|i| emu.add_text_channel(emu.guild_id(), &format!("c{i}")))
        .collect();
    // Echoes stream word by word, so every answer is several posts and edits.
    bot.llm
        .set_default(Reply::echo().delay(Duration::from_millis(60)));
    let question = |i: usize| format!("question {i} is answered word by word in the storm");
    for (i, c) in channels.iter().enumerate() {
        emu.user_says(*c, &mention(&emu, &question(i)));
    }
    let cmd = emu.slash_command(emu.channel_id(), "ask", &[("prompt", &question(9))]);
    for (i, c) in channels.iter().enumerate() {
        let thread = wait_thread(&emu, *c).await;
        wait_bot_text(&emu, thread, &format!("echo: {}", question(i))).await;
    }
    emu.wait_for("the command's answer", WAIT, |e| {
        e.interaction_messages(cmd.id)
            .first()
            .filter(|m| m.content == format!("echo: {}", question(9)))
            .map(|_| ())
    })
    .await;
    assert!(
        count_429(&emu) >= 10,
        "the storm happened: {}",
        count_429(&emu)
    );
    let storm = emu
        .requests()
        .into_iter()
        .find(|r| r.status == 429)
        .unwrap();
    assert!(storm.response_header("x-ratelimit-bucket").is_some());
    assert!(storm.response_header("retry-after").is_some());
    assert_eq!(storm.response_header("x-ratelimit-remaining"), Some("0"));
    bot.stop().await;
}

#[tokio::test]
async fn a_stream_faster_than_the_channel_budget_meets_no_429() {
    let emu = DiscordEmulator::start().await;
    // Edits every 100 ms would be 10/s; the channel allows 5 per 5 s.
    let bot = Bot::start(
        &emu,
        DiscordConfig {
            edit_interval_ms: 100,
            ..config(&emu)
        },
    )
    .await;
    let words: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
    let answer = words.join(" ");
    bot.llm
        .push(Reply::text(answer.clone()).delay(Duration::from_millis(50)));
    let channel = emu.channel_id();
    emu.user_says(channel, &mention(&emu, "stream"));
    let thread = wait_thread(&emu, channel).await;
    wait_bot_text(&emu, thread, &answer).await;
    assert_eq!(count_429(&emu), 0);
    let edits = emu.requests_to("PATCH", &format!("/channels/{thread}/messages"));
    assert!(edits.len() >= 2, "still streamed: {} edits", edits.len());
    bot.stop().await;
}

#[tokio::test]
async fn server_errors_on_edits_are_retried() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let answer = "alpha beta gamma delta epsilon zeta eta theta";
    bot.llm
        .push(Reply::text(answer).delay(Duration::from_millis(150)));
    emu.inject(Fault::status("PATCH", "/channels/", 2, 502));
    emu.inject(Fault::delay(
        "POST",
        "/channels/",
        1,
        Duration::from_millis(500),
    ));
    let channel = emu.channel_id();
    emu.user_says(channel, &mention(&emu, "greek"));
    let thread = wait_thread(&emu, channel).await;
    wait_bot_text(&emu, thread, answer).await;
    assert_eq!(emu.bot_messages(thread).len(), 1);
    assert!(emu.requests().iter().any(|r| r.status == 502));
    bot.stop().await;
}

#[tokio::test]
async fn a_zombied_connection_is_replaced_and_messages_flow_again() {
    let emu = DiscordEmulator::start_with(EmulatorConfig {
        heartbeat_interval: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let beats = |e: &DiscordEmulator| {
        e.gateway_log()
            .iter()
            .filter(|r| r.from_client && r.op == 1)
            .count()
    };
    emu.wait_for("heartbeats", WAIT, |e| (beats(e) >= 2).then_some(()))
        .await;
    assert!(emu
        .gateway_log()
        .iter()
        .any(|r| !r.from_client && r.op == 11));

    // No ACK for a heartbeat: serenity gives the connection up and identifies again.
    emu.set_heartbeat_acks(false);
    emu.wait_for("a new IDENTIFY", WAIT, |e| {
        let identifies = e
            .gateway_log()
            .iter()
            .filter(|r| r.from_client && r.op == 2)
            .count();
        (identifies >= 2).then_some(())
    })
    .await;
    emu.set_heartbeat_acks(true);
    emu.wait_ready(1, WAIT).await;
    let channel = emu.channel_id();
    emu.user_says(channel, &mention(&emu, "still there?"));
    let thread = wait_thread(&emu, channel).await;
    wait_bot_text(&emu, thread, "echo: still there?").await;
    bot.stop().await;
}
