//! Attachments in and files out, end to end: files shared in Slack are fetched from the
//! emulator's `url_private` with the bot token and reach the model's request; a `/run` gets
//! its shared files in the sandbox and the file the program writes is uploaded to the thread.

use crate::support::{Setup, WAIT};
use robit_core::EngineConfig;
use robit_emulators::slack::{SharedFile, SlackEmulatorOptions, GENERAL};
use robit_sandbox::{CodeRunner, Sandbox, SandboxConfig};
use robit_testkit::llm::Reply;
use serde_json::Value;
use std::sync::Arc;

fn vision_config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.attachments.vision_models = vec![config.default_model.clone()];
    config
}

/// The `messages` of the last chat request the fake model received.
fn last_messages(setup: &Setup) -> Vec<Value> {
    let requests = setup.llm.chat_requests();
    let last = requests.last().expect("the model was asked");
    last.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_for_answer(setup: &Setup, thread: &robit_emulators::slack::ThreadRef) {
    let got = setup
        .emulator
        .wait_for_reply(thread, WAIT, |t| t.contains("seen"))
        .await;
    assert!(
        got.is_some(),
        "no answer: {:?}",
        setup.emulator.reply_text(thread)
    );
}

#[tokio::test]
async fn a_shared_text_file_reaches_the_model() {
    let setup = Setup::socket().await;
    setup.llm.push(Reply::text("seen"));
    let d = setup.emulator.user_mentions_with_files(
        GENERAL,
        "what does this say?",
        vec![SharedFile::new(
            "notes.txt",
            "text/plain",
            "the launch moved to Friday\n",
        )],
    );
    wait_for_answer(&setup, &d.thread()).await;

    let fetches = setup.emulator.file_fetches();
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    assert!(
        fetches[0].authorized && fetches[0].status == 200,
        "{fetches:?}"
    );
    let messages = last_messages(&setup);
    let user_texts: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(user_texts[0], "what does this say?");
    assert_eq!(
        user_texts[1],
        "[attached file: notes.txt]\n```\nthe launch moved to Friday\n```"
    );
}

#[tokio::test]
async fn a_shared_image_reaches_a_vision_model_as_a_data_url() {
    let setup =
        Setup::socket_with_config(SlackEmulatorOptions::default(), None, vision_config()).await;
    setup.llm.push(Reply::text("seen"));
    let png = b"\x89PNG\r\n\x1a\nfake image bytes".to_vec();
    let d = setup.emulator.user_mentions_with_files(
        GENERAL,
        "what is in this picture?",
        vec![SharedFile::new("cat.png", "image/png", png.clone())],
    );
    wait_for_answer(&setup, &d.thread()).await;

    let messages = last_messages(&setup);
    let last_user = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(&png);
    assert_eq!(
        last_user["content"],
        serde_json::json!([
            {"type": "text", "text": "[image: cat.png]"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}},
        ])
    );
}

#[tokio::test]
async fn a_shared_image_is_described_as_omitted_to_a_model_without_vision() {
    let setup = Setup::socket().await;
    setup.llm.push(Reply::text("seen"));
    let d = setup.emulator.user_mentions_with_files(
        GENERAL,
        "what is in this picture?",
        vec![SharedFile::new("cat.png", "image/png", b"\x89PNG".to_vec())],
    );
    wait_for_answer(&setup, &d.thread()).await;

    let messages = last_messages(&setup);
    let last_user = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    assert_eq!(
        last_user["content"],
        "[image omitted: cat.png — the model cannot see images]"
    );
    // Nothing the model cannot use is downloaded.
    assert!(setup.emulator.file_fetches().is_empty());
}

fn sandbox_config() -> SandboxConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guests = std::env::var_os("ROBIT_GUESTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("data/guests"));
    assert!(
        guests.join("python.wasm").exists(),
        "sandbox guests missing in {}: run scripts/fetch-guests",
        guests.display()
    );
    let mut config = SandboxConfig::new(&guests, root.join("data/cache"));
    config.python_pool_size = 0;
    config
}

#[tokio::test]
async fn run_gets_the_shared_csv_and_the_file_it_writes_is_uploaded_to_the_thread() {
    let sandbox: Arc<dyn CodeRunner> = Arc::new(Sandbox::new(sandbox_config()).await.unwrap());
    let setup = Setup::socket_with(SlackEmulatorOptions::default(), Some(sandbox)).await;
    let code = "import csv; rows = list(csv.reader(open('data.csv'))); \
                open('out.csv', 'w').write(''.join(r[0] + ',' + str(int(r[1]) * 2) + '\\n' for r in rows)); \
                print(len(rows), 'rows')";
    let d = setup.emulator.user_mentions_with_files(
        GENERAL,
        &format!("/run python {code}"),
        vec![SharedFile::new("data.csv", "text/csv", "a,1\nb,2\n")],
    );
    let thread = d.thread();
    let uploaded = setup
        .emulator
        .wait_for(WAIT, |e| {
            e.files().iter().any(|f| f.completed && f.name == "out.csv")
        })
        .await;
    assert!(
        uploaded,
        "no out.csv uploaded; files {:?}; thread {:?}",
        setup.emulator.files(),
        setup.emulator.reply_text(&thread)
    );
    let file = setup
        .emulator
        .files()
        .into_iter()
        .find(|f| f.name == "out.csv")
        .unwrap();
    assert_eq!(file.bytes.as_deref(), Some(&b"a,2\nb,4\n"[..]));
    // The upload was shared into the conversation's thread, and the output was posted there.
    let shared_in_thread = setup
        .emulator
        .thread_messages(&thread)
        .iter()
        .any(|m| m.files.contains(&file.id));
    assert!(
        shared_in_thread,
        "{:?}",
        setup.emulator.thread_messages(&thread)
    );
    assert!(setup.emulator.reply_text(&thread).contains("2 rows"));
    // The input was fetched with the bot token, and not uploaded back unchanged.
    assert!(setup.emulator.file_fetches().iter().all(|f| f.authorized));
    assert!(!setup.emulator.files().iter().any(|f| f.name == "data.csv"));
}
