//! The buttons on an answer, end to end on both emulators with the real `robit serve`: a
//! streaming answer shows Stop; the asker's Stop cuts it at once, keeps what was shown and
//! stores it as stopped; someone else's Stop is refused to them alone; a finished answer
//! shows 👍/👎 and a vote is stored with the answer's model and counted by `robit usage`.
//! Discord clicks come over the gateway (INTERACTION_CREATE, acknowledged with a deferred
//! update; the HTTP interactions endpoint is covered by the adapter's own tests); Slack
//! clicks are signed `block_actions` POSTs to the HTTP intake, and once over Socket Mode.

use robit_system_tests::platform::{Asked, BotMessage, Platform};
use robit_system_tests::{eventually, robit_once, Db, Robit};
use robit_testkit::llm::{FakeLlm, Reply};

async fn start(db: &Db, platform: &Platform, llm: &FakeLlm) -> Robit {
    start_with(db, platform, llm, &[]).await
}

/// [`start`] with `extra` settings (`ROBIT_SLACK__APP_TOKEN`: Slack over Socket Mode).
async fn start_with(
    db: &Db,
    platform: &Platform,
    llm: &FakeLlm,
    extra: &[(String, String)],
) -> Robit {
    let mut env = platform.env();
    env.extend_from_slice(extra);
    env.push(("ROBIT_LLM__BASE_URL".into(), llm.base_url()));
    let robit = Robit::start(db, &env).await;
    match platform {
        // Socket Mode: events and clicks come over the socket, not the events URL.
        Platform::Slack(s) if env.iter().any(|(k, _)| k == "ROBIT_SLACK__APP_TOKEN") => {
            assert!(
                eventually(|| s.socket_connections() > 0).await,
                "no socket: {}",
                robit.log()
            );
        }
        _ => platform.attach(&robit).await,
    }
    robit
}

/// The bot's last message where `asked` was asked, once one shows `button`.
async fn with_button(platform: &Platform, asked: &Asked, button: &str) -> BotMessage {
    let found = eventually(|| {
        platform
            .bot_messages(asked)
            .last()
            .is_some_and(|m| m.buttons.iter().any(|b| b.starts_with(button)))
    })
    .await;
    let messages = platform.bot_messages(asked);
    assert!(found, "no {button} button: {messages:?}");
    messages.last().cloned().unwrap()
}

fn id_of<'a>(message: &'a BotMessage, prefix: &str) -> &'a str {
    message
        .buttons
        .iter()
        .find(|b| b.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} button on {message:?}"))
}

/// Stop while streaming: someone else is refused (only they are told), the asker stops it;
/// the message keeps the text, says who stopped it and trades Stop for the votes; the stored
/// answer is marked stopped and the turn closed.
async fn stop_mid_stream(platform: Platform, extra: &[(String, String)]) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    llm.push(Reply::stall_after("The first half of the answer"));
    let robit = start_with(&db, &platform, &llm, extra).await;
    let asked = platform.ask("tell me everything");
    let streaming = with_button(&platform, &asked, "robit:stop:").await;
    assert!(streaming.text.contains("first half"), "{streaming:?}");
    let stop = id_of(&streaming, "robit:stop:").to_string();

    let mallory = platform.someone_else();
    let refused = platform.click(&asked, &streaming.id, &stop, &mallory);
    assert!(
        eventually(|| !platform.whispers(&refused).is_empty()).await,
        "no refusal: {}",
        robit.log()
    );
    assert!(platform.click_acknowledged(&refused));
    let told = platform.whispers(&refused);
    assert!(told[0].contains("Only the person who asked"), "{told:?}");
    assert!(
        !platform
            .bot_messages(&asked)
            .iter()
            .any(|m| m.text.contains("Stopped")),
        "someone else's click stopped the answer"
    );

    let clicked = platform.click(&asked, &streaming.id, &stop, &platform.asker());
    let done = with_button(&platform, &asked, "robit:up:").await;
    assert!(platform.click_acknowledged(&clicked));
    assert_eq!(
        done.id, streaming.id,
        "the same message is finished in place"
    );
    assert!(
        done.text.contains("first half") && done.text.contains("Stopped by"),
        "{done:?}"
    );
    assert!(!done.buttons.iter().any(|b| b.starts_with("robit:stop:")));
    assert!(platform.whispers(&clicked).is_empty());
    let stored = async {
        for _ in 0..500 {
            let rows = db
                .rows("SELECT content, status FROM messages WHERE role = 'assistant'")
                .await;
            if !rows.is_empty() {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Vec::new()
    }
    .await;
    assert_eq!(
        stored,
        vec![vec![
            "The first half of the answer".to_string(),
            "stopped".to_string()
        ]]
    );
    let turns = db
        .rows("SELECT status, COALESCE(stopped_by, '') FROM turns")
        .await;
    assert_eq!(turns.len(), 1, "{turns:?}");
    assert_eq!(turns[0][0], "cancelled", "{turns:?}");
    assert!(
        !turns[0][1].is_empty(),
        "the stop is in the journal: {turns:?}"
    );
    robit.stop();
    db.drop().await;
}

/// A finished answer shows 👍/👎; votes are stored with the answer's model (one per user,
/// the last click wins) and `robit usage` counts them per model.
async fn feedback(platform: Platform) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("Forty-two."));
    let robit = start(&db, &platform, &llm).await;
    let asked = platform.ask("the answer?");
    let answer = with_button(&platform, &asked, "robit:up:").await;
    assert!(answer.text.contains("Forty-two."), "{answer:?}");
    assert!(!answer.buttons.iter().any(|b| b.starts_with("robit:stop:")));
    let up = id_of(&answer, "robit:up:").to_string();
    let down = id_of(&answer, "robit:down:").to_string();
    let asker = platform.asker();
    let first = platform.click(&asked, &answer.id, &down, &asker);
    assert!(eventually(|| platform.click_acknowledged(&first)).await);
    let vote = || async {
        db.rows("SELECT user_id, vote, provider, model FROM feedback")
            .await
    };
    assert!(
        eventually_async(|| async { vote().await.first().is_some_and(|r| r[1] == "down") }).await
    );
    platform.click(&asked, &answer.id, &up, &asker);
    assert!(
        eventually_async(|| async { vote().await.first().is_some_and(|r| r[1] == "up") }).await
    );
    let rows = vote().await;
    assert_eq!(rows.len(), 1, "one vote per user: {rows:?}");
    assert_eq!(rows[0][0], asker.0);
    assert_eq!(rows[0][3], "gpt-4o-mini", "the answer's model: {rows:?}");
    robit.stop();
    let report = robit_once(&db, &["usage", "--by", "model"]);
    let line = report
        .lines()
        .find(|l| l.contains("/gpt-4o-mini") && l.contains('%'))
        .unwrap_or_else(|| panic!("no feedback line: {report}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1..], ["1", "0", "100%"], "{report}");
    db.drop().await;
}

/// Polls an async condition every 20 ms for up to a minute.
async fn eventually_async<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < robit_system_tests::WAIT {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_stop_mid_stream_and_someone_elses_stop() {
    stop_mid_stream(Platform::slack().await, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_stop_over_socket_mode() {
    let socket = [(
        "ROBIT_SLACK__APP_TOKEN".to_string(),
        robit_emulators::slack::APP_TOKEN.to_string(),
    )];
    stop_mid_stream(Platform::slack().await, &socket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_stop_mid_stream_and_someone_elses_stop() {
    stop_mid_stream(Platform::discord().await, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_feedback_is_stored_and_counted() {
    feedback(Platform::slack().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_feedback_is_stored_and_counted() {
    feedback(Platform::discord().await).await;
}

/// Regenerate on a finished answer: the same message is rewritten with the new answer (and
/// keeps its buttons); the store keeps the old answer marked superseded and the new one.
async fn regenerate(platform: Platform) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("The first answer."));
    llm.push(Reply::text("The second answer."));
    let robit = start(&db, &platform, &llm).await;
    let asked = platform.ask("a question worth asking twice");
    let answer = with_button(&platform, &asked, "robit:regenerate:").await;
    assert!(answer.text.contains("The first answer."), "{answer:?}");
    let regenerate = id_of(&answer, "robit:regenerate:").to_string();
    let clicked = platform.click(&asked, &answer.id, &regenerate, &platform.asker());
    let rewritten = eventually(|| {
        platform
            .bot_messages(&asked)
            .last()
            .is_some_and(|m| m.text.contains("The second answer.") && !m.buttons.is_empty())
    })
    .await;
    let messages = platform.bot_messages(&asked);
    assert!(rewritten, "not regenerated: {messages:?} {}", robit.log());
    assert!(platform.click_acknowledged(&clicked));
    assert_eq!(messages.len(), 1, "rewritten in place: {messages:?}");
    assert_eq!(messages[0].id, answer.id);
    assert!(!messages[0].text.contains("first"), "{messages:?}");
    let stored = async {
        for _ in 0..500 {
            let rows = db
                .rows("SELECT content, status FROM messages WHERE role = 'assistant' ORDER BY id")
                .await;
            if rows.len() == 2 {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Vec::new()
    }
    .await;
    assert_eq!(
        stored,
        vec![
            vec!["The first answer.".to_string(), "superseded".to_string()],
            vec!["The second answer.".to_string(), "complete".to_string()],
        ]
    );
    robit.stop();
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_regenerate_rewrites_the_answer_in_place() {
    regenerate(Platform::slack().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_regenerate_rewrites_the_answer_in_place() {
    regenerate(Platform::discord().await).await;
}
