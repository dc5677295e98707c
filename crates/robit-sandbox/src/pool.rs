//! The pool of pre-started, never-used Python instances.
//!
//! CPython spends most of a short run starting up (importing `encodings`,
//! `site`, ...), not running the user's code. A pooled instance has already done
//! that: it was started with a bootstrap `-c` program and is parked, inside its
//! own store, on a read of stdin that no one has fed yet. Taking it and feeding
//! it the code skips the whole start-up. Every instance serves exactly one run;
//! a background task refills the pool one instance at a time.
//!
//! This module must never hand out an instance twice or return one to the pool.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::SandboxError;
use crate::instance::Prepared;

/// How long to wait before retrying after a failed refill, so a broken guest
/// does not turn into a busy loop.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest interpreter start-up we accept for a pooled instance; also its
/// wall-time limit until a job arrives and arms the real one.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct PythonPool {
    ready: Mutex<VecDeque<Prepared>>,
    size: usize,
    /// Wakes the refill task when an instance was taken.
    taken: Notify,
    /// Wakes whoever waits for the pool to be full (benchmarks, tests).
    filled: Notify,
}

impl PythonPool {
    pub(crate) fn new(size: usize) -> Arc<PythonPool> {
        Arc::new(PythonPool {
            ready: Mutex::new(VecDeque::with_capacity(size)),
            size,
            taken: Notify::new(),
            filled: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Prepared>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A ready instance, if there is one. The refill starts when the returned
    /// guard is dropped, i.e. after the run: starting an interpreter while the
    /// run executes would compete with it for the CPU and add to its latency.
    pub(crate) fn take(&self) -> (Option<Prepared>, RefillOnDrop<'_>) {
        (self.lock().pop_front(), RefillOnDrop(self))
    }

    /// Waits until the pool holds `size` ready instances.
    pub(crate) async fn wait_full(&self) {
        loop {
            let filled = self.filled.notified();
            if self.len() >= self.size {
                return;
            }
            filled.await;
        }
    }

    /// Keeps the pool full for as long as the runtime runs. `start` creates a
    /// new, started instance.
    pub(crate) async fn refill_forever<F>(self: Arc<Self>, start: F)
    where
        F: Fn() -> Result<Prepared, SandboxError>,
    {
        loop {
            while self.len() >= self.size {
                // `notify_one` stores a permit if we are not waiting yet, so a
                // take between the check and this await is not lost.
                self.taken.notified().await;
            }
            match self.start_one(&start).await {
                Ok(instance) => {
                    self.lock().push_back(instance);
                    self.filled.notify_waiters();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not pre-start a python instance");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    }

    async fn start_one<F>(&self, start: &F) -> Result<Prepared, SandboxError>
    where
        F: Fn() -> Result<Prepared, SandboxError>,
    {
        let mut instance = start()?;
        match tokio::time::timeout(STARTUP_TIMEOUT, instance.until_waiting()).await {
            Ok(result) => result.map(|()| instance),
            Err(_) => Err(SandboxError::Internal(
                "python start-up did not finish in time".into(),
            )),
        }
    }
}

/// Wakes the refill task when dropped.
pub(crate) struct RefillOnDrop<'a>(&'a PythonPool);

impl Drop for RefillOnDrop<'_> {
    fn drop(&mut self) {
        // `notify_one` stores a permit when the refill task is busy, so no wake-up is lost.
        self.0.taken.notify_one();
    }
}
