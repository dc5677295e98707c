//! Group commit for SQLite's hot write: one connection on its own thread that owns `accept`,
//! batching the events that arrive while it is busy into one transaction. Other small writes
//! that every turn or the journal's heartbeat makes (lease renewals, a turn's status, its
//! answer and token usage) go through its queue too ([`Writer::run`], between two batches):
//! on a pooled connection they raced the intake for the write lock.
//!
//! Why one writer: SQLite has one writer at a time. With every request handler opening its
//! own `BEGIN IMMEDIATE`, concurrent intakes queue in SQLite's busy handler, which sleeps in
//! growing steps (up to 100 ms) rather than waking when the lock frees; that, not the writes,
//! set the ingest p99. A single writer never waits for the lock against itself, and a batch
//! pays one commit for many events.
//!
//! Why its own driver (rusqlite, on the same SQLite library sqlx links): sqlx runs each
//! SQLite connection on a worker thread and hands it every statement through a channel, so
//! each of an event's five or six statements cost two thread wake-ups. Profiled under the
//! Slack ingest benchmark, those context switches were most of the process's time and the
//! writer's serial hops capped ingest. Here the whole batch runs as plain function calls on
//! the writer's thread, with prepared statements cached; callers wait on a oneshot as before.
//! The statements are the same text as the sqlx queries (`queries::accept_sql`,
//! `journal::insert_turn_sql!`), so the two cannot drift in what `accept` writes.
//!
//! One event's error (a row too large, say) fails that event alone: the batch is then run
//! again with a savepoint per event. A failed commit fails the batch, and every caller in it
//! gets the error (nothing of theirs was persisted).
//!
//! It must not change what `accept` means: an event's caller hears back only after the
//! transaction holding its rows has committed.

use crate::journal::{HAND_OVER_POSTS, SUPERSEDE_ANSWER};
use crate::model::{Accepted, Conversation, ConversationId, NewEvent, NewMessage};
use crate::queries::accept_sql;
use crate::{rows, Result, StoreError};
use robit_types::ConversationKey;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Statement, TransactionBehavior};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most events in one transaction: bounds how long the first event of a batch waits for the
/// last one's statements.
const MAX_BATCH: usize = 256;

/// Requests the writer queues; a bounded queue pushes back on intakes when the disk is slow.
const QUEUE: usize = 4096;

/// SQLite's clock in unix milliseconds (it has no integer-millisecond function), as a string
/// literal for the SQL macros' `concat!`: every SQLite statement that judges time uses it.
macro_rules! sqlite_now {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    };
}
pub(crate) use sqlite_now;

/// The turn insert, with SQLite's clock.
const INSERT_TURN: &str = crate::journal::insert_turn_sql!(sqlite_now!());

/// Where and how the writer (and `sqlite_reader.rs`) open connections: the file the pool uses, with the pool's
/// settings (the pool has already created the file and put it in WAL mode).
#[derive(Debug, Clone)]
pub(crate) struct WriterOptions {
    /// A path, or sqlx's `file:…` name of a shared in-memory database.
    pub filename: PathBuf,
    /// The database is sqlx's shared in-memory one (`sqlite::memory:`).
    pub in_memory: bool,
    pub full_sync: bool,
}

/// How long a writer waits for the write lock before giving up (the pool's connections too).
/// Writers queue behind each other for milliseconds each; failing sooner than a request would
/// time out anyway only drops work that could have been saved.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

enum Job {
    Accept(Box<NewEvent>, oneshot::Sender<Result<Accepted>>),
    /// A small write on the writer's connection, run between two batches (see
    /// [`Writer::run`]).
    Run(Box<dyn FnOnce(&Connection) + Send>),
    Close(oneshot::Sender<()>),
}

type Batch = Vec<(Box<NewEvent>, oneshot::Sender<Result<Accepted>>)>;

/// The handle the store keeps; clones share the one writer.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's own connection on a thread of its own and returns once it is open.
    pub async fn start(options: WriterOptions) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (opened, open) = oneshot::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                match connect(&options).and_then(|conn| {
                    let checkpoints = start_checkpointer(&options)?;
                    Ok((conn, checkpoints))
                }) {
                    Ok((conn, checkpoints)) => {
                        let _ = opened.send(Ok(()));
                        run(conn, rx);
                        // Dropping the sender stops the checkpointer.
                        drop(checkpoints);
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                    }
                }
            })
            .map_err(|e| StoreError::Writer(e.to_string()))?;
        open.await.map_err(|_| StoreError::Closed)??;
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

    /// Runs `write` on the writer's connection between two batches and returns its result:
    /// for the small writes every turn makes (its status) and the journal's lease renewals,
    /// which on a pooled connection would race the intake's batches for the one write lock
    /// and hold a pooled connection while they wait. One statement each, in its own
    /// transaction.
    pub async fn run<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Run(Box::new(move |conn| {
                let _ = reply.send(write(conn));
            })))
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

/// Opens a connection with the writer's settings (the readers of `sqlite_reader.rs` use it too).
pub(crate) fn connect(options: &WriterOptions) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if options.in_memory {
        flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
    }
    let conn = Connection::open_with_flags(&options.filename, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if !options.in_memory {
        // The checkpointer thread copies the log into the database instead: a commit that
        // crosses the log's threshold would otherwise do it inline, holding up every caller
        // in the batch (and the next batch) for tens of milliseconds.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Other connections' writes (a turn's answer, its token usage) take the
        // lock for a few milliseconds; SQLite's default handler then sleeps in growing steps,
        // up to 100 ms, long after the lock is free. Intakes wait on this connection, so it
        // polls instead, every 200 µs, for as long as `BUSY_TIMEOUT` allows.
        conn.busy_handler(Some(poll_lock))?;
    }
    conn.pragma_update(
        None,
        "synchronous",
        if options.full_sync { "FULL" } else { "NORMAL" },
    )?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// How often the writer looks at SQLite's write lock again while another connection holds it.
const BUSY_POLL: Duration = Duration::from_micros(200);

/// How many polls make [`BUSY_TIMEOUT`].
const BUSY_POLLS: i32 = (BUSY_TIMEOUT.as_micros() / BUSY_POLL.as_micros()) as i32;

fn poll_lock(attempt: i32) -> bool {
    if attempt >= BUSY_POLLS {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

/// How often the checkpointer copies the write-ahead log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Starts the thread that checkpoints the write-ahead log (`PASSIVE`: it copies what no reader
/// still needs and never blocks writers) on a connection of its own, every
/// [`CHECKPOINT_EVERY`] until the returned sender is dropped. Nothing for an in-memory
/// database, which has no log.
fn start_checkpointer(options: &WriterOptions) -> Result<Option<std::sync::mpsc::Sender<()>>> {
    if options.in_memory {
        return Ok(None);
    }
    let conn = connect(options)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "sqlite checkpoint failed; retrying");
                }
            }
        })
        .map_err(|e| StoreError::Writer(e.to_string()))?;
    Ok(Some(stop))
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Batch = Vec::with_capacity(MAX_BATCH);
    while let Some(mut job) = rx.blocking_recv() {
        // Take what is queued, up to a full batch; another write or a close first commits the
        // events that came before it, so each caller is answered in queue order.
        loop {
            match job {
                Job::Accept(event, reply) => batch.push((event, reply)),
                Job::Run(write) => {
                    flush(&mut conn, &mut batch);
                    write(&conn);
                }
                Job::Close(done) => {
                    flush(&mut conn, &mut batch);
                    drop(conn);
                    let _ = done.send(());
                    return;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(next) => job = next,
                Err(_) => break,
            }
        }
        flush(&mut conn, &mut batch);
    }
}

fn flush(conn: &mut Connection, batch: &mut Batch) {
    if !batch.is_empty() {
        commit_batch(conn, batch);
    }
}

/// Runs the batch in one transaction and answers every caller in it.
///
/// First optimistically, every event straight in the transaction (a savepoint per event
/// costs two more statements each); if any event fails, that attempt is rolled back and the
/// batch runs again with a savepoint per event, so only the failing event fails.
fn commit_batch(conn: &mut Connection, batch: &mut Batch) {
    let outcome = match run_batch(conn, batch, false) {
        Ok(Some(results)) => Ok(results),
        Ok(None) => run_batch(conn, batch, true)
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
fn run_batch(
    conn: &mut Connection,
    batch: &Batch,
    savepoints: bool,
) -> Result<Option<Vec<Result<Accepted>>>> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for (event, _) in batch {
        if !savepoints {
            match accept_in(&tx, event) {
                Ok(accepted) => results.push(Ok(accepted)),
                // Dropping the transaction rolls the attempt back.
                Err(_) => return Ok(None),
            }
            continue;
        }
        let savepoint = tx.savepoint()?;
        match accept_in(&savepoint, event) {
            Ok(accepted) => {
                savepoint.commit()?;
                results.push(Ok(accepted));
            }
            // Dropping the savepoint rolls its statements back.
            Err(e) => results.push(Err(e)),
        }
    }
    tx.commit()?;
    Ok(Some(results))
}

/// Stores a message in `conversation`: `accept`'s insert, and on its own (through
/// [`Writer::run`]) a turn's answer and tool messages.
pub(crate) fn insert_message(
    conn: &Connection,
    conversation: ConversationId,
    m: &NewMessage,
) -> Result<i64> {
    returning_id(
        conn,
        accept_sql::INSERT_MESSAGE,
        &[
            &conversation.0,
            &m.role.as_str(),
            &m.content,
            &m.tool_calls,
            &m.tool_call_id,
            &m.status.as_str(),
            &m.author.as_ref().map(|a| a.as_str()),
            &rows::now_ms(),
            &m.turn,
            &m.served.as_ref().map(|s| s.provider.as_str()),
            &m.served.as_ref().map(|s| s.model.as_str()),
            &m.platform_ref.as_deref(),
        ],
    )
}

/// `accept` for one event inside the batch's transaction: the same statements, in the same
/// order, as the sqlx `accept_in` of `queries.rs`.
fn accept_in(conn: &Connection, event: &NewEvent) -> Result<Accepted> {
    let inserted = execute(
        conn,
        accept_sql::RECORD_EVENT,
        &[
            &event.platform.as_str(),
            &event.event_id.as_str(),
            &rows::now_ms(),
        ],
    )?;
    if inserted == 0 {
        return Ok(Accepted::Duplicate);
    }
    let conversation = find_or_create_conversation(conn, &event.key)?;
    let message_id = match &event.message {
        Some(m) => Some(insert_message(conn, conversation.id, m)?),
        None => None,
    };
    if let Some(edit) = &event.edit {
        execute(
            conn,
            accept_sql::EDIT_QUESTION,
            &[&edit.question, &edit.text],
        )?;
    }
    let turn_id = match &event.turn {
        Some(turn) => {
            let id = returning_id(
                conn,
                INSERT_TURN,
                &[
                    &conversation.id.0,
                    &event.platform.as_str(),
                    &event.event_id.as_str(),
                    &message_id.or(turn.answers),
                    &turn.job,
                    &turn.route,
                    &turn.holder,
                    &rows::millis(turn.lease),
                ],
            )?;
            if let Some(question) = turn.answers {
                execute(conn, SUPERSEDE_ANSWER, &[&question])?;
                execute(conn, HAND_OVER_POSTS, &[&question, &id])?;
            }
            Some(id)
        }
        None => None,
    };
    Ok(Accepted::New {
        conversation,
        message_id,
        turn_id,
    })
}

/// Looks first so the common case (the conversation exists) writes nothing; the writer is
/// SQLite's only writer of `accept`, but a console or admin path may create one too, so the
/// insert still ignores a conflict and reads the row that won.
fn find_or_create_conversation(conn: &Connection, key: &ConversationKey) -> Result<Conversation> {
    if let Some(found) = find_conversation(conn, key)? {
        return Ok(found);
    }
    execute(
        conn,
        accept_sql::CREATE_CONVERSATION,
        &[
            &key.platform.as_str(),
            &key.workspace.as_str(),
            &key.channel.as_str(),
            &rows::thread_column(key),
            &rows::now_ms(),
        ],
    )?;
    find_conversation(conn, key)?
        .ok_or_else(|| StoreError::Corrupt(format!("conversation {key} vanished after insert")))
}

fn find_conversation(conn: &Connection, key: &ConversationKey) -> Result<Option<Conversation>> {
    let mut stmt = conn.prepare_cached(accept_sql::FIND_CONVERSATION)?;
    bind(
        &mut stmt,
        &[
            &key.platform.as_str(),
            &key.workspace.as_str(),
            &key.channel.as_str(),
            &rows::thread_column(key),
        ],
    )?;
    let mut found = stmt.raw_query();
    Ok(match found.next()? {
        Some(row) => Some(rows::conversation(key, row.get(0)?, row.get(1)?)),
        None => None,
    })
}

/// Runs one statement; the number of rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    Ok(stmt.raw_execute()?)
}

fn returning_id(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> Result<i64> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    let mut rows = stmt.raw_query();
    let row = rows
        .next()?
        .ok_or_else(|| StoreError::Corrupt("an insert returned no id".into()))?;
    Ok(row.get(0)?)
}

/// Runs one statement returning ids (`RETURNING id`); every id it returned.
pub(crate) fn returning_ids(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
) -> Result<Vec<i64>> {
    query_rows(conn, sql, values, |row| row.get(0))
}

/// Runs one statement and maps every row it returns.
pub(crate) fn query_rows<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    mut map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    let mut found = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        found.push(map(row)?);
    }
    Ok(found)
}

/// Binds `values[n - 1]` to `$n`, wherever `$n` appears: SQLite numbers named parameters in
/// order of first appearance, and the shared statements do not always use `$1` first (sqlx
/// binds them by number too).
fn bind(stmt: &mut Statement<'_>, values: &[&dyn ToSql]) -> Result<()> {
    const NAMES: [&str; 12] = [
        "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12",
    ];
    debug_assert!(values.len() <= NAMES.len(), "name more placeholders");
    for (name, value) in NAMES.iter().zip(values) {
        if let Some(index) = stmt.parameter_index(name)? {
            stmt.raw_bind_parameter(index, *value)?;
        }
    }
    Ok(())
}
