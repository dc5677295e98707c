//! A throughput benchmark of the ingestion path (`robit bench store`): how many inbound
//! messages per second a store can persist through [`Store::accept`].
//!
//! It writes real rows into whatever store it is given, in conversations of its own named
//! after the run, so it must not be pointed at a database whose data matters to you.

use crate::model::{Accepted, NewEvent, NewMessage};
use crate::{rows, Result, Store};
use robit_types::{ConversationKey, EventId, Platform, UserId};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;

/// A chat message of typical length, so rows have a realistic size.
const TEXT: &str = "Could you write a Python function that parses an ISO 8601 date, \
                    handles time zones, and explain when it would raise an error?";

/// Persists `messages` inbound messages (each one event, deduplicated, with its user message)
/// from `concurrency` concurrent tasks, each task in its own conversation as concurrent users
/// are, and returns the messages persisted per second of wall time.
pub async fn bench_persist(
    store: Arc<dyn Store>,
    messages: usize,
    concurrency: usize,
) -> Result<f64> {
    let concurrency = concurrency.max(1);
    // Unique per run, so repeated runs against one database never collide on event ids.
    let run = format!("{}-{}", rows::now_ms(), std::process::id());
    let started = Instant::now();
    let mut tasks: JoinSet<Result<usize>> = JoinSet::new();
    for task in 0..concurrency {
        let share = messages / concurrency + usize::from(task < messages % concurrency);
        let store = Arc::clone(&store);
        let key = ConversationKey::new(
            Platform::Console,
            "bench",
            format!("run-{run}"),
            Some(format!("task-{task}")),
        );
        let run = run.clone();
        tasks.spawn(async move {
            let mut persisted = 0usize;
            for i in 0..share {
                let event = NewEvent {
                    platform: Platform::Console,
                    event_id: EventId::new(format!("bench-{run}-{task}-{i}")),
                    key: key.clone(),
                    message: Some(NewMessage::user(UserId::new("bench"), TEXT)),
                    turn: None,
                    edit: None,
                };
                if let Accepted::New { .. } = store.accept(event).await? {
                    persisted += 1;
                }
            }
            Ok(persisted)
        });
    }
    let mut persisted = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => persisted += result?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    Ok(persisted as f64 / started.elapsed().as_secs_f64())
}
