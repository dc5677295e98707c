//! Two processes with different shard ranges split the guilds the way Discord routes them.

use crate::support::{config, mention, wait_bot_text, wait_thread, Bot};
use robit_discord::DiscordConfig;
use robit_emulators::discord::DiscordEmulator;
use robit_testkit::Reply;

#[tokio::test]
async fn two_adapters_with_different_shard_ranges_each_receive_only_their_guilds() {
    let emu = DiscordEmulator::start().await;
    let (_, channel_a) = emu.add_guild_on_shard("shard zero guild", 0, 2);
    let (_, channel_b) = emu.add_guild_on_shard("shard one guild", 1, 2);
    let zero = Bot::start(
        &emu,
        DiscordConfig {
            shard_ids: Some((0, 0)),
            shard_total: 2,
            ..config(&emu)
        },
    )
    .await;
    let one = Bot::start(
        &emu,
        DiscordConfig {
            shard_ids: Some((1, 1)),
            shard_total: 2,
            ..config(&emu)
        },
    )
    .await;
    zero.llm.set_default(Reply::text("from shard zero"));
    one.llm.set_default(Reply::text("from shard one"));

    emu.user_says(channel_a, &mention(&emu, "who answers?"));
    emu.user_says(channel_b, &mention(&emu, "who answers?"));
    let thread_a = wait_thread(&emu, channel_a).await;
    let thread_b = wait_thread(&emu, channel_b).await;
    wait_bot_text(&emu, thread_a, "from shard zero").await;
    wait_bot_text(&emu, thread_b, "from shard one").await;
    assert_eq!(zero.llm.chat_requests().len(), 1);
    assert_eq!(one.llm.chat_requests().len(), 1);

    let mut shards: Vec<(u32, u32)> = emu.sessions().iter().map(|s| s.shard).collect();
    shards.sort();
    assert_eq!(shards, [(0, 2), (1, 2)]);
    zero.stop().await;
    one.stop().await;
}
