//! The in-process transport: the same semantics as RabbitMQ for one process
//! (`atelier serve`, tests): priority queues per stage, the first stage's bound
//! on new jobs, retries after their delay, a dead-letter queue, a durable
//! status queue that waits for its consumer, and broadcast subscriptions that
//! tell a subscriber when it fell behind.
//!
//! Nothing here survives the process: `atelier serve` re-enqueues unfinished
//! jobs from its job store's checkpoints when it starts again.

mod queue;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use atelier_core::event::EventKind;
use atelier_core::pipeline::Stage;
use bytes::Bytes;
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use self::queue::Queue;
use crate::names::{EventFilter, EventKey, Origin, is_bounded};
use crate::policy::Retry;
use crate::transport::{
    Admission, DeadLetter, QueueStats, RawConsumer, RawDelivery, RawSubscription, Settle, SubscriptionItem,
    Topic, Transport,
};
use crate::{BrokerError, MessageMeta};

/// Events a non-durable subscriber may fall behind before it is told it lagged.
const BROADCAST_BACKLOG: usize = 4096;
/// Events waiting for the status consumer before publishers wait for it.
const STATUS_QUEUE_LIMIT: usize = 100_000;

/// An event on its way to subscribers.
#[derive(Debug, Clone)]
struct EventMessage {
    job_id: Arc<str>,
    kind: EventKind,
    body: Bytes,
}

#[derive(Debug)]
struct Shared {
    max_queue_size: u32,
    stages: [Arc<Queue>; 4],
    status: Arc<Queue>,
    dead: Mutex<VecDeque<DeadLetter>>,
    events: broadcast::Sender<EventMessage>,
    control: broadcast::Sender<Bytes>,
    closed: CancellationToken,
}

/// The pipeline's queues inside this process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InProcess {
    shared: Arc<Shared>,
}

impl InProcess {
    /// Empty queues; the first stage refuses new jobs beyond `max_queue_size`.
    pub fn new(max_queue_size: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_queue_size,
                stages: std::array::from_fn(|_| Arc::new(Queue::default())),
                status: Arc::new(Queue::default()),
                dead: Mutex::new(VecDeque::new()),
                events: broadcast::channel(BROADCAST_BACKLOG).0,
                control: broadcast::channel(BROADCAST_BACKLOG).0,
                closed: CancellationToken::new(),
            }),
        }
    }

    fn queue(&self, stage: Stage) -> &Arc<Queue> {
        let index = Stage::ALL.iter().position(|s| *s == stage).unwrap_or_default();
        &self.shared.stages[index]
    }

    fn check_open(&self) -> Result<(), BrokerError> {
        if self.shared.closed.is_cancelled() {
            Err(BrokerError::Unavailable("the in-process bus is closed".into()))
        } else {
            Ok(())
        }
    }

    fn dead_letters_lock(&self) -> std::sync::MutexGuard<'_, VecDeque<DeadLetter>> {
        self.shared.dead.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Transport for InProcess {
    async fn publish(
        &self,
        stage: Stage,
        admission: Admission,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.check_open()?;
        let bound = (admission == Admission::New && is_bounded(stage)).then_some(self.shared.max_queue_size);
        if self.queue(stage).push(body, meta.clone(), false, bound) {
            Ok(())
        } else {
            Err(BrokerError::QueueFull)
        }
    }

    async fn publish_retry(
        &self,
        stage: Stage,
        retry: Retry,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.check_open()?;
        let queue = self.queue(stage).clone();
        let meta = meta.clone();
        let closed = self.shared.closed.clone();
        tokio::spawn(async move {
            tokio::select! {
                // The process is going away: the job store's checkpoint resumes it.
                () = closed.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(retry.delay_ms)) => {
                    queue.push(body, meta, false, None);
                }
            }
        });
        Ok(())
    }

    async fn publish_dead(
        &self,
        origin: Origin,
        body: Bytes,
        meta: &MessageMeta,
        reason: &str,
    ) -> Result<(), BrokerError> {
        self.check_open()?;
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("x-death-reason".to_string(), reason.to_string());
        headers.insert("x-origin".to_string(), origin.as_header());
        headers.insert("x-attempt".to_string(), meta.attempt.to_string());
        self.dead_letters_lock().push_back(DeadLetter {
            id: format!("{:032x}", rand::random::<u128>()),
            body,
            meta: meta.clone(),
            origin: Some(origin),
            reason: reason.to_string(),
            at_ms: atelier_core::clock::now_ms(),
            headers,
        });
        Ok(())
    }

    async fn publish_event(&self, key: EventKey<'_>, body: Bytes) -> Result<(), BrokerError> {
        self.check_open()?;
        // The durable status queue first, waiting for room like a broker's flow
        // control would, so a slow recorder slows publishers instead of losing events.
        let status = &self.shared.status;
        loop {
            let taken = status.taken.notified();
            if status.len() < STATUS_QUEUE_LIMIT {
                break;
            }
            tokio::select! {
                () = taken => {}
                () = self.shared.closed.cancelled() => return Err(BrokerError::Unavailable("the in-process bus is closed".into())),
            }
        }
        let meta = MessageMeta {
            job_id: key.job_id.to_string(),
            ..MessageMeta::default()
        };
        status.push(body.clone(), meta, false, None);
        // Nobody listening is fine.
        let _ = self.shared.events.send(EventMessage {
            job_id: Arc::from(key.job_id),
            kind: key.kind,
            body,
        });
        Ok(())
    }

    async fn publish_control(&self, body: Bytes) -> Result<(), BrokerError> {
        self.check_open()?;
        let _ = self.shared.control.send(body);
        Ok(())
    }

    async fn consume(&self, stage: Stage, prefetch: u16) -> Result<Box<dyn RawConsumer>, BrokerError> {
        self.check_open()?;
        let queue = self.queue(stage).clone();
        queue.add_consumer(1);
        Ok(Box::new(QueueConsumer {
            queue,
            permits: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
            stopped: self.shared.closed.child_token(),
        }))
    }

    async fn subscribe(&self, topic: Topic) -> Result<Box<dyn RawSubscription>, BrokerError> {
        self.check_open()?;
        let closed = self.shared.closed.clone();
        Ok(match topic {
            Topic::Events(filter) => Box::new(EventSubscription {
                rx: self.shared.events.subscribe(),
                filter,
                closed,
            }),
            Topic::StatusEvents => {
                let queue = self.shared.status.clone();
                queue.add_consumer(1);
                Box::new(QueueConsumer {
                    queue,
                    permits: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
                    stopped: closed.child_token(),
                })
            }
            Topic::Control => Box::new(ControlSubscription {
                rx: self.shared.control.subscribe(),
                closed,
            }),
        })
    }

    async fn queue_stats(&self, stage: Stage) -> Result<QueueStats, BrokerError> {
        let depth = self.queue(stage).depth();
        Ok(QueueStats {
            messages: depth.ready,
            unacked: depth.unacked,
            consumers: depth.consumers,
        })
    }

    async fn dead_letter_count(&self) -> Result<u32, BrokerError> {
        Ok(u32::try_from(self.dead_letters_lock().len()).unwrap_or(u32::MAX))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        Ok(self.dead_letters_lock().iter().take(limit).cloned().collect())
    }

    async fn take_dead_letter(&self, id: Option<&str>) -> Result<Option<DeadLetter>, BrokerError> {
        let mut dead = self.dead_letters_lock();
        let index = match id {
            None => (!dead.is_empty()).then_some(0),
            Some(id) => dead.iter().position(|d| d.id == id),
        };
        Ok(index.and_then(|i| dead.remove(i)))
    }

    fn is_connected(&self) -> bool {
        !self.shared.closed.is_cancelled()
    }

    async fn close(&self) {
        self.shared.closed.cancel();
    }
}

/// Consumes one [`Queue`], holding at most its prefetch unsettled.
struct QueueConsumer {
    queue: Arc<Queue>,
    permits: Arc<Semaphore>,
    /// The transport's closing, or this consumer's `stop`.
    stopped: CancellationToken,
}

impl QueueConsumer {
    async fn take(&mut self) -> Option<RawDelivery> {
        let permit = tokio::select! {
            () = self.stopped.cancelled() => return None,
            permit = self.permits.clone().acquire_owned() => permit.ok()?,
        };
        loop {
            let ready = self.queue.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(entry) = self.queue.take() {
                return Some(queue::delivery(self.queue.clone(), entry, Some(permit)));
            }
            tokio::select! {
                () = self.stopped.cancelled() => return None,
                () = ready => {}
            }
        }
    }
}

impl QueueConsumer {
    /// Stops taking messages and stops counting as a consumer (once).
    fn stop_now(&mut self) {
        if !self.stopped.is_cancelled() {
            self.stopped.cancel();
            self.queue.add_consumer(-1);
        }
    }
}

impl Drop for QueueConsumer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[async_trait]
impl RawConsumer for QueueConsumer {
    async fn next(&mut self) -> Option<RawDelivery> {
        self.take().await
    }

    /// Nothing is prefetched in process: every delivery handed out is already
    /// its caller's; stopping only ends `next`.
    async fn stop(&mut self) {
        self.stop_now();
    }

    async fn close(self: Box<Self>) {}
}

#[async_trait]
impl RawSubscription for QueueConsumer {
    async fn next(&mut self) -> Option<SubscriptionItem> {
        let d = self.take().await?;
        Some(SubscriptionItem::Message(d.body, d.settle))
    }
}

/// Broadcast messages need no settling.
struct NoSettle;

#[async_trait]
impl Settle for NoSettle {
    async fn ack(self: Box<Self>) {}
    async fn requeue(self: Box<Self>) {}
    fn abandon(self: Box<Self>) {}
}

struct EventSubscription {
    rx: broadcast::Receiver<EventMessage>,
    filter: EventFilter,
    closed: CancellationToken,
}

#[async_trait]
impl RawSubscription for EventSubscription {
    async fn next(&mut self) -> Option<SubscriptionItem> {
        loop {
            let received = tokio::select! {
                () = self.closed.cancelled() => return None,
                received = self.rx.recv() => received,
            };
            match received {
                Ok(m) => {
                    let key = EventKey {
                        job_id: &m.job_id,
                        kind: m.kind,
                    };
                    if self.filter.matches(&key) {
                        return Some(SubscriptionItem::Message(m.body, Box::new(NoSettle)));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => return Some(SubscriptionItem::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

struct ControlSubscription {
    rx: broadcast::Receiver<Bytes>,
    closed: CancellationToken,
}

#[async_trait]
impl RawSubscription for ControlSubscription {
    async fn next(&mut self) -> Option<SubscriptionItem> {
        loop {
            let received = tokio::select! {
                () = self.closed.cancelled() => return None,
                received = self.rx.recv() => received,
            };
            match received {
                Ok(body) => return Some(SubscriptionItem::Message(body, Box::new(NoSettle))),
                // A missed cancel is still found through the job's cancel marker.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
