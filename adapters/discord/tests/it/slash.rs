//! Slash commands: registration, the deferred response, streamed edits of `@original`, and
//! follow-ups for long replies.

use crate::support::{config, count_429, Bot, WAIT};
use robit_discord::DiscordConfig;
use robit_emulators::discord::{DiscordEmulator, FLAG_EPHEMERAL, FLAG_LOADING};
use robit_testkit::Reply;
use std::time::Duration;

#[tokio::test]
async fn commands_are_registered_globally_at_start() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let names = emu
        .wait_for("global commands", WAIT, |e| {
            let c = e.global_commands();
            (!c.is_empty()).then_some(c)
        })
        .await;
    let mut names: Vec<&str> = names.iter().map(|c| c["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ask", "config", "help", "model", "reset", "run"]);
    let put = emu.requests_to("PUT", "/applications/");
    assert_eq!(
        put[0].path,
        format!("/applications/{}/commands", emu.application_id())
    );
    let ask = &put[0].body.as_array().unwrap()[0];
    assert_eq!(ask["options"][0]["name"], "prompt");
    assert_eq!(ask["options"][0]["required"], true);
    bot.stop().await;
}

#[tokio::test]
async fn commands_go_to_the_dev_guild_when_configured() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(
        &emu,
        DiscordConfig {
            dev_guild_id: Some(emu.guild_id()),
            ..config(&emu)
        },
    )
    .await;
    emu.wait_for("guild commands", WAIT, |e| {
        (e.guild_commands(e.guild_id()).len() == 6).then_some(())
    })
    .await;
    assert!(emu.global_commands().is_empty());
    bot.stop().await;
}

#[tokio::test]
async fn slash_ask_defers_then_streams_edits_to_the_models_answer() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let answer = "Rust is a systems programming language that runs blazingly fast, \
                  prevents segfaults, and guarantees thread safety.";
    bot.llm
        .push(Reply::text(answer).delay(Duration::from_millis(120)));
    let cmd = emu.slash_command(emu.channel_id(), "ask", &[("prompt", "what is rust?")]);

    let done = emu
        .wait_for("the final answer", WAIT, |e| {
            e.interaction_messages(cmd.id)
                .first()
                .filter(|m| m.content == answer)
                .cloned()
        })
        .await;
    assert_eq!(
        done.flags & FLAG_LOADING,
        0,
        "the thinking placeholder was replaced"
    );
    let interaction = emu.interaction(cmd.id).unwrap();
    assert_eq!(
        interaction.response_type,
        Some(5),
        "acknowledged with a deferred response"
    );
    assert!(interaction.followups.is_empty());

    let requests = emu.requests();
    let callback = requests
        .iter()
        .position(|r| r.path.starts_with(&format!("/interactions/{}/", cmd.id)))
        .expect("a callback");
    assert_eq!(requests[callback].status, 204);
    assert!(
        requests[callback].at.duration_since(interaction.created) < Duration::from_secs(3),
        "deferred within Discord's 3-second window"
    );
    let original = format!(
        "/webhooks/{}/{}/messages/@original",
        emu.application_id(),
        cmd.token
    );
    let edits: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == original)
        .collect();
    assert!(
        edits.len() >= 2,
        "streamed as several edits, got {}",
        edits.len()
    );
    assert!(requests.iter().position(|r| r.path == original).unwrap() > callback);
    for e in &edits {
        assert_eq!(e.body["allowed_mentions"]["parse"], serde_json::json!([]));
    }
    assert_eq!(count_429(&emu), 0, "steady streaming meets no 429");
    let prompt = &bot.llm.chat_requests()[0].body["messages"];
    assert_eq!(
        prompt.as_array().unwrap().last().unwrap()["content"],
        "what is rust?"
    );
    bot.stop().await;
}

#[tokio::test]
async fn long_reply_is_split_into_followups_without_breaking_code_fences() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(
        &emu,
        DiscordConfig {
            edit_interval_ms: 300,
            ..config(&emu)
        },
    )
    .await;
    let mut answer = String::from("Here is the program:\n\n```python\n");
    for i in 0..150 {
        answer.push_str(&format!("print('line {i:03} of the long program')\n"));
    }
    answer.push_str("```\n\nThat prints 150 lines.");
    assert!(answer.chars().count() > 5000);
    bot.llm.push(Reply::text(answer.clone()).chunk_chars(400));
    let cmd = emu.slash_command(emu.channel_id(), "ask", &[("prompt", "a long program")]);

    let messages = emu
        .wait_for("the whole answer", WAIT, |e| {
            let m = e.interaction_messages(cmd.id);
            m.last()
                .filter(|l| l.content.ends_with("That prints 150 lines."))
                .map(|_| m.clone())
        })
        .await;
    assert!(
        messages.len() >= 3,
        "split over {} messages",
        messages.len()
    );
    assert_eq!(
        emu.interaction(cmd.id).unwrap().followups.len(),
        messages.len() - 1
    );
    for m in &messages {
        assert!(m.content.chars().count() <= 2000);
        let fences = m
            .content
            .lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count();
        assert_eq!(
            fences % 2,
            0,
            "a message with an open fence: {:?}",
            m.content
        );
    }
    // Nothing lost: every program line arrives once, in order, inside a python block.
    let lines: Vec<&str> = messages
        .iter()
        .flat_map(|m| m.content.lines())
        .filter(|l| l.starts_with("print("))
        .collect();
    assert_eq!(lines.len(), 150);
    assert!(lines.windows(2).all(|w| w[0] < w[1]));
    assert!(messages[1..]
        .iter()
        .all(|m| m.content.starts_with("```python")));
    assert!(emu.requests_to("POST", "/webhooks/").len() >= 2);
    bot.stop().await;
}

#[tokio::test]
async fn an_unknown_run_language_gets_an_ephemeral_error() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let cmd = emu.slash_command(
        emu.channel_id(),
        "run",
        &[("language", "cobol"), ("code", "DISPLAY 'HI'")],
    );
    let reply = emu
        .wait_for("an error reply", WAIT, |e| {
            e.interaction_messages(cmd.id).first().cloned()
        })
        .await;
    assert!(
        reply.content.contains("unknown language `cobol`"),
        "{}",
        reply.content
    );
    assert_eq!(emu.interaction(cmd.id).unwrap().response_type, Some(4));
    assert!(
        emu.bot_messages(emu.channel_id()).is_empty(),
        "ephemeral: not in the channel"
    );
    assert!(bot.llm.chat_requests().is_empty());
    bot.stop().await;
}

#[tokio::test]
async fn reset_in_a_thread_forgets_that_threads_conversation() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let channel = emu.channel_id();
    emu.user_says(channel, &crate::support::mention(&emu, "remember me"));
    let thread = crate::support::wait_thread(&emu, channel).await;
    crate::support::wait_bot_text(&emu, thread, "echo: remember me").await;

    // The command comes from the thread, so it must name the thread's conversation.
    let cmd = emu.slash_command(thread, "reset", &[]);
    emu.wait_for("the reset confirmation", WAIT, |e| {
        e.interaction_messages(cmd.id)
            .first()
            .filter(|m| m.content.contains("forgotten"))
            .map(|_| ())
    })
    .await;
    emu.user_says(thread, "who am I?");
    crate::support::wait_bot_text(&emu, thread, "echo: who am I?").await;
    let last = bot.llm.chat_requests().pop().unwrap();
    let messages = last.body["messages"].as_array().unwrap().clone();
    assert_eq!(
        messages.len(),
        2,
        "system prompt and the new message only: {messages:?}"
    );
    bot.stop().await;
}

/// The custom ids of the buttons on a message.
fn button_ids(m: &robit_emulators::discord::Message) -> Vec<String> {
    let mut ids = Vec::new();
    let mut stack: Vec<&serde_json::Value> = m.components.iter().collect();
    while let Some(v) = stack.pop() {
        if let Some(id) = v["custom_id"].as_str() {
            ids.push(id.to_string());
        }
        if let Some(children) = v["components"].as_array() {
            stack.extend(children);
        }
    }
    ids
}

/// A slash command's answer carries the buttons like any answer (drawn through the
/// interaction's webhook), and Regenerate on it writes the new answer over the original
/// response, through the command's own token: the click's could not edit it.
#[tokio::test]
async fn a_slash_answer_has_buttons_and_regenerate_rewrites_the_original_response() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    bot.llm.push(Reply::text("The first answer."));
    bot.llm.push(Reply::text("The second answer."));
    let cmd = emu.slash_command(emu.channel_id(), "ask", &[("prompt", "twice?")]);
    let answer = emu
        .wait_for("the answer with its buttons", WAIT, |e| {
            e.interaction_messages(cmd.id)
                .first()
                .filter(|m| m.content == "The first answer." && !m.components.is_empty())
                .cloned()
        })
        .await;
    let ids = button_ids(&answer);
    let regenerate = ids
        .iter()
        .find(|id| id.starts_with("robit:regenerate:"))
        .unwrap_or_else(|| panic!("no Regenerate in {ids:?}"))
        .clone();
    assert!(ids.iter().any(|id| id.starts_with("robit:up:")), "{ids:?}");
    let click = emu
        .component_as(emu.user_id(), answer.id, &regenerate, None)
        .expect("the button is on the answer");
    let rewritten = emu
        .wait_for("the regenerated answer", WAIT, |e| {
            e.interaction_messages(cmd.id)
                .first()
                .filter(|m| m.content == "The second answer." && !m.components.is_empty())
                .cloned()
        })
        .await;
    assert_eq!(
        rewritten.id, answer.id,
        "written over the original response"
    );
    assert_eq!(
        emu.interaction_messages(cmd.id).len(),
        1,
        "no second answer"
    );
    assert_eq!(emu.interaction(click.id).unwrap().response_type, Some(6));
    let whispered: Vec<String> = emu
        .interaction_messages(click.id)
        .into_iter()
        .filter(|m| m.flags & FLAG_EPHEMERAL != 0)
        .map(|m| m.content)
        .collect();
    assert!(whispered.is_empty(), "told the clicker: {whispered:?}");
    assert_eq!(bot.llm.chat_requests().len(), 2);
    bot.stop().await;
}
