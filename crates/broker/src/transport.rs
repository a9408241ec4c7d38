//! What a transport does, in bytes: the one seam between the typed bus and
//! RabbitMQ or the in-process queues. Everything above it (decoding, retry
//! decisions, dead-lettering, the consumer runtime) is written once, so both
//! transports behave the same by construction and one behaviour suite checks
//! the rest.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use atelier_core::pipeline::Stage;
use bytes::Bytes;

use crate::names::{EventFilter, EventKey, Origin};
use crate::policy::Retry;
use crate::{BrokerError, MessageMeta};

/// How a stage message enters its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A new job: subject to the first stage's bound (`QueueFull` when full).
    New,
    /// Work the system already accepted (the next stage, a retry, a hand-back,
    /// a replay or a resume): never refused, never dropped by the bound.
    Accepted,
}

/// A message a transport handed out, not yet settled.
pub struct RawDelivery {
    pub body: Bytes,
    pub meta: MessageMeta,
    /// The transport delivered it before and it was never settled: the worker
    /// holding it died or lost its connection.
    pub redelivered: bool,
    pub settle: Box<dyn Settle>,
}

impl fmt::Debug for RawDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDelivery")
            .field("meta", &self.meta)
            .field("bytes", &self.body.len())
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

/// Settles one delivery with its transport. A lost settlement is never a lost
/// message: the transport redelivers what was not acknowledged.
#[async_trait]
pub trait Settle: Send + Sync {
    /// Done with it: the transport forgets the message.
    async fn ack(self: Box<Self>);
    /// Put it back as a redelivery (which costs it an attempt).
    async fn requeue(self: Box<Self>);
    /// [`Settle::requeue`] from a synchronous context (a dropped delivery).
    fn abandon(self: Box<Self>);
}

/// A stage queue being consumed.
#[async_trait]
pub trait RawConsumer: Send {
    /// The next delivery, waiting for one; `None` once the transport is closed.
    /// Survives connection loss (it resumes after a reconnect).
    async fn next(&mut self) -> Option<RawDelivery>;
    /// Stops consuming. Deliveries the transport already sent but this consumer
    /// never handed out go back unchanged (without costing an attempt).
    /// Deliveries handed out can still be settled until [`RawConsumer::close`].
    async fn stop(&mut self);
    /// Releases the consumer; settle its deliveries first.
    async fn close(self: Box<Self>);
}

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Job events matching the filter, on a queue of the subscriber's own that
    /// goes away with it (a missed event is not redelivered later).
    Events(EventFilter),
    /// Every job event, on the status service's durable queue: events wait for
    /// it while it is away, and each must be acknowledged.
    StatusEvents,
    /// Control broadcasts (cancels) on a queue of the subscriber's own.
    Control,
}

/// One item of a subscription.
pub enum SubscriptionItem {
    Message(Bytes, Box<dyn Settle>),
    /// The subscriber fell behind and `n` messages were skipped for it; it
    /// should catch up from the job store.
    Lagged(u64),
}

impl fmt::Debug for SubscriptionItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message(body, _) => write!(f, "Message({} bytes)", body.len()),
            Self::Lagged(n) => write!(f, "Lagged({n})"),
        }
    }
}

/// A subscription's items; survives reconnects; dropping it unsubscribes.
#[async_trait]
pub trait RawSubscription: Send {
    /// The next item; `None` once the transport is closed.
    async fn next(&mut self) -> Option<SubscriptionItem>;
}

/// Depth of a stage as its transport sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages waiting to be delivered (ready).
    pub messages: u32,
    /// Messages delivered and not yet settled, when the transport knows.
    pub unacked: u32,
    pub consumers: u32,
}

/// A message given up on, with why and where from.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Identifies it for [`Transport::take_dead_letter`] while it is listed.
    pub id: String,
    pub body: Bytes,
    pub meta: MessageMeta,
    pub origin: Option<Origin>,
    pub reason: String,
    /// When it was given up, ms since the Unix epoch (0 when unknown).
    pub at_ms: u64,
    /// Every header as text (RabbitMQ's own `x-death` included), for operators.
    pub headers: BTreeMap<String, String>,
}

/// A message bus for the pipeline: stage queues, the events topic and the
/// control broadcast. Implemented by RabbitMQ ([`crate::Broker`]) and in
/// process ([`crate::InProcess`]).
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Puts a stage message in its queue, confirmed. `QueueFull` only for
    /// [`Admission::New`] into the bounded first stage.
    async fn publish(
        &self,
        stage: Stage,
        admission: Admission,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError>;

    /// Puts a message back into `stage` after `retry.delay_ms`.
    async fn publish_retry(
        &self,
        stage: Stage,
        retry: Retry,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError>;

    /// Parks a message in the dead-letter queue.
    async fn publish_dead(
        &self,
        origin: Origin,
        body: Bytes,
        meta: &MessageMeta,
        reason: &str,
    ) -> Result<(), BrokerError>;

    /// Publishes a job event (confirmed). Nobody listening is not an error.
    async fn publish_event(&self, key: EventKey<'_>, body: Bytes) -> Result<(), BrokerError>;

    /// Broadcasts a control message to every subscriber (confirmed).
    async fn publish_control(&self, body: Bytes) -> Result<(), BrokerError>;

    /// Starts consuming `stage` with at most `prefetch` unsettled deliveries.
    async fn consume(&self, stage: Stage, prefetch: u16) -> Result<Box<dyn RawConsumer>, BrokerError>;

    /// Subscribes; returns once the subscription is in place, so messages
    /// published afterwards arrive.
    async fn subscribe(&self, topic: Topic) -> Result<Box<dyn RawSubscription>, BrokerError>;

    /// Depth and consumers of `stage` (its resume queue included).
    async fn queue_stats(&self, stage: Stage) -> Result<QueueStats, BrokerError>;

    /// Messages in the dead-letter queue.
    async fn dead_letter_count(&self) -> Result<u32, BrokerError>;

    /// Up to `limit` dead letters, oldest first, without removing them.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError>;

    /// Removes and returns the dead letter `id` (as listed), or the oldest when
    /// `id` is `None`; `None` when there is no such letter.
    async fn take_dead_letter(&self, id: Option<&str>) -> Result<Option<DeadLetter>, BrokerError>;

    /// Whether the transport can take messages right now.
    fn is_connected(&self) -> bool;

    /// Closes the transport: consumers and subscriptions end.
    async fn close(&self);
}
