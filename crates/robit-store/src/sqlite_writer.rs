//! Group commit for SQLite's hot write: one connection that owns `accept`, batching the
//! events that arrive while it is busy into one transaction.
//!
//! Why: SQLite has one writer at a time. With every request handler opening its own
//! `BEGIN IMMEDIATE`, concurrent intakes queue in SQLite's busy handler, which sleeps in
//! growing steps (up to 100 ms) rather than waking when the lock frees; that, not the writes,
//! set the ingest p99. A single writer never waits for the lock against itself, and a batch
//! pays one commit for many events. One event's error (a row too large, say) fails that event
//! alone: the batch is then run again with a savepoint per event. A failed commit fails the
//! batch, and every caller in it gets the error (nothing of theirs was persisted).
//!
//! It must not change what `accept` means: an event's caller hears back only after the
//! transaction holding its rows has committed. The SQL of `accept` is not here: `sqlite.rs`
//! has it from `sql_store!` and hands it to [`Writer::start`], so this module stays below the
//! store it serves.

use crate::model::{Accepted, NewEvent};
use crate::{Result, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

/// `accept` inside a transaction the writer owns: the store's `accept_in`, boxed so it can be
/// passed as a plain function.
pub(crate) type AcceptIn =
    for<'c> fn(
        &'c mut SqliteConnection,
        &'c NewEvent,
    ) -> Pin<Box<dyn Future<Output = Result<Accepted>> + Send + 'c>>;

/// Most events in one transaction: bounds how long the first event of a batch waits for the
/// last one's statements.
const MAX_BATCH: usize = 256;

/// Requests the writer queues; a bounded queue pushes back on intakes when the disk is slow.
const QUEUE: usize = 4096;

enum Job {
    Accept(Box<NewEvent>, oneshot::Sender<Result<Accepted>>),
    Close(oneshot::Sender<()>),
}

/// The handle the store keeps; clones share the one writer.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's own connection and starts its task on the current runtime; it runs
    /// `accept_in` for each event.
    pub async fn start(options: &SqliteConnectOptions, accept_in: AcceptIn) -> Result<Writer> {
        let conn = options.connect().await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn, rx, accept_in));
        Ok(Writer { tx })
    }

    pub async fn accept(&self, event: NewEvent) -> Result<Accepted> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Accept(Box::new(event), reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Finishes queued work and closes the connection.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, accept_in: AcceptIn) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = rx.recv().await {
        let mut close = None;
        match job {
            Job::Accept(event, reply) => batch.push((event, reply)),
            Job::Close(done) => close = Some(done),
        }
        while close.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Accept(event, reply)) => batch.push((event, reply)),
                Ok(Job::Close(done)) => close = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&mut conn, &mut batch, accept_in).await;
        }
        if let Some(done) = close {
            let _ = conn.close().await;
            let _ = done.send(());
            return;
        }
    }
}

/// Runs the batch in one transaction and answers every caller in it.
///
/// First optimistically, every event straight in the transaction (a savepoint per event
/// costs two more statements each); if any event fails, that attempt is rolled back and the
/// batch runs again with a savepoint per event, so only the failing event fails.
async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &mut Vec<(Box<NewEvent>, oneshot::Sender<Result<Accepted>>)>,
    accept_in: AcceptIn,
) {
    let outcome = match run_batch(conn, batch, false, accept_in).await {
        Ok(Some(results)) => Ok(results),
        Ok(None) => run_batch(conn, batch, true, accept_in)
            .await
            .map(|r| r.expect("with savepoints every event has its own result")),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(results) => {
            for ((_, reply), result) in batch.drain(..).zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, events = batch.len(), "sqlite batch commit failed");
            let why = e.to_string();
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Batch(why.clone())));
            }
        }
    }
}

/// One attempt at the batch. Without savepoints, the first failing event rolls the attempt
/// back and returns `None`; with them, each event's failure is its own result.
async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &[(Box<NewEvent>, oneshot::Sender<Result<Accepted>>)],
    savepoints: bool,
    accept_in: AcceptIn,
) -> Result<Option<Vec<Result<Accepted>>>> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    for (event, _) in batch {
        if !savepoints {
            match accept_in(&mut tx, event).await {
                Ok(accepted) => results.push(Ok(accepted)),
                Err(_) => {
                    tx.rollback().await?;
                    return Ok(None);
                }
            }
            continue;
        }
        let mut savepoint = tx.begin().await?;
        match accept_in(&mut savepoint, event).await {
            Ok(accepted) => {
                savepoint.commit().await?;
                results.push(Ok(accepted));
            }
            Err(e) => {
                savepoint.rollback().await?;
                results.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(Some(results))
}
