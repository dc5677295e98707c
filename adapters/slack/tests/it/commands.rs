//! Slash commands over Socket Mode and HTTP, and sandbox output (inline and uploaded).

use super::support::{FakeRunner, Setup, WAIT};
use robit_emulators::slack::GENERAL;
use robit_testkit::Reply;
use std::sync::Arc;

fn bot_texts(s: &Setup) -> Vec<String> {
    s.emulator
        .bot_messages_in(GENERAL)
        .into_iter()
        .map(|m| m.text)
        .collect()
}

#[tokio::test]
async fn slash_ask_is_acknowledged_and_answered_in_the_channel() {
    let s = Setup::socket().await;
    s.llm.push(Reply::text("four"));
    let d = s.emulator.slash("/robit", "ask what is 2+2?");
    assert!(s.emulator.wait_for(WAIT, |e| e.acked(&d.event_id)).await);
    assert!(
        s.emulator
            .wait_for(WAIT, |_| bot_texts(&s) == ["four"])
            .await,
        "bot said {:?}",
        bot_texts(&s)
    );
    let req = &s.llm.chat_requests()[0];
    assert!(req.body["messages"].to_string().contains("what is 2+2?"));
}

#[tokio::test]
async fn slash_help_and_reset_are_answered_without_the_model() {
    let s = Setup::socket().await;
    s.emulator.slash("/robit", "help");
    assert!(
        s.emulator
            .wait_for(WAIT, |_| !bot_texts(&s).is_empty())
            .await
    );
    s.emulator.slash("/robit", "reset");
    assert!(
        s.emulator
            .wait_for(WAIT, |_| bot_texts(&s).len() >= 2)
            .await
    );
    assert!(s.llm.chat_requests().is_empty());
}

#[tokio::test]
async fn unknown_slash_subcommand_gets_an_ephemeral_explanation() {
    let s = Setup::socket().await;
    let d = s.emulator.slash("/robit", "frobnicate now");
    assert!(s.emulator.wait_for(WAIT, |e| e.acked(&d.event_id)).await);
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.command_responses().iter().any(|r| r.body
                ["text"]
                .as_str()
                .is_some_and(|t| t.contains("unknown command"))
                && r.body["response_type"] == "ephemeral"))
            .await,
        "responses: {:?}",
        s.emulator.command_responses()
    );
    assert!(bot_texts(&s).is_empty());
}

#[tokio::test]
async fn slash_command_over_http_is_answered() {
    let s = Setup::http().await;
    s.llm.push(Reply::text("over http"));
    let d = s.emulator.slash("/robit", "ask hi");
    assert!(s.emulator.wait_for(WAIT, |e| e.acked(&d.event_id)).await);
    assert!(
        s.emulator
            .wait_for(WAIT, |_| bot_texts(&s) == ["over http"])
            .await
    );
}

#[tokio::test]
async fn slash_run_shows_short_output_inline() {
    let runner = Arc::new(FakeRunner {
        output: "42\n".into(),
    });
    let s = Setup::socket_with(Default::default(), Some(runner)).await;
    s.emulator.slash("/robit", "run python print(42)");
    assert!(
        s.emulator
            .wait_for(WAIT, |_| bot_texts(&s).iter().any(|t| t.contains("42")))
            .await,
        "bot said {:?}",
        bot_texts(&s)
    );
    assert!(s.emulator.files().is_empty());
}

#[tokio::test]
async fn long_sandbox_output_is_uploaded_as_a_file() {
    let output: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let runner = Arc::new(FakeRunner {
        output: output.clone(),
    });
    let s = Setup::socket_with(Default::default(), Some(runner)).await;
    s.emulator.slash(
        "/robit",
        "run python for i in range(2000): print(f'line {i}')",
    );
    assert!(
        s.emulator
            .wait_for(WAIT, |e| e.files().iter().any(|f| f.completed))
            .await,
        "no upload; bot said {:?}",
        bot_texts(&s)
    );
    let file = s
        .emulator
        .files()
        .into_iter()
        .find(|f| f.completed)
        .unwrap();
    assert_eq!(file.bytes.as_deref(), Some(output.as_bytes()));
    let shared = s.emulator.bot_messages_in(GENERAL);
    assert!(shared.iter().any(|m| m.files == [file.id.clone()]));
    let calls: Vec<String> = s.emulator.calls().into_iter().map(|c| c.method).collect();
    let get = calls
        .iter()
        .position(|m| m == "files.getUploadURLExternal")
        .unwrap();
    let done = calls
        .iter()
        .position(|m| m == "files.completeUploadExternal")
        .unwrap();
    assert!(get < done);
}
