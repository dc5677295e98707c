//! The guest's standard streams: a capped output pipe and a stdin that can be
//! filled after the guest has started.
//!
//! These replace wasmtime-wasi's memory pipes, which do not fit: its
//! `MemoryOutputPipe` traps when a write passes its capacity (we want to keep the
//! first N bytes and count the rest), and its `MemoryInputPipe` must be filled
//! before the guest starts (the Python pool starts the interpreter first and
//! hands it the code later). Nothing here may block a thread: waiting is done by
//! returning `Pending` so the guest's fiber yields.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// How much a single `check_write` admits; the p1 adapter writes at most 4 KiB at a time anyway.
const WRITE_PERMIT: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the plain data inside
    // inconsistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct CapState {
    kept: Vec<u8>,
    cap: usize,
    dropped: u64,
}

/// An output stream that keeps the first `cap` bytes and counts the rest.
///
/// It never fails and never blocks, so a guest flooding its output keeps running
/// (and is stopped by the wall-time limit) instead of trapping mid-write.
#[derive(Clone, Default)]
pub(crate) struct CappedPipe {
    state: Arc<Mutex<CapState>>,
}

impl CappedPipe {
    pub(crate) fn new(cap: usize) -> CappedPipe {
        let pipe = CappedPipe::default();
        lock(&pipe.state).cap = cap;
        pipe
    }

    /// Forgets anything written so far and sets a new cap; used when a pooled
    /// instance is handed its job, so interpreter start-up noise is not reported.
    pub(crate) fn reset(&self, cap: usize) {
        let mut s = lock(&self.state);
        s.kept.clear();
        s.dropped = 0;
        s.cap = cap;
    }

    fn push(&self, bytes: &[u8]) {
        let mut s = lock(&self.state);
        let room = s.cap.saturating_sub(s.kept.len());
        let take = room.min(bytes.len());
        s.kept.extend_from_slice(&bytes[..take]);
        s.dropped += (bytes.len() - take) as u64;
    }

    /// The kept bytes and the count of dropped ones.
    pub(crate) fn take(&self) -> (Vec<u8>, u64) {
        let mut s = lock(&self.state);
        (std::mem::take(&mut s.kept), s.dropped)
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[derive(Default)]
struct FeedState {
    /// `None` until the data is delivered; after that, the unread rest.
    data: Option<Bytes>,
    wakers: Vec<Waker>,
}

/// A stdin whose whole content arrives at once, possibly after the guest started
/// reading. Reads before delivery wait; after the delivered bytes comes EOF.
#[derive(Clone)]
pub(crate) struct StdinFeed {
    state: Arc<Mutex<FeedState>>,
    /// Set once the guest is waiting on stdin with nothing delivered: for a pooled
    /// Python instance, that means interpreter start-up is done.
    waiting: Arc<watch::Sender<bool>>,
}

impl StdinFeed {
    pub(crate) fn new() -> StdinFeed {
        StdinFeed {
            state: Arc::default(),
            waiting: Arc::new(watch::Sender::new(false)),
        }
    }

    pub(crate) fn deliver(&self, data: Vec<u8>) {
        let wakers = {
            let mut s = lock(&self.state);
            s.data = Some(Bytes::from(data));
            std::mem::take(&mut s.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves once the guest blocks on stdin before any data was delivered.
    pub(crate) async fn reader_waiting(&self) {
        let mut rx = self.waiting.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|w| *w).await;
    }

    fn poll_delivered(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.state);
        if s.data.is_some() {
            return Poll::Ready(());
        }
        if !s.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            s.wakers.push(cx.waker().clone());
        }
        drop(s);
        self.waiting.send_replace(true);
        Poll::Pending
    }

    /// Takes up to `size` bytes; `None` when nothing was delivered yet.
    fn take(&self, size: usize) -> Option<Bytes> {
        let mut s = lock(&self.state);
        let data = s.data.as_mut()?;
        let n = size.min(data.len());
        Some(data.split_to(n))
    }
}

impl IsTerminal for StdinFeed {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for StdinFeed {
    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for StdinFeed {
    async fn ready(&mut self) {
        poll_fn(|cx| self.poll_delivered(cx)).await
    }
}

impl InputStream for StdinFeed {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.take(size) {
            // Not delivered yet: an empty read tells the caller to wait on `ready`.
            None => Ok(Bytes::new()),
            Some(b) if b.is_empty() && size > 0 => Err(StreamError::Closed),
            Some(b) => Ok(b),
        }
    }
}

impl AsyncRead for StdinFeed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.poll_delivered(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(b) = self.take(buf.remaining()) {
            buf.put_slice(&b);
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_pipe_keeps_the_head_and_counts_the_rest() {
        let mut p = CappedPipe::new(4);
        p.write(Bytes::from_static(b"abcdef")).unwrap();
        p.write(Bytes::from_static(b"gh")).unwrap();
        assert_eq!(p.take(), (b"abcd".to_vec(), 4));
    }

    #[test]
    fn reset_forgets_earlier_output() {
        let mut p = CappedPipe::new(4);
        p.write(Bytes::from_static(b"noise")).unwrap();
        p.reset(2);
        p.write(Bytes::from_static(b"xyz")).unwrap();
        assert_eq!(p.take(), (b"xy".to_vec(), 1));
    }

    #[tokio::test]
    async fn stdin_waits_for_delivery_then_ends() {
        let mut feed = StdinFeed::new();
        assert!(feed.read(10).unwrap().is_empty());
        let waiter = {
            let mut f = feed.clone();
            tokio::spawn(async move {
                f.ready().await;
                f.read(10).unwrap()
            })
        };
        feed.reader_waiting().await;
        feed.deliver(b"hello".to_vec());
        assert_eq!(&waiter.await.unwrap()[..], b"hello");
        assert!(matches!(feed.read(10), Err(StreamError::Closed)));
    }
}
