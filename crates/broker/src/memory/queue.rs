//! One in-process queue: a priority heap (higher priority first, then oldest),
//! an optional bound on newly admitted messages, and unsettled deliveries
//! tracked so a dropped one comes back as a redelivery.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::MessageMeta;
use crate::transport::{RawDelivery, Settle};

/// A message waiting in a queue.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub body: Bytes,
    pub meta: MessageMeta,
    pub redelivered: bool,
    /// Admitted as a new job: counts against the queue's bound while ready.
    pub intake: bool,
    seq: u64,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// The heap's top is the highest priority, and among equals the oldest.
    fn cmp(&self, other: &Self) -> Ordering {
        self.meta
            .priority
            .cmp(&other.meta.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Default)]
struct State {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// Ready messages admitted as new jobs.
    intake: u32,
    unacked: u32,
    consumers: u32,
}

/// A queue shared by its publishers and consumers.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    /// Signalled when a message arrives.
    pub ready: Notify,
    /// Signalled when a message leaves (for publishers waiting for room).
    pub taken: Notify,
}

/// Depth figures of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Depth {
    pub ready: u32,
    pub unacked: u32,
    pub consumers: u32,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a message; with `bound`, refuses it (returns `false`) when that
    /// many newly admitted messages are already waiting.
    pub fn push(&self, body: Bytes, meta: MessageMeta, redelivered: bool, bound: Option<u32>) -> bool {
        {
            let mut state = self.lock();
            if let Some(bound) = bound
                && state.intake >= bound
            {
                return false;
            }
            state.next_seq += 1;
            let seq = state.next_seq;
            let intake = bound.is_some();
            if intake {
                state.intake += 1;
            }
            state.heap.push(Entry {
                body,
                meta,
                redelivered,
                intake,
                seq,
            });
        }
        self.ready.notify_waiters();
        true
    }

    /// Takes the next message, counting it as unsettled.
    pub fn take(&self) -> Option<Entry> {
        let entry = {
            let mut state = self.lock();
            let entry = state.heap.pop()?;
            if entry.intake {
                state.intake -= 1;
            }
            state.unacked += 1;
            entry
        };
        self.taken.notify_waiters();
        Some(entry)
    }

    /// A taken message was settled; `requeue` puts it back as a redelivery.
    fn settle(&self, entry: Entry, requeue: bool) {
        {
            let mut state = self.lock();
            state.unacked = state.unacked.saturating_sub(1);
        }
        if requeue {
            self.push(entry.body, entry.meta, true, None);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().heap.len()
    }

    pub fn depth(&self) -> Depth {
        let state = self.lock();
        Depth {
            ready: u32::try_from(state.heap.len()).unwrap_or(u32::MAX),
            unacked: state.unacked,
            consumers: state.consumers,
        }
    }

    pub fn add_consumer(&self, delta: i32) {
        let mut state = self.lock();
        state.consumers = state.consumers.saturating_add_signed(delta);
    }
}

/// Settles a message taken from a [`Queue`]; also returns the consumer's
/// prefetch permit.
pub(crate) struct QueueSettle {
    pub queue: Arc<Queue>,
    pub entry: Option<Entry>,
    pub permit: Option<OwnedSemaphorePermit>,
}

impl QueueSettle {
    fn finish(&mut self, requeue: bool) {
        if let Some(entry) = self.entry.take() {
            self.queue.settle(entry, requeue);
        }
        drop(self.permit.take());
    }
}

#[async_trait]
impl Settle for QueueSettle {
    async fn ack(mut self: Box<Self>) {
        self.finish(false);
    }

    async fn requeue(mut self: Box<Self>) {
        self.finish(true);
    }

    fn abandon(mut self: Box<Self>) {
        self.finish(true);
    }
}

/// A taken entry as a transport delivery.
pub(crate) fn delivery(queue: Arc<Queue>, entry: Entry, permit: Option<OwnedSemaphorePermit>) -> RawDelivery {
    RawDelivery {
        body: entry.body.clone(),
        meta: entry.meta.clone(),
        redelivered: entry.redelivered,
        settle: Box::new(QueueSettle {
            queue,
            entry: Some(entry),
            permit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(job: &str, priority: u8) -> MessageMeta {
        MessageMeta {
            job_id: job.into(),
            attempt: 1,
            priority,
            ..MessageMeta::default()
        }
    }

    #[test]
    fn priority_then_age_and_the_bound_counts_new_jobs_only() {
        let q = Queue::default();
        assert!(q.push(Bytes::new(), meta("a", 1), false, Some(2)));
        assert!(q.push(Bytes::new(), meta("b", 9), false, Some(2)));
        assert!(
            !q.push(Bytes::new(), meta("c", 5), false, Some(2)),
            "bound reached"
        );
        assert!(
            q.push(Bytes::new(), meta("retry", 1), false, None),
            "accepted work passes"
        );
        let order: Vec<String> = std::iter::from_fn(|| q.take()).map(|e| e.meta.job_id).collect();
        assert_eq!(order, ["b", "a", "retry"]);
        assert_eq!(q.depth().unacked, 3);
        assert!(q.push(Bytes::new(), meta("d", 1), false, Some(2)), "room again");
    }
}
