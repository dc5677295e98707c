//! The warm pool: sandboxes started ahead of time, libraries imported, each waiting on its
//! stdin for the one program it will ever run.
//!
//! A run takes one (or starts one cold when the pool is empty); the refill task replaces it
//! after the run, one sandbox at a time, so a refill never competes with the run that
//! emptied the slot. This module must never hand out a sandbox twice or take one back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::container::{Container, Shared};

/// Pause after a failed start, so a broken setup does not become a busy loop.
const RETRY_AFTER: Duration = Duration::from_secs(2);

pub(crate) struct Pool {
    ready: Mutex<VecDeque<Container>>,
    size: usize,
    taken: Notify,
    filled: Notify,
    /// Set by [`close`](Pool::close): no sandbox is started or kept any more.
    closed: AtomicBool,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Arc<Pool> {
        Arc::new(Pool {
            ready: Mutex::new(VecDeque::with_capacity(size)),
            size,
            taken: Notify::new(),
            filled: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Container>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A ready sandbox, if any; the refill starts when the guard is dropped (after the run).
    pub(crate) fn take(&self) -> (Option<Container>, RefillOnDrop<'_>) {
        (self.lock().pop_front(), RefillOnDrop(self))
    }

    /// Drops every waiting sandbox (each destroys itself).
    pub(crate) fn drain(&self) {
        let drained: Vec<Container> = self.lock().drain(..).collect();
        drop(drained);
    }

    /// Stops the refill for good and drops the waiting sandboxes; one being started now is
    /// dropped as soon as it is ready.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.taken.notify_one();
        self.drain();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) async fn wait_full(&self) {
        loop {
            let filled = self.filled.notified();
            if self.len() >= self.size {
                return;
            }
            filled.await;
        }
    }

    pub(crate) async fn refill_forever(self: Arc<Self>, shared: Arc<Shared>) {
        loop {
            while self.len() >= self.size && !self.is_closed() {
                self.taken.notified().await;
            }
            if self.is_closed() {
                return;
            }
            let started = async {
                let mut c = Container::spawn(&shared).await?;
                c.ready(shared.config.startup_timeout).await?;
                Ok::<_, robit_sandbox::SandboxError>(c)
            };
            match started.await {
                // Closed while it started: it destroys itself here instead of waiting.
                Ok(_) if self.is_closed() => return,
                Ok(c) => {
                    self.lock().push_back(c);
                    self.filled.notify_waiters();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not pre-start a gvisor sandbox");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }
}

pub(crate) struct RefillOnDrop<'a>(&'a Pool);

impl Drop for RefillOnDrop<'_> {
    fn drop(&mut self) {
        self.0.taken.notify_one();
    }
}
