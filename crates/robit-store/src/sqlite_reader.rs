//! The reads on a turn's way to its first post, on SQLite's own driver (rusqlite) instead of
//! sqlx's: a small pool of read connections used from tokio's blocking threads.
//!
//! Why: sqlx runs each SQLite connection on a worker thread of its own and hands rows back
//! through a channel, so a conversation's history (up to `history_limit` rows, 200 by
//! default) cost 0.8 ms of thread hand-offs per turn, the largest stage between an event and
//! its first post (`robit bench engine`). Here the query runs as plain function calls on one
//! blocking thread, with its statement prepared once per connection.
//!
//! The SQL is the text both backends share (`queries::TURN_HISTORY`), so the two drivers
//! cannot drift in what they read. It must not write: WAL lets these connections read while
//! the group-commit writer (`sqlite_writer.rs`) commits; a write here would race it for the
//! lock.

use crate::sqlite_writer::{connect, WriterOptions};
use crate::{Result, StoreError};
use rusqlite::Connection;
use std::sync::{Arc, Mutex};

/// Most reads at once, each on a connection of its own, kept open between reads (fewer if the
/// pool is configured smaller). More would not read faster on a machine of a few cores; they
/// would take threads from the turns and the writer (a read that has to wait, waits on a
/// semaphore, not on a thread).
const MAX_READERS: usize = 4;

/// The handle the store keeps; clones share the connections.
#[derive(Clone)]
pub(crate) struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    options: WriterOptions,
    permits: Arc<tokio::sync::Semaphore>,
    /// `None` once closed: reads then fail, and a read in flight drops its connection.
    idle: Mutex<Option<Vec<Connection>>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("filename", &self.inner.options.filename)
            .finish_non_exhaustive()
    }
}

impl Readers {
    /// Opens one connection now, so a database that cannot be read fails at startup; at most
    /// `limit` (and [`MAX_READERS`]) reads run at once.
    pub fn open(options: WriterOptions, limit: usize) -> Result<Readers> {
        let first = connect(&options)?;
        Ok(Readers {
            inner: Arc::new(Inner {
                options,
                permits: Arc::new(tokio::sync::Semaphore::new(limit.clamp(1, MAX_READERS))),
                idle: Mutex::new(Some(vec![first])),
            }),
        })
    }

    /// Runs `read` on a read connection, on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = match inner.idle().as_mut() {
                Some(idle) => idle.pop(),
                None => return Err(StoreError::Closed),
            };
            let conn = match taken {
                Some(conn) => conn,
                None => connect(&inner.options)?,
            };
            let result = read(&conn);
            if let Some(idle) = inner.idle().as_mut() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Writer(format!("sqlite read task: {e}")))?
    }

    /// Closes the idle connections; later reads fail with [`StoreError::Closed`].
    pub fn close(&self) {
        self.inner.idle().take();
    }
}

impl Inner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Option<Vec<Connection>>> {
        // A read that panicked left the list as it was: still usable.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
