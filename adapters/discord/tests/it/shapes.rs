//! The emulator's dispatches are what serenity expects: a malformed dispatch would silently
//! become `Event::Unknown` in serenity and no handler would run, so every frame sent in a
//! scenario is decoded here with serenity's own types.

use crate::support::{config, mention, wait_bot_text, wait_thread, Bot, WAIT};
use robit_emulators::discord::DiscordEmulator;
use serenity::all::{Event, GatewayEvent};

#[tokio::test]
async fn every_dispatch_decodes_as_a_known_serenity_event() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    let channel = emu.channel_id();
    emu.user_says(channel, &mention(&emu, "shapes"));
    let thread = wait_thread(&emu, channel).await;
    wait_bot_text(&emu, thread, "echo: shapes").await;
    let cmd = emu.slash_command(thread, "help", &[]);
    emu.wait_for("help", WAIT, |e| {
        e.interaction_messages(cmd.id)
            .first()
            .filter(|m| m.content.contains("/ask"))
            .map(|_| ())
    })
    .await;
    let dm = emu.dm_channel(emu.user_id());
    emu.user_says(dm, "dm");
    wait_bot_text(&emu, dm, "echo: dm").await;
    emu.add_guild("late guild");

    let mut kinds = std::collections::BTreeSet::new();
    for frame in emu.dispatch_frames() {
        let event: GatewayEvent =
            serde_json::from_str(&frame).unwrap_or_else(|e| panic!("{e}: {frame}"));
        let GatewayEvent::Dispatch(_, event) = event else {
            panic!("not a dispatch: {frame}");
        };
        assert!(
            !matches!(event, Event::Unknown(_)),
            "serenity did not understand {frame}"
        );
        let t: serde_json::Value = serde_json::from_str(&frame).unwrap();
        kinds.insert(t["t"].as_str().unwrap().to_string());
    }
    for t in [
        "READY",
        "GUILD_CREATE",
        "MESSAGE_CREATE",
        "MESSAGE_UPDATE",
        "THREAD_CREATE",
        "INTERACTION_CREATE",
    ] {
        assert!(kinds.contains(t), "no {t} in {kinds:?}");
    }
    bot.stop().await;
}
