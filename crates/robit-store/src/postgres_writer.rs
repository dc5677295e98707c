//! Group commit for PostgreSQL's hot write: the `accept`s that arrive together are taken in
//! as one transaction of a few multi-row statements instead of one transaction each.
//!
//! Why: every event paid its own transaction: begin, dedup row, conversation, message, turn,
//! commit, each a round trip and a wake-up of its backend on the same cores as robit, and a
//! WAL flush at the commit. PostgreSQL already merges the flushes of concurrent commits; what
//! grew with load was the statements. A batch here is one statement, its own transaction,
//! whatever its size: the columns of all its events go in as arrays (`UNNEST`) and
//! data-modifying CTEs write each table once (see [`ACCEPT_BATCH`]).
//!
//! Like SQLite's writer (`sqlite_writer.rs`), requests that arrive while earlier batches are
//! in flight form the next batch (up to [`MAX_BATCH`]). Batches run [`IN_FLIGHT`] at a time,
//! on connections the writer takes out of the pool and keeps (see [`Conn`]); the rows a batch
//! inserts into unique keys (event ids, conversation keys) go in sorted order, so two
//! batches, here or on another replica, cannot deadlock on them.
//!
//! What `accept` means does not change: a caller hears back only after the transaction
//! holding its rows committed; a duplicate event id answers `Duplicate` (also when the same id
//! comes twice in one batch: the first one is the event, the second its duplicate). One
//! event's error (text PostgreSQL cannot store, say) fails that event alone: the batch is
//! then run again one event at a time with a savepoint each, through the same `accept_in`
//! both backends share (handed in by `postgres.rs`, so this module stays below the store). A
//! failed commit fails the batch, and every caller in it gets the error.

use crate::model::{Accepted, NewEvent};
use crate::{rows, Result, StoreError};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Connection;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// `accept` inside a transaction the writer owns: the store's `accept_in`, boxed so it can be
/// passed as a plain function. Used when a batch has to be taken apart.
pub(crate) type AcceptIn =
    for<'c> fn(
        &'c mut PgConnection,
        &'c NewEvent,
    ) -> Pin<Box<dyn Future<Output = Result<Accepted>> + Send + 'c>>;

/// PostgreSQL's clock in unix milliseconds, as a string literal for the SQL macros' `concat!`.
/// `clock_timestamp()`, not `now()`: `now()` is the transaction's start, and a statement that
/// waited for a lock would judge leases (and refill buckets) by a stale clock.
macro_rules! postgres_now {
    () => {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    };
}
pub(crate) use postgres_now;

/// Most events in one transaction: bounds the statements' array sizes and how long the first
/// event of a batch waits for the last one's rows.
const MAX_BATCH: usize = 256;

/// Batches committing at once, at most. A second batch starts while one is in flight only
/// once [`OVERLAP_FROM`] events wait for it: a batch is a single statement, so with few
/// callers a second one in flight only splits them into smaller batches that compete for the
/// same cores (`robit bench store`, 16 writers, when each batch still paid a pooled
/// connection's ping: always 1 in flight 13.5-14.6k msgs/s with batches of 14.6, always 2
/// 11.7-12.4k with 7.2). A third in flight gained nothing (measured with the writer's own
/// connections: 16.4-16.9k at 16 writers against 2's 20.0-22.9k).
const IN_FLIGHT: usize = 2;

/// Waiting events that make a second batch worth its statement (see [`IN_FLIGHT`]). A
/// statement has a fixed cost (0.14 ms of the server's time for one event, 0.66-0.81 ms for
/// 16, `EXPLAIN ANALYZE`), so a batch much smaller than this wastes it. Measured on the
/// writer's own connections (`robit bench store --iterations 60000`, four alternations, 2 in
/// flight): 16 writers 20.0-22.9k msgs/s from 8, 15.0-18.4k from 4, 15.3-17.6k from 64 (the
/// second batch never started); 256 writers 45-55k from any of 8, 16, 32 and 64.
const OVERLAP_FROM: usize = 8;

/// Requests the writer queues; a bounded queue pushes back on intakes when the database is
/// slow.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Accepted>>;

/// A connection used this recently is trusted without a ping; one idle longer (perhaps cut by
/// a restart or a proxy since) is pinged first. The pool's connections follow the same rule
/// (`postgres.rs`), as HikariCP trusts a connection used within its 500 ms "alive bypass
/// window".
pub(crate) const ALIVE_BYPASS: Duration = Duration::from_millis(500);

/// One of the writer's own connections, detached from the pool (which may open a
/// replacement, so the pool's size does not count these).
///
/// Why not the pool: sqlx pings a pooled connection whenever it is returned, from a task it
/// spawns for that, so each batch cost a second round trip, a second wake-up of its backend
/// and two task hops on the cores the batch itself needs. A connection the writer keeps is
/// pinged only when it idled past [`ALIVE_BYPASS`], and is dropped (then replaced from the
/// pool) after any error that is not the database refusing a statement.
struct Conn {
    conn: PgConnection,
    used: Instant,
}

impl Conn {
    /// `kept` if it is still good to use, else a fresh one from the pool.
    async fn ready(pool: &PgPool, kept: Option<Conn>) -> Result<Conn> {
        if let Some(mut kept) = kept {
            if kept.used.elapsed() < ALIVE_BYPASS || kept.conn.ping().await.is_ok() {
                return Ok(kept);
            }
        }
        Ok(Conn {
            conn: pool.acquire().await?.detach(),
            used: Instant::now(),
        })
    }
}

enum Job {
    Accept(Box<NewEvent>, Reply),
    Close(oneshot::Sender<()>),
}

/// The handle the store keeps; clones share the one writer.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer's task on the current runtime; its batches run on connections it
    /// takes out of `pool` (at most [`IN_FLIGHT`], on top of the pool's own).
    pub fn start(pool: PgPool, accept_in: AcceptIn) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx, accept_in));
        Writer { tx }
    }

    pub async fn accept(&self, event: NewEvent) -> Result<Accepted> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Accept(Box::new(event), reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Finishes queued work (every batch in flight commits or fails) and stops the writer.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Job>, accept_in: AcceptIn) {
    let mut in_flight: JoinSet<Option<Conn>> = JoinSet::new();
    let mut idle: Vec<Conn> = Vec::with_capacity(IN_FLIGHT);
    let mut batch: Vec<(Box<NewEvent>, Reply)> = Vec::new();
    let mut close = None;
    let mut open = true;
    loop {
        let start = !batch.is_empty()
            && (in_flight.is_empty()
                || (in_flight.len() < IN_FLIGHT && batch.len() >= OVERLAP_FROM));
        if start {
            if in_flight.is_empty() {
                // The callers the last batch just answered were woken by its replies, and a
                // caller that has its next event at hand (a busy intake) sends it on its first
                // poll. Without one turn of the scheduler first, this batch would hold only
                // what queued during the last commit, and those callers would wait out a
                // whole commit more: batches then alternate between a part of the callers and
                // the rest. A yield with nothing else ready returns at once.
                tokio::task::yield_now().await;
            }
            while open && close.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => take(job, &mut batch, &mut close),
                    Err(_) => break,
                }
            }
            let taken = std::mem::take(&mut batch);
            let pool = pool.clone();
            let kept = idle.pop();
            in_flight.spawn(async move { commit_batch(&pool, kept, taken, accept_in).await });
            continue;
        }
        if close.is_some() || !open {
            if batch.is_empty() && in_flight.is_empty() {
                for kept in idle {
                    let _ = kept.conn.close().await;
                }
                if let Some(done) = close {
                    let _ = done.send(());
                }
                return;
            }
            // Finish what is in flight; whatever is left starts when it is done.
            if let Some(joined) = in_flight.join_next().await {
                idle.extend(report(joined));
            }
            continue;
        }
        tokio::select! {
            job = rx.recv(), if batch.len() < MAX_BATCH => match job {
                Some(job) => take(job, &mut batch, &mut close),
                None => open = false,
            },
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                idle.extend(report(joined));
            }
        }
    }
}

/// The connection a finished batch hands back, if it is still good. A batch's task that
/// panicked dropped its callers' replies (they hear `Closed`) and its connection; the writer
/// goes on with the next batch.
fn report(joined: std::result::Result<Option<Conn>, tokio::task::JoinError>) -> Option<Conn> {
    joined
        .inspect_err(|e| tracing::error!(error = %e, "postgres batch task failed"))
        .ok()
        .flatten()
}

fn take(
    job: Job,
    batch: &mut Vec<(Box<NewEvent>, Reply)>,
    close: &mut Option<oneshot::Sender<()>>,
) {
    match job {
        Job::Accept(event, reply) => batch.push((event, reply)),
        Job::Close(done) => *close = Some(done),
    }
}

/// Runs the batch in one transaction and answers every caller in it: first with multi-row
/// statements; if any event fails, that attempt is rolled back and the batch runs again one
/// event at a time with a savepoint each, so only the failing event fails. Hands back the
/// connection unless an error other than a refused statement may have left it broken.
async fn commit_batch(
    pool: &PgPool,
    kept: Option<Conn>,
    batch: Vec<(Box<NewEvent>, Reply)>,
    accept_in: AcceptIn,
) -> Option<Conn> {
    let (events, replies): (Vec<Box<NewEvent>>, Vec<Reply>) = batch.into_iter().unzip();
    let mut conn = match Conn::ready(pool, kept).await {
        Ok(conn) => conn,
        Err(e) => {
            fail(replies, &e, events.len());
            return None;
        }
    };
    // A Regenerate's turn also takes the earlier answer over, and an edit rewrites its
    // question (`accept_in` does both, in the same transaction); the batched statement does
    // neither, so a batch holding one (a click or an edit, rare) runs one event at a time.
    let regenerates = events
        .iter()
        .any(|e| e.edit.is_some() || e.turn.as_ref().is_some_and(|t| t.answers.is_some()));
    let outcome = if regenerates {
        one_by_one(&mut conn.conn, &events, accept_in).await
    } else {
        match together(&mut conn.conn, &events).await {
            Ok(Some(results)) => Ok(results),
            Ok(None) => one_by_one(&mut conn.conn, &events, accept_in).await,
            Err(e) => Err(e),
        }
    };
    conn.used = Instant::now();
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            Some(conn)
        }
        Err(e) => {
            let refused = matches!(e, StoreError::Database(sqlx::Error::Database(_)));
            fail(replies, &e, events.len());
            refused.then_some(conn)
        }
    }
}

/// Every caller of a batch that failed as a whole hears why.
fn fail(replies: Vec<Reply>, e: &StoreError, events: usize) {
    tracing::warn!(error = %e, events, "postgres batch commit failed");
    let why = e.to_string();
    for reply in replies {
        let _ = reply.send(Err(StoreError::Batch(why.clone())));
    }
}

/// The batch as one event each, each in a savepoint of one transaction. An event whose id
/// came earlier in the batch gets its first occurrence's fate: `Duplicate` if that was
/// stored, the same error if not.
async fn one_by_one(
    conn: &mut PgConnection,
    events: &[Box<NewEvent>],
    accept_in: AcceptIn,
) -> Result<Vec<Result<Accepted>>> {
    let mut tx = conn.begin().await?;
    let firsts = first_occurrences(events);
    let mut results: Vec<Result<Accepted>> = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if firsts[i] != i {
            let result = match &results[firsts[i]] {
                Ok(_) => Ok(Accepted::Duplicate),
                Err(e) => Err(StoreError::Batch(e.to_string())),
            };
            results.push(result);
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
    Ok(results)
}

/// For each event, the index of the first event in the batch with its (platform, id).
fn first_occurrences(events: &[Box<NewEvent>]) -> Vec<usize> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(events.len());
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            *seen
                .entry((e.platform.as_str(), e.event_id.as_str()))
                .or_insert(i)
        })
        .collect()
}

/// The whole batch as one statement, which is its own transaction. `None`: the database
/// refused the statement (one event's text it cannot store, say), so nothing of the batch was
/// written: take it apart. Any other error (the connection broke, perhaps after the commit)
/// fails the batch rather than running it again.
async fn together(
    conn: &mut PgConnection,
    events: &[Box<NewEvent>],
) -> Result<Option<Vec<Result<Accepted>>>> {
    match statement(conn, events).await {
        Ok(results) => Ok(Some(results)),
        Err(StoreError::Database(sqlx::Error::Database(e))) => {
            if events.len() > 1 {
                tracing::debug!(error = %e, events = events.len(), "batched accept failed; taking the batch apart");
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `accept` for every event of the batch as one statement: the events' columns go in as
/// arrays (`UNNEST`), and data-modifying CTEs write each table once. One round trip and one
/// commit, whatever the batch's size.
///
/// The planner sees arrays of unknown length, estimates a handful of rows and so joins one
/// CTE to another by nested loops: such a join costs the batch's size squared (at 256 events
/// with turns, 13 of the statement's 29 ms, measured with `EXPLAIN ANALYZE`). So CTEs meet
/// only through a hash join (`taken`), an index (`keyed`), or arrays: each event carries
/// `k`, its conversation key's rank in the batch, and reads its conversation's id at `k` of
/// `conv`'s arrays.
///
/// - `fresh`: the dedup rows; an event whose id is already there is a duplicate. Inserted in
///   key order (as are conversations), so two batches cannot deadlock on the unique keys.
/// - `keyed`: each key of the fresh events with its conversation, found, or else given an id
///   here and created (`created`). A key another transaction created after this statement's
///   snapshot is neither (its insert waits for that transaction and then does nothing): its
///   events have no conversation. With a message or a turn, the statement then fails on
///   their NOT NULL and the batch is taken apart, where `accept_in`'s second look finds it;
///   without either, only the answer lacks the id, and [`statement`] looks the conversation
///   up after the commit.
/// - `rows`: each fresh event with its conversation and the ids of its message and turn (if
///   it has them), taken from the identities' sequences in batch order, so the turn row can
///   point at the message and the caller learns both without matching rows up afterwards.
/// - `seq`: those sequences, looked up once: `pg_get_serial_sequence` parses its arguments
///   and reads the catalog on every call, and called per row it was 7 % of the statement's
///   time (perf on the backend, 256 events a batch).
const ACCEPT_BATCH: &str = concat!(
    "
WITH input AS MATERIALIZED (
    SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::text[], $12::text[], $13::bigint[], $14::text[], $15::text[],
                         $16::text[], $17::bigint[], $19::text[])
        AS u(ord, platform, event_id, workspace, channel, thread,
             role, content, tool_calls, tool_call_id, status, author, message_turn,
             job, route, holder, lease_ms, platform_ref)),
fresh AS (
    INSERT INTO processed_events (platform, event_id, received_at)
    SELECT platform, event_id, $18 FROM input ORDER BY platform, event_id
    ON CONFLICT (platform, event_id) DO NOTHING
    RETURNING platform, event_id),
seq AS MATERIALIZED (
    SELECT pg_get_serial_sequence('conversations', 'id')::regclass AS conversation_seq,
           pg_get_serial_sequence('messages', 'id')::regclass AS message_seq,
           pg_get_serial_sequence('turns', 'id')::regclass AS turn_seq),
taken AS MATERIALIZED (
    SELECT i.*, dense_rank() OVER (ORDER BY platform, workspace, channel, thread) AS k
    FROM input i JOIN fresh USING (platform, event_id)),
keyed AS MATERIALIZED (
    SELECT keys.*, c.id IS NOT NULL AS found, c.model,
           COALESCE(c.id, nextval(seq.conversation_seq)) AS id
    FROM (SELECT DISTINCT k, platform, workspace, channel, thread FROM taken) keys
    CROSS JOIN seq
    LEFT JOIN conversations c USING (platform, workspace, channel, thread)),
created AS (
    INSERT INTO conversations (id, platform, workspace, channel, thread, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT id, platform, workspace, channel, thread, $18 FROM keyed WHERE NOT found
    ORDER BY platform, workspace, channel, thread
    ON CONFLICT (platform, workspace, channel, thread) DO NOTHING
    RETURNING id),
conv AS MATERIALIZED (
    SELECT array_agg(CASE WHEN found OR id = ANY ((SELECT array_agg(id) FROM created)::bigint[])
                          THEN id END ORDER BY k) AS ids,
           array_agg(model ORDER BY k) AS models
    FROM keyed),
rows AS MATERIALIZED (
    SELECT t.*, conv.ids[t.k] AS conversation_id, conv.models[t.k] AS model,
           CASE WHEN t.role IS NOT NULL
                THEN nextval(seq.message_seq) END AS message_id,
           CASE WHEN t.job IS NOT NULL
                THEN nextval(seq.turn_seq) END AS turn_id
    FROM taken t, conv, seq
    ORDER BY t.ord),
stored AS (
    INSERT INTO messages (id, conversation_id, role, content, tool_calls, tool_call_id,
                          status, author, created_at, turn_id, platform_ref)
    OVERRIDING SYSTEM VALUE
    SELECT message_id, conversation_id, role, content, tool_calls, tool_call_id, status,
           author, $18, message_turn, platform_ref
    FROM rows WHERE role IS NOT NULL ORDER BY ord),
journaled AS (
    INSERT INTO turns (id, conversation_id, platform, event_id, message_id, job, route,
                       status, holder, lease_until, attempts, created_at, updated_at)
    OVERRIDING SYSTEM VALUE
    SELECT turn_id, conversation_id, platform, event_id, message_id, job, route, 'pending',
           holder, clock.now_ms + lease_ms, 0, clock.now_ms, clock.now_ms
    FROM rows,
         (SELECT ",
    postgres_now!(),
    ") AS clock(now_ms)
    WHERE job IS NOT NULL ORDER BY ord)
SELECT ord, conversation_id, model, message_id, turn_id FROM rows"
);

/// One answer row of [`ACCEPT_BATCH`]: the event's place in the batch, its conversation's id
/// and model, its message's and turn's ids.
type AnswerRow = (i64, Option<i64>, Option<String>, Option<i64>, Option<i64>);

async fn statement(
    conn: &mut PgConnection,
    events: &[Box<NewEvent>],
) -> Result<Vec<Result<Accepted>>> {
    let firsts = first_occurrences(events);
    // Only each id's first occurrence goes in; the others are its duplicates.
    let sent: Vec<usize> = (0..events.len()).filter(|&i| firsts[i] == i).collect();
    let column = |f: fn(&NewEvent) -> Option<&str>| -> Vec<Option<&str>> {
        sent.iter().map(|&i| f(&events[i])).collect()
    };
    let answers: Vec<AnswerRow> = sqlx::query_as(ACCEPT_BATCH)
        .bind(sent.iter().map(|&i| i as i64).collect::<Vec<_>>())
        .bind(column(|e| Some(e.platform.as_str())))
        .bind(column(|e| Some(e.event_id.as_str())))
        .bind(column(|e| Some(e.key.workspace.as_str())))
        .bind(column(|e| Some(e.key.channel.as_str())))
        .bind(column(|e| Some(rows::thread_column(&e.key))))
        .bind(column(|e| e.message.as_ref().map(|m| m.role.as_str())))
        .bind(column(|e| e.message.as_ref().map(|m| m.content.as_str())))
        .bind(column(|e| {
            e.message.as_ref().and_then(|m| m.tool_calls.as_deref())
        }))
        .bind(column(|e| {
            e.message.as_ref().and_then(|m| m.tool_call_id.as_deref())
        }))
        .bind(column(|e| e.message.as_ref().map(|m| m.status.as_str())))
        .bind(column(|e| {
            e.message
                .as_ref()
                .and_then(|m| m.author.as_ref().map(|a| a.as_str()))
        }))
        .bind(
            sent.iter()
                .map(|&i| events[i].message.as_ref().and_then(|m| m.turn))
                .collect::<Vec<_>>(),
        )
        .bind(column(|e| e.turn.as_ref().map(|t| t.job.as_str())))
        .bind(column(|e| e.turn.as_ref().and_then(|t| t.route.as_deref())))
        .bind(column(|e| e.turn.as_ref().map(|t| t.holder.as_str())))
        .bind(
            sent.iter()
                .map(|&i| events[i].turn.as_ref().map(|t| rows::millis(t.lease)))
                .collect::<Vec<_>>(),
        )
        .bind(rows::now_ms())
        .bind(column(|e| {
            e.message.as_ref().and_then(|m| m.platform_ref.as_deref())
        }))
        .fetch_all(&mut *conn)
        .await?;

    let mut new: HashMap<usize, Accepted> = HashMap::with_capacity(answers.len());
    for (ord, conversation, model, message_id, turn_id) in answers {
        let i = usize::try_from(ord)
            .ok()
            .filter(|&i| i < events.len())
            .ok_or_else(|| StoreError::Corrupt(format!("batch answer for event {ord}")))?;
        let event = &events[i];
        let (conversation, model) = match conversation {
            Some(id) => (id, model),
            None => {
                // Created by another transaction meanwhile, and committed: it is there now.
                let key = &event.key;
                sqlx::query_as(
                    "SELECT id, model FROM conversations
                     WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4",
                )
                .bind(key.platform.as_str())
                .bind(key.workspace.as_str())
                .bind(key.channel.as_str())
                .bind(rows::thread_column(key))
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("conversation {key} vanished after insert"))
                })?
            }
        };
        if event.turn.is_some() && turn_id.is_none() {
            return Err(StoreError::Corrupt(format!(
                "turn of event {} not returned",
                event.event_id
            )));
        }
        new.insert(
            i,
            Accepted::New {
                conversation: rows::conversation(&event.key, conversation, model),
                message_id,
                turn_id,
            },
        );
    }
    // An event not answered was a duplicate, of an earlier delivery or of its first
    // occurrence in this batch.
    Ok((0..events.len())
        .map(|i| Ok(new.remove(&i).unwrap_or(Accepted::Duplicate)))
        .collect())
}
