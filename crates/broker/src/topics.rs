//! Job events and control broadcasts speaking protobuf message types: publish,
//! subscribe, and (for the status service's durable queue) acknowledge or
//! dead-letter each event.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

use crate::names::{EventFilter, EventKey, Origin};
use crate::transport::{RawSubscription, Settle, SubscriptionItem, Topic, Transport};
use crate::{BrokerError, MessageMeta};

/// The events topic of one transport, carrying events of type `E`.
pub struct EventTopic<E> {
    transport: Arc<dyn Transport>,
    _event: PhantomData<fn() -> E>,
}

impl<E> Clone for EventTopic<E> {
    fn clone(&self) -> Self {
        Self {
            transport: self.transport.clone(),
            _event: PhantomData,
        }
    }
}

impl<E> fmt::Debug for EventTopic<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventTopic")
            .field("transport", &self.transport)
            .finish()
    }
}

/// One item of an event subscription.
#[derive(Debug)]
pub enum Received<T> {
    Message(T),
    /// The subscriber fell behind and missed `n` messages: catch up from the
    /// job store.
    Lagged(u64),
    /// A message that does not decode (logged and skipped by the caller).
    Undecodable(String),
}

impl<E: prost::Message + Default + 'static> EventTopic<E> {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            _event: PhantomData,
        }
    }

    /// Publishes `event` under `key`, confirmed.
    pub async fn publish(&self, key: EventKey<'_>, event: &E) -> Result<(), BrokerError> {
        self.transport
            .publish_event(key, Bytes::from(event.encode_to_vec()))
            .await
    }

    /// Events matching `filter` from now on, on a subscription of this
    /// subscriber's own (nothing to acknowledge).
    pub async fn subscribe(&self, filter: EventFilter) -> Result<Subscription<E>, BrokerError> {
        Ok(Subscription {
            raw: self.transport.subscribe(Topic::Events(filter)).await?,
            _message: PhantomData,
        })
    }

    /// Every event on the status service's durable queue: events wait for it
    /// while it is away, and each must be acknowledged (or dead-lettered).
    pub async fn subscribe_status(&self) -> Result<StatusSubscription<E>, BrokerError> {
        Ok(StatusSubscription {
            raw: self.transport.subscribe(Topic::StatusEvents).await?,
            transport: self.transport.clone(),
            _message: PhantomData,
        })
    }
}

/// Decoded messages of a subscription that needs no acknowledgement.
pub struct Subscription<T> {
    raw: Box<dyn RawSubscription>,
    _message: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscription")
    }
}

impl<T: prost::Message + Default> Subscription<T> {
    /// The next item; `None` once the transport is closed.
    pub async fn next(&mut self) -> Option<Received<T>> {
        Some(match self.raw.next().await? {
            SubscriptionItem::Message(body, settle) => {
                // Exclusive queues: acknowledging only frees prefetch.
                settle.ack().await;
                match T::decode(body) {
                    Ok(message) => Received::Message(message),
                    Err(e) => Received::Undecodable(e.to_string()),
                }
            }
            SubscriptionItem::Lagged(n) => Received::Lagged(n),
        })
    }
}

/// The status service's events, each to be settled.
pub struct StatusSubscription<E> {
    raw: Box<dyn RawSubscription>,
    transport: Arc<dyn Transport>,
    _message: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for StatusSubscription<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusSubscription")
    }
}

impl<E: prost::Message + Default> StatusSubscription<E> {
    /// The next event; an undecodable one is dead-lettered and skipped.
    pub async fn next(&mut self) -> Option<Acked<E>> {
        loop {
            let SubscriptionItem::Message(body, settle) = self.raw.next().await? else {
                continue;
            };
            let decoded = E::decode(body.clone());
            let acked = Acked {
                body,
                settle: Some(settle),
                transport: self.transport.clone(),
                event: None,
            };
            match decoded {
                Ok(event) => return Some(acked.with_event(event)),
                Err(e) => {
                    let reason = format!("undecodable event: {e}");
                    tracing::warn!(%reason, "dead-lettering an event");
                    if let Err(error) = acked.dead_letter(&reason).await {
                        tracing::warn!(%error, "could not dead-letter an undecodable event");
                    }
                }
            }
        }
    }
}

/// An event from the durable status queue: acknowledge it once it is stored.
/// Dropped unsettled, it comes back.
pub struct Acked<E> {
    event: Option<E>,
    body: Bytes,
    settle: Option<Box<dyn Settle>>,
    transport: Arc<dyn Transport>,
}

impl<E> fmt::Debug for Acked<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acked").field("bytes", &self.body.len()).finish()
    }
}

impl<E> Acked<E> {
    fn with_event(mut self, event: E) -> Self {
        self.event = Some(event);
        self
    }

    /// The event (always present on what [`StatusSubscription::next`] returns).
    pub fn event(&self) -> Option<&E> {
        self.event.as_ref()
    }

    pub async fn ack(mut self) {
        if let Some(settle) = self.settle.take() {
            settle.ack().await;
        }
    }

    /// Parks the event in the dead-letter queue (it can never be stored) and
    /// acknowledges it, so the events behind it flow on.
    pub async fn dead_letter(mut self, reason: &str) -> Result<(), BrokerError> {
        let published = self
            .transport
            .publish_dead(
                Origin::StatusEvents,
                self.body.clone(),
                &MessageMeta::default(),
                reason,
            )
            .await;
        if let Some(settle) = self.settle.take() {
            match &published {
                Ok(()) => settle.ack().await,
                Err(_) => settle.requeue().await,
            }
        }
        published
    }
}

impl<E> Drop for Acked<E> {
    fn drop(&mut self) {
        if let Some(settle) = self.settle.take() {
            settle.abandon();
        }
    }
}

/// The control broadcast of one transport, carrying messages of type `C`.
pub struct ControlTopic<C> {
    transport: Arc<dyn Transport>,
    _message: PhantomData<fn() -> C>,
}

impl<C> Clone for ControlTopic<C> {
    fn clone(&self) -> Self {
        Self {
            transport: self.transport.clone(),
            _message: PhantomData,
        }
    }
}

impl<C> fmt::Debug for ControlTopic<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlTopic")
    }
}

impl<C: prost::Message + Default + 'static> ControlTopic<C> {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            _message: PhantomData,
        }
    }

    /// Sends `message` to every subscriber, confirmed.
    pub async fn broadcast(&self, message: &C) -> Result<(), BrokerError> {
        self.transport
            .publish_control(Bytes::from(message.encode_to_vec()))
            .await
    }

    /// Broadcasts from now on.
    pub async fn subscribe(&self) -> Result<Subscription<C>, BrokerError> {
        Ok(Subscription {
            raw: self.transport.subscribe(Topic::Control).await?,
            _message: PhantomData,
        })
    }
}
