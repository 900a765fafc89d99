//! The two queues between the runtime's thread and the asyncio loop's thread, and when each side
//! wakes the other.
//!
//! Toward Python: stream events go into one queue; the first event after a `drain()` writes the
//! eventfd the loop watches (written under the queue's lock, and `drain()` reads the eventfd
//! before it takes the queue, so no event is left without a wake).
//!
//! Toward the runtime: what Python sends goes into the outbound queue, and the first item after
//! the dispatcher took the queue wakes it through tokio's `Notify` (a permit is stored if the
//! dispatcher is not waiting, so no batch is left behind): one wake per batch, not per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};

pub(super) enum Event {
    Opened(u64, String),
    Message(u64, Bytes),
    HalfClosed(u64),
    Reset(u64),
}

pub(super) enum Out {
    Message(Bytes),
    Close(u32, String),
}

pub(super) struct Shared {
    events: Mutex<Vec<Event>>,
    pub(super) eventfd: i32,
    pub(super) streams: Mutex<HashMap<u64, mpsc::UnboundedSender<Out>>>,
    outbound: Mutex<Vec<(u64, Out)>>,
    /// Wakes `dispatch` when Python queued into an empty queue.
    outbound_ready: Notify,
    pub(super) next_stream: AtomicU64,
    /// The health status (`set_serving`): read by `Check`, followed by `Watch` streams.
    pub(super) serving: watch::Sender<bool>,
    /// `Watch` streams open (for tests: a cancelled one must not linger).
    pub(super) health_watches: AtomicUsize,
    /// HTTP/2 connections open (`shutdown` lets them finish, bounded).
    pub(super) connections: AtomicUsize,
    pub(super) max_message_bytes: usize,
    /// How often Python had to wake the runtime (for tests of the wake logic).
    wakes: AtomicU64,
}

impl Shared {
    pub(super) fn new(eventfd: i32, max_message_bytes: usize) -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            eventfd,
            streams: Mutex::new(HashMap::new()),
            outbound: Mutex::new(Vec::new()),
            outbound_ready: Notify::new(),
            next_stream: AtomicU64::new(1),
            serving: watch::Sender::new(false),
            health_watches: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            max_message_bytes,
            wakes: AtomicU64::new(0),
        }
    }

    /// Queue an event for Python (runtime's thread); the first one after a drain wakes the loop.
    pub(super) fn push(&self, event: Event) {
        let mut events = self.events.lock().unwrap();
        events.push(event);
        if events.len() == 1 {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a live u64 to an fd this struct owns.
            unsafe { libc::write(self.eventfd, (&one as *const u64).cast(), 8) };
        }
    }

    /// Every waiting event, oldest first (Python's thread).
    pub(super) fn take_events(&self) -> Vec<Event> {
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.eventfd, (&mut counter as *mut u64).cast(), 8) };
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    /// Queue what Python sends (Python's thread); the first item since the dispatcher last took
    /// the queue wakes it.
    pub(super) fn queue(&self, items: impl IntoIterator<Item = (u64, Out)>) {
        let mut outbound = self.outbound.lock().unwrap();
        let was_empty = outbound.is_empty();
        outbound.extend(items);
        if was_empty && !outbound.is_empty() {
            self.wakes.fetch_add(1, Ordering::Relaxed);
            // A permit is stored if the dispatcher is busy, so no batch is left behind.
            self.outbound_ready.notify_one();
        }
    }

    /// Hand the outbound queue to the streams' tasks (runtime's thread).
    fn dispatch_outbound(&self) {
        let batch = std::mem::take(&mut *self.outbound.lock().unwrap());
        let streams = self.streams.lock().unwrap();
        for (id, out) in batch {
            if let Some(tx) = streams.get(&id) {
                let _ = tx.send(out);
            }
        }
    }

    /// How many batches woke the dispatcher.
    pub(super) fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }
}

/// Counts a task while it lives, however it ends.
pub(super) struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    pub(super) fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the fd was created by `eventfd` and is closed only here.
        unsafe { libc::close(self.eventfd) };
    }
}

/// Hands what Python queued to the streams' tasks, a batch per wake-up.
pub(super) async fn dispatch(shared: std::sync::Arc<Shared>) {
    loop {
        shared.outbound_ready.notified().await;
        shared.dispatch_outbound();
    }
}
