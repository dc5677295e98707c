//! What an answer's buttons and edits store, on both backends: a stop recorded on the journal
//! row (seen by a claim and by the holder), votes with the answer's model, a regeneration that
//! supersedes the old answer and takes over its messages in the same transaction, a question
//! found by its platform id, and an edit's new text stored with the event that carries it.

use crate::support::{event, key, starting_now};
use robit_store::{
    Accepted, MessageStatus, NewEvent, NewMessage, NewTurn, QuestionEdit, Served, Store,
    TurnStatus, Vote,
};
use robit_types::{ChannelId, EventId, Platform, UserId, WorkspaceId};
use std::sync::Arc;
use std::time::Duration;

fn turn(holder: &str, answers: Option<i64>) -> NewTurn {
    NewTurn {
        job: "{}".into(),
        route: Some("route".into()),
        holder: holder.into(),
        lease: Duration::from_secs(60),
        answers,
    }
}

/// A question with its journaled turn: `(conversation, question id, turn id)`.
async fn ask(store: &Arc<dyn Store>, id: &str) -> (robit_store::ConversationId, i64, i64) {
    let Accepted::New {
        conversation,
        message_id: Some(question),
        turn_id: Some(turn_id),
    } = store
        .accept(NewEvent {
            turn: Some(turn("a", None)),
            ..event(id, &key(Some("1.1")), "what is it?")
        })
        .await
        .unwrap()
    else {
        panic!("a new question with its turn");
    };
    (conversation.id, question, turn_id)
}

async fn answer(
    store: &Arc<dyn Store>,
    conversation: robit_store::ConversationId,
    q: i64,
    text: &str,
) {
    store
        .append_message(
            conversation,
            NewMessage {
                turn: Some(q),
                served: Some(Served {
                    provider: "openai".into(),
                    model: "gpt-x".into(),
                }),
                ..NewMessage::assistant(text, MessageStatus::Complete)
            },
        )
        .await
        .unwrap();
}

conformance!(a_stop_is_on_the_journal_row_for_the_holder_and_for_a_claim);
async fn a_stop_is_on_the_journal_row_for_the_holder_and_for_a_claim(store: Arc<dyn Store>) {
    let (_, q, turn_id) = ask(&store, "Ev1").await;
    assert!(store.stopped_turns("a").await.unwrap().is_empty());
    assert!(store.request_stop(q, "alice").await.unwrap());
    assert_eq!(
        store.stopped_turns("a").await.unwrap(),
        [(q, "alice".to_string())]
    );
    let claimed = store
        .claim_turns(
            "b",
            Duration::from_secs(60),
            Platform::Slack,
            10,
            starting_now(),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].stopped_by.as_deref(), Some("alice"));
    assert!(store
        .set_turn_status(turn_id, "b", TurnStatus::Cancelled)
        .await
        .unwrap());
    // A closed turn has nothing left to stop.
    assert!(!store.request_stop(q, "alice").await.unwrap());
}

conformance!(votes_carry_the_answers_model_and_a_second_vote_replaces_the_first);
async fn votes_carry_the_answers_model_and_a_second_vote_replaces_the_first(store: Arc<dyn Store>) {
    let (conversation, q, _) = ask(&store, "Ev1").await;
    let alice = UserId::new("U1");
    assert!(!store.record_feedback(q, &alice, Vote::Up).await.unwrap());
    answer(&store, conversation, q, "It is this.").await;
    let question = store.question(q).await.unwrap().unwrap();
    assert_eq!(question.author, Some(alice.clone()));
    assert_eq!(question.text, "what is it?");
    assert_eq!(question.key, key(Some("1.1")));
    assert!(store.record_feedback(q, &alice, Vote::Down).await.unwrap());
    assert!(store.record_feedback(q, &alice, Vote::Up).await.unwrap());
    assert!(store
        .record_feedback(q, &UserId::new("U2"), Vote::Down)
        .await
        .unwrap());
    let rows = store.feedback_summary(0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].provider.as_str(), rows[0].model.as_str()),
        ("openai", "gpt-x")
    );
    assert_eq!((rows[0].up, rows[0].down), (1, 1));
    assert_eq!(rows[0].up_rate(), Some(0.5));
    assert!(store.question(q + 100).await.unwrap().is_none());
}

conformance!(a_regeneration_supersedes_the_answer_and_takes_over_its_messages);
async fn a_regeneration_supersedes_the_answer_and_takes_over_its_messages(store: Arc<dyn Store>) {
    let (conversation, q, first) = ask(&store, "Ev1").await;
    answer(&store, conversation, q, "Old answer.").await;
    store.turn_posted(first, 0, "m1").await.unwrap();
    store.turn_posted(first, 1, "m2").await.unwrap();
    let regen = NewEvent {
        platform: Platform::Slack,
        event_id: EventId::new("action:1"),
        key: key(Some("1.1")),
        message: None,
        turn: Some(turn("a", Some(q))),
        edit: None,
    };
    let Accepted::New {
        turn_id: Some(second),
        message_id: None,
        ..
    } = store.accept(regen.clone()).await.unwrap()
    else {
        panic!("a new turn without a message");
    };
    assert_eq!(store.accept(regen).await.unwrap(), Accepted::Duplicate);
    assert_eq!(store.posts(second).await.unwrap(), ["m1", "m2"]);
    // The question now names the regeneration as its answer's turn.
    let current = store.question(q).await.unwrap().unwrap().answer.unwrap();
    assert_eq!((current.id, current.status), (second, TurnStatus::Pending));
    assert_eq!(current.route.as_deref(), Some("route"));
    let history = store.history(conversation, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["what is it?"], "the old answer is out of history");
    // The new turn answers the same question: a stop names it by the question.
    assert!(store.request_stop(q, "alice").await.unwrap());
    answer(&store, conversation, q, "New answer.").await;
    let history = store.history(conversation, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["what is it?", "New answer."]);
}

/// A question with its platform id `ts` and its journaled turn: `(question id, turn id)`.
async fn ask_with_ref(store: &Arc<dyn Store>, id: &str, thread: &str, ts: &str) -> (i64, i64) {
    let mut event = event(id, &key(Some(thread)), &format!("question {ts}"));
    event.message.as_mut().unwrap().platform_ref = Some(ts.to_string());
    event.turn = Some(turn("a", None));
    let Accepted::New {
        message_id: Some(question),
        turn_id: Some(turn_id),
        ..
    } = store.accept(event).await.unwrap()
    else {
        panic!("a new question with its turn");
    };
    (question, turn_id)
}

async fn by_ref(
    store: &Arc<dyn Store>,
    channel: &str,
    ts: &str,
) -> Option<robit_store::AskedQuestion> {
    store
        .question_by_ref(
            Platform::Slack,
            &WorkspaceId::new("T1"),
            &ChannelId::new(channel),
            ts,
        )
        .await
        .unwrap()
}

conformance!(a_question_is_found_by_its_platform_id_in_its_channel_with_its_turn);
async fn a_question_is_found_by_its_platform_id_in_its_channel_with_its_turn(
    store: Arc<dyn Store>,
) {
    let (q, turn_id) = ask_with_ref(&store, "Ev1", "1.1", "1.1").await;
    // An edit says the channel, not the thread.
    let found = by_ref(&store, "C1", "1.1").await.expect("found by its ts");
    assert_eq!(found.id, q);
    assert_eq!(found.question.key, key(Some("1.1")));
    assert_eq!(found.question.text, "question 1.1");
    assert_eq!(found.question.author, Some(UserId::new("U1")));
    assert!(found.latest);
    assert!(found.asked_at_ms > 0);
    let answer = found.question.answer.expect("its turn");
    assert_eq!(answer.id, turn_id);
    assert_eq!(answer.status, TurnStatus::Pending);
    assert_eq!(answer.route.as_deref(), Some("route"));
    // A ts is unique only within its channel; a message stored without one is not found.
    assert!(by_ref(&store, "C2", "1.1").await.is_none());
    assert!(by_ref(&store, "C1", "9.9").await.is_none());
    store
        .accept(event("Ev-old", &key(Some("1.1")), "stored before edits"))
        .await
        .unwrap();
    // A later question in the same thread: the first is no longer the latest. The latest
    // turn answering a question is the one reported (a regeneration's).
    let (later, _) = ask_with_ref(&store, "Ev2", "1.1", "2.2").await;
    assert!(!by_ref(&store, "C1", "1.1").await.unwrap().latest);
    assert!(by_ref(&store, "C1", "2.2").await.unwrap().latest);
    assert!(store
        .set_turn_status(turn_id, "a", TurnStatus::Done)
        .await
        .unwrap());
    let Accepted::New {
        turn_id: Some(regen),
        ..
    } = store
        .accept(NewEvent {
            platform: Platform::Slack,
            event_id: EventId::new("action:2"),
            key: key(Some("1.1")),
            message: None,
            turn: Some(turn("a", Some(later))),
            edit: None,
        })
        .await
        .unwrap()
    else {
        panic!("a regeneration");
    };
    let answer = by_ref(&store, "C1", "2.2")
        .await
        .unwrap()
        .question
        .answer
        .unwrap();
    assert_eq!((answer.id, answer.status), (regen, TurnStatus::Pending));
    assert_eq!(
        by_ref(&store, "C1", "1.1")
            .await
            .unwrap()
            .question
            .answer
            .unwrap()
            .status,
        TurnStatus::Done
    );
}

conformance!(an_edit_is_stored_with_its_event_once);
async fn an_edit_is_stored_with_its_event_once(store: Arc<dyn Store>) {
    let (q, first) = ask_with_ref(&store, "Ev1", "1.1", "1.1").await;
    let conversation = store.conversation(&key(Some("1.1"))).await.unwrap().id;
    answer(&store, conversation, q, "Old answer.").await;
    store.turn_posted(first, 0, "m1").await.unwrap();
    // An edit answered again: the text, the superseded answer and the new turn together.
    let regen = NewEvent {
        platform: Platform::Slack,
        event_id: EventId::new("EvEdit1"),
        key: key(Some("1.1")),
        message: None,
        turn: Some(turn("a", Some(q))),
        edit: Some(QuestionEdit {
            question: q,
            text: "question, edited".into(),
        }),
    };
    let Accepted::New {
        turn_id: Some(second),
        ..
    } = store.accept(regen.clone()).await.unwrap()
    else {
        panic!("a new turn");
    };
    assert_eq!(store.posts(second).await.unwrap(), ["m1"]);
    let texts = |h: Vec<robit_store::StoredMessage>| -> Vec<String> {
        h.into_iter().map(|m| m.content).collect()
    };
    assert_eq!(
        texts(store.history(conversation, 10).await.unwrap()),
        ["question, edited"]
    );
    assert_eq!(
        store.question(q).await.unwrap().unwrap().text,
        "question, edited"
    );
    // Delivered again: a duplicate, nothing written.
    let again = NewEvent {
        edit: Some(QuestionEdit {
            question: q,
            text: "not this".into(),
        }),
        ..regen
    };
    assert_eq!(store.accept(again).await.unwrap(), Accepted::Duplicate);
    // An edit with no turn of its own (one already waits to answer): only the text.
    let rewrite = NewEvent {
        platform: Platform::Slack,
        event_id: EventId::new("EvEdit2"),
        key: key(Some("1.1")),
        message: None,
        turn: None,
        edit: Some(QuestionEdit {
            question: q,
            text: "question, edited twice".into(),
        }),
    };
    let Accepted::New {
        message_id: None,
        turn_id: None,
        ..
    } = store.accept(rewrite).await.unwrap()
    else {
        panic!("accepted without a message or a turn");
    };
    assert_eq!(
        texts(store.history(conversation, 10).await.unwrap()),
        ["question, edited twice"]
    );
    assert_eq!(store.turns(conversation).await.unwrap().len(), 2);
}
