//! Who may use robit, per-channel settings, turn limits and quotas, end to end through the
//! Slack emulator: the fake LLM's request log shows whether the model was called and with
//! which system prompt, and the emulator's `chat.postEphemeral` log shows the refusals.

use super::support::{Setup, WAIT};
use robit_core::{AccessConfig, EngineConfig, LimitsConfig, Subject};
use robit_emulators::slack::{GENERAL, TEAM_ID, USER};
use robit_store::Store;
use robit_testkit::Reply;
use robit_types::{ChannelId, Platform, Rate, WorkspaceId};
use std::sync::Arc;
use std::time::Duration;

const ADMIN: &str = "U0ADMIN";
const BOB: &str = "U0BOB";

fn config() -> EngineConfig {
    EngineConfig {
        access: AccessConfig {
            default_allow: true,
            admins: vec![Subject::parse(&format!("slack:user:{ADMIN}")).unwrap()],
            ..AccessConfig::default()
        },
        ..EngineConfig::default()
    }
}

async fn mention(s: &Setup, user: &str, text: &str) {
    let d = s.emulator.user_message_as(
        user,
        GENERAL,
        None,
        &format!("<@{}> {text}", robit_emulators::slack::BOT_USER),
    );
    // Submissions happen in delivery order; waiting for each ack keeps the test's order.
    assert!(
        s.emulator.wait_for(WAIT, |e| e.acked(&d.event_id)).await,
        "event {} never acknowledged",
        d.event_id
    );
}

fn ephemerals_for(s: &Setup, user: &str) -> Vec<String> {
    s.emulator
        .ephemerals()
        .into_iter()
        .filter(|e| e.user == user)
        .map(|e| e.text)
        .collect()
}

async fn wait_ephemeral(s: &Setup, user: &str, n: usize) -> Vec<String> {
    assert!(
        s.emulator
            .wait_for(WAIT, |_| ephemerals_for(s, user).len() >= n)
            .await,
        "{user} never got {n} ephemeral message(s); got {:?}",
        ephemerals_for(s, user)
    );
    ephemerals_for(s, user)
}

fn bot_texts(s: &Setup) -> Vec<String> {
    s.emulator
        .bot_messages_in(GENERAL)
        .into_iter()
        .map(|m| m.text)
        .collect()
}

async fn wait_bot_text(s: &Setup, what: impl Fn(&str) -> bool) {
    assert!(
        s.emulator
            .wait_for(WAIT, |_| bot_texts(s).iter().any(|t| what(t)))
            .await,
        "bot said {:?}",
        bot_texts(s)
    );
}

/// Messages the bot posted anywhere (mentions are answered in threads).
fn replies(s: &Setup) -> usize {
    s.emulator
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.status == 200 && c.error.is_none())
        .count()
}

async fn store(s: &Setup) -> Arc<dyn Store> {
    robit_store::connect_sqlite(&s.db).await.unwrap()
}

fn system_prompt_of(req: &robit_testkit::RecordedRequest) -> String {
    req.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn denied_user_gets_an_ephemeral_refusal_and_no_model_call() {
    let mut c = config();
    c.access
        .deny
        .push(Subject::parse(&format!("slack:user:{BOB}")).unwrap());
    let s = Setup::socket_config(c).await;
    mention(&s, BOB, "hello?").await;
    let got = wait_ephemeral(&s, BOB, 1).await;
    assert!(got[0].contains("don't have access"), "{got:?}");
    // Alice is let in, and hers is the only request the model ever saw.
    mention(&s, USER, "hi from alice").await;
    assert!(s.emulator.wait_for(WAIT, |_| replies(&s) >= 1).await);
    let requests = s.llm.chat_requests();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].body.to_string().contains("hello?"));
    let audit = store(&s).await.audit_log(0, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.entry.action == "refused.denied" && e.entry.actor == BOB),
        "{audit:?}"
    );
}

#[tokio::test]
async fn admin_denies_a_user_at_run_time_and_can_clear_it() {
    let s = Setup::socket_config(config()).await;
    s.emulator.slash_as(
        ADMIN,
        GENERAL,
        "/robit",
        &format!("config deny user <@{BOB}|bob>"),
    );
    wait_bot_text(&s, |t| t.contains("deny user")).await;
    mention(&s, BOB, "let me in").await;
    assert!(wait_ephemeral(&s, BOB, 1).await[0].contains("don't have access"));
    assert!(s.llm.chat_requests().is_empty());
    s.emulator.slash_as(
        ADMIN,
        GENERAL,
        "/robit",
        &format!("config clear user {BOB}"),
    );
    wait_bot_text(&s, |t| t.contains("Removed the access rule")).await;
    mention(&s, BOB, "now?").await;
    assert!(
        s.emulator
            .wait_for(WAIT, |_| !s.llm.chat_requests().is_empty())
            .await
    );
}

#[tokio::test]
async fn admin_sets_the_channel_system_prompt_and_the_next_turn_uses_it() {
    let s = Setup::socket_config(config()).await;
    s.emulator.slash_as(
        ADMIN,
        GENERAL,
        "/robit",
        "config set system_prompt You are a pirate. Answer in pirate speak.",
    );
    wait_bot_text(&s, |t| t.contains("system_prompt") && t.contains("now")).await;
    mention(&s, USER, "hello").await;
    assert!(
        s.emulator
            .wait_for(WAIT, |_| !s.llm.chat_requests().is_empty())
            .await
    );
    assert_eq!(
        system_prompt_of(&s.llm.chat_requests()[0]),
        "You are a pirate. Answer in pirate speak."
    );
    // /config show says where it comes from.
    s.emulator.slash("/robit", "config show");
    wait_bot_text(&s, |t| t.contains("(channel): You are a pirate")).await;
    let audit = store(&s).await.audit_log(0, 10).await.unwrap();
    assert!(audit
        .iter()
        .any(|e| e.entry.action == "config.set" && e.entry.actor == ADMIN));
}

#[tokio::test]
async fn a_non_admin_cannot_change_settings() {
    let s = Setup::socket_config(config()).await;
    s.emulator
        .slash("/robit", "config set system_prompt I am in charge now");
    let got = wait_ephemeral(&s, USER, 1).await;
    assert!(got[0].contains("Only robit's admins"), "{got:?}");
    let rows = store(&s)
        .await
        .settings(
            Platform::Slack,
            &WorkspaceId::new(TEAM_ID),
            &ChannelId::new(GENERAL),
        )
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn bad_config_input_names_the_problem_and_changes_nothing() {
    let mut c = config();
    c.max_system_prompt_chars = 40;
    let s = Setup::socket_config(c).await;
    // Unknown setting: refused at parse time, in the command's ephemeral answer.
    s.emulator
        .slash_as(ADMIN, GENERAL, "/robit", "config set colour blue");
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e
                .command_responses()
                .iter()
                .any(|r| r.body["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("unknown setting `colour`"))))
            .await,
        "{:?}",
        s.emulator.command_responses()
    );
    // Out of range and oversized: refused by the engine, only to the admin.
    s.emulator.slash_as(
        ADMIN,
        GENERAL,
        "/robit",
        "config set sandbox.wall_time_ms 999999",
    );
    let got = wait_ephemeral(&s, ADMIN, 1).await;
    assert!(
        got[0].contains("sandbox.wall_time_ms")
            && got[0].contains("10000")
            && got[0].contains("Nothing changed"),
        "{got:?}"
    );
    let long = "x".repeat(41);
    s.emulator.slash_as(
        ADMIN,
        GENERAL,
        "/robit",
        &format!("config set system_prompt {long}"),
    );
    let got = wait_ephemeral(&s, ADMIN, 2).await;
    assert!(
        got[1].contains("41 characters") && got[1].contains("40"),
        "{got:?}"
    );
    let rows = store(&s)
        .await
        .settings(
            Platform::Slack,
            &WorkspaceId::new(TEAM_ID),
            &ChannelId::new(GENERAL),
        )
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    assert!(bot_texts(&s).is_empty(), "{:?}", bot_texts(&s));
}

#[tokio::test]
async fn the_rate_limit_refuses_the_extra_turn_and_allows_it_after_the_window() {
    let mut c = config();
    c.limits = LimitsConfig {
        user_turns: Some(Rate::per(2, Duration::from_secs(3))),
        ..LimitsConfig::default()
    };
    let s = Setup::socket_config(c).await;
    mention(&s, USER, "one").await;
    mention(&s, USER, "two").await;
    mention(&s, USER, "three").await;
    let got = wait_ephemeral(&s, USER, 1).await;
    assert!(
        got[0].contains("limit of 2 requests") && got[0].contains("Try again in"),
        "{got:?}"
    );
    assert!(
        s.emulator
            .wait_for(WAIT, |_| s.llm.chat_requests().len() == 2)
            .await
    );
    // Another user has a bucket of their own.
    mention(&s, BOB, "bob's turn").await;
    assert!(
        s.emulator
            .wait_for(WAIT, |_| s.llm.chat_requests().len() == 3)
            .await
    );
    // One token comes back every 1.5 s.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    mention(&s, USER, "four").await;
    assert!(
        s.emulator
            .wait_for(WAIT, |_| s.llm.chat_requests().len() == 4)
            .await
    );
    assert_eq!(ephemerals_for(&s, USER).len(), 1);
}

#[tokio::test]
async fn quota_exhaustion_is_reported() {
    let mut c = config();
    c.limits.workspace_daily_tokens = Some(50);
    let s = Setup::socket_config(c).await;
    s.llm.push(Reply::text("a long answer").usage(40, 20));
    mention(&s, USER, "spend it").await;
    assert!(s.emulator.wait_for(WAIT, |_| replies(&s) >= 1).await);
    // Usage is recorded as the turn ends, just after the reply is posted.
    let st = store(&s).await;
    let ws = WorkspaceId::new(TEAM_ID);
    for _ in 0..200 {
        if st.tokens_used_since(Platform::Slack, &ws, 0).await.unwrap() >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mention(&s, BOB, "anything left?").await;
    let got = wait_ephemeral(&s, BOB, 1).await;
    assert!(
        got[0].contains("daily allowance of 50 tokens") && got[0].contains("00:00 UTC"),
        "{got:?}"
    );
    assert_eq!(s.llm.chat_requests().len(), 1);
}

#[tokio::test]
async fn settings_and_counters_survive_a_restart() {
    let mut c = config();
    c.limits.user_turns = Some(Rate {
        burst: 1.0,
        per_second: 0.0001,
    });
    let mut s = Setup::socket_config(c.clone()).await;
    s.emulator.slash_as(
        ADMIN,
        GENERAL,
        "/robit",
        "config set system_prompt Persistent prompt.",
    );
    wait_bot_text(&s, |t| t.contains("system_prompt")).await;
    mention(&s, USER, "my one turn").await;
    assert!(
        s.emulator
            .wait_for(WAIT, |_| s.llm.chat_requests().len() == 1)
            .await
    );

    s.restart(c).await;
    mention(&s, USER, "another?").await;
    let got = wait_ephemeral(&s, USER, 1).await;
    assert!(got[0].contains("Try again in"), "{got:?}");
    mention(&s, BOB, "bob here").await;
    assert!(
        s.emulator
            .wait_for(WAIT, |_| s.llm.chat_requests().len() == 2)
            .await
    );
    let requests = s.llm.chat_requests();
    assert_eq!(system_prompt_of(&requests[1]), "Persistent prompt.");
}
