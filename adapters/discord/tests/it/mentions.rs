//! Mentions start threads; the bot's threads continue without mentions; DMs are
//! conversations; bots (the bot itself included) are ignored; mentions in output are inert.

use crate::support::{config, mention, wait_bot_text, wait_thread, Bot, WAIT};
use robit_emulators::discord::{DiscordEmulator, PUBLIC_THREAD};
use robit_testkit::Reply;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn mention_starts_a_thread_and_a_reply_there_continues_without_mention() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let channel = emu.channel_id();
    let source = emu.user_says(channel, &mention(&emu, "what is   a monad?"));

    let thread = wait_thread(&emu, channel).await;
    assert_eq!(
        thread, source,
        "a thread started from the message has the message's id"
    );
    let t = emu.channel(thread).unwrap();
    assert_eq!(t.kind, PUBLIC_THREAD);
    assert_eq!(t.name, "what is a monad?");
    assert_eq!(t.owner_id, Some(emu.bot_id()));
    wait_bot_text(&emu, thread, "echo: what is   a monad?").await;
    assert!(
        emu.bot_messages(channel).is_empty(),
        "the answer is in the thread only"
    );

    emu.user_says(thread, "and a functor?");
    wait_bot_text(&emu, thread, "echo: and a functor?").await;
    let requests = bot.llm.chat_requests();
    assert_eq!(requests.len(), 2);
    let history: Vec<(String, String)> = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        history[1..],
        [
            ("user".into(), "what is   a monad?".into()),
            ("assistant".into(), "echo: what is   a monad?".into()),
            ("user".into(), "and a functor?".into()),
        ],
        "the follow-up carries the earlier turn"
    );
    assert_eq!(emu.threads(channel).len(), 1, "no second thread");
    bot.stop().await;
}

#[tokio::test]
async fn unmentioned_messages_and_other_peoples_threads_are_ignored_until_mentioned() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let channel = emu.channel_id();
    let source = emu.user_says(channel, "let's discuss");
    let thread = emu.start_thread(emu.user_id(), channel, source, "discussion");
    emu.user_says(thread, "no bot here");
    emu.user_says(channel, "just chatting");
    emu.user_says(thread, &mention(&emu, "what do you think?"));
    wait_bot_text(&emu, thread, "echo: what do you think?").await;
    assert_eq!(
        bot.llm.chat_requests().len(),
        1,
        "only the mention was answered"
    );
    assert_eq!(
        emu.threads(channel).len(),
        1,
        "answered in the existing thread"
    );
    bot.stop().await;
}

#[tokio::test]
async fn bot_authors_are_ignored_including_itself() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let channel = emu.channel_id();
    let other_bot = emu.add_user("otherbot", true);
    emu.says(other_bot, channel, &mention(&emu, "hello fellow bot"));
    emu.user_says(channel, &mention(&emu, "hi"));
    let thread = wait_thread(&emu, channel).await;
    wait_bot_text(&emu, thread, "echo: hi").await;
    // The bot's own reply came back as MESSAGE_CREATE in its own thread; give a loop time to
    // show itself.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(bot.llm.chat_requests().len(), 1);
    assert_eq!(emu.threads(channel).len(), 1);
    assert_eq!(emu.bot_messages(thread).len(), 1);
    bot.stop().await;
}

#[tokio::test]
async fn a_dm_is_a_conversation_without_mention() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let dm = emu.dm_channel(emu.user_id());
    emu.user_says(dm, "hello in private");
    wait_bot_text(&emu, dm, "echo: hello in private").await;
    emu.user_says(dm, "again");
    wait_bot_text(&emu, dm, "echo: again").await;
    let second = &bot.llm.chat_requests()[1].body["messages"];
    assert_eq!(
        second.as_array().unwrap().len(),
        4,
        "system + the first turn + the new message"
    );
    bot.stop().await;
}

#[tokio::test]
async fn everyone_in_model_output_is_posted_inert() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    bot.llm
        .push(Reply::text("Sure: @everyone and <@1234> look at this"));
    let channel = emu.channel_id();
    emu.user_says(channel, &mention(&emu, "ping everyone"));
    let thread = wait_thread(&emu, channel).await;
    let reply = emu
        .wait_for("the reply", WAIT, |e| {
            e.bot_messages(thread)
                .into_iter()
                .find(|m| m.content.ends_with("look at this"))
        })
        .await;
    assert!(!reply.content.contains("@everyone"), "{:?}", reply.content);
    assert!(reply.content.contains("@\u{200B}everyone"));
    assert!(!reply.mention_everyone);
    assert!(reply.mentions.is_empty());
    let posts = emu.requests_to("POST", &format!("/channels/{thread}/messages"));
    assert!(!posts.is_empty());
    for r in posts.iter().chain(
        emu.requests_to("PATCH", &format!("/channels/{thread}/messages"))
            .iter(),
    ) {
        assert_eq!(
            r.body["allowed_mentions"]["parse"],
            json!([]),
            "{:?}",
            r.body
        );
        assert_eq!(r.body["allowed_mentions"]["users"], json!([]));
        assert_eq!(r.body["allowed_mentions"]["roles"], json!([]));
    }
    bot.stop().await;
}

/// Issue 15's attack: four backticks inside a code block, then a role mention, @everyone and a
/// masked link. Discord ends a block at the first three backticks, so before the fix the rest
/// of the line was live Markdown in the bot's name.
#[tokio::test]
async fn model_text_cannot_close_its_code_block() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let attack = "````<@&123> @everyone [verify](https://evil.example)";
    bot.llm
        .push(Reply::text(format!("Here:\n```\n{attack}\n```")));
    let channel = emu.channel_id();
    emu.user_says(channel, &mention(&emu, "show me"));
    let thread = wait_thread(&emu, channel).await;
    let shown =
        "Here:\n```\n``\u{200B}``<@&123> @everyone [verify](https://evil.example)\n```".to_string();
    let m = wait_bot_text(&emu, thread, &shown).await;
    // Where Discord closes the block: the first three backticks after the opening line.
    let body = m.content.find("```\n").unwrap() + 4;
    let close = body + m.content[body..].find("```").unwrap();
    assert_eq!(close, m.content.len() - 3, "closed early: {:?}", m.content);
    bot.stop().await;
}
