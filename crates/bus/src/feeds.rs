//! Typed subscriptions: job events for waiters and streams, the status
//! service's acknowledged feed, and cancel broadcasts.

use atelier_broker::{Acked, Received, StatusSubscription, Subscription};
use atelier_core::event::JobEvent;
use atelier_core::job::JobId;
use atelier_proto::{CancelNotice, v1};

/// Job events as they are published (a subscription of this process's own).
#[derive(Debug)]
pub struct JobEvents {
    inner: Subscription<v1::JobEvent>,
}

impl JobEvents {
    pub(crate) fn new(inner: Subscription<v1::JobEvent>) -> Self {
        Self { inner }
    }

    /// The next event, or word that this subscriber fell behind (catch up from
    /// the job store); `None` once the bus is closed. Invalid events are logged
    /// and skipped.
    pub async fn next(&mut self) -> Option<Received<JobEvent>> {
        loop {
            match self.inner.next().await? {
                Received::Message(wire) => match JobEvent::try_from(&wire) {
                    Ok(event) => return Some(Received::Message(event)),
                    Err(error) => tracing::warn!(%error, "skipping an invalid job event"),
                },
                Received::Lagged(n) => return Some(Received::Lagged(n)),
                Received::Undecodable(error) => tracing::warn!(%error, "skipping an undecodable job event"),
            }
        }
    }
}

/// Every event, from the status service's durable queue.
#[derive(Debug)]
pub struct StatusEvents {
    inner: StatusSubscription<v1::JobEvent>,
}

/// One event to record; acknowledge it once stored.
#[derive(Debug)]
pub struct StatusEvent {
    pub event: JobEvent,
    /// Trace context of the span that emitted it, to record it in that trace.
    pub traceparent: Option<String>,
    acked: Acked<v1::JobEvent>,
}

impl StatusEvents {
    pub(crate) fn new(inner: StatusSubscription<v1::JobEvent>) -> Self {
        Self { inner }
    }

    /// The next valid event; one that decodes but is invalid is dead-lettered
    /// with the reason and skipped.
    pub async fn next(&mut self) -> Option<StatusEvent> {
        loop {
            let acked = self.inner.next().await?;
            let checked = acked
                .event()
                .map(|wire| (JobEvent::try_from(wire), wire.traceparent.clone()));
            match checked {
                Some((Ok(event), traceparent)) => {
                    return Some(StatusEvent {
                        event,
                        traceparent,
                        acked,
                    });
                }
                Some((Err(error), _)) => {
                    let reason = format!("invalid event: {error}");
                    if let Err(e) = acked.dead_letter(&reason).await {
                        tracing::warn!(error = %e, "could not dead-letter an invalid event");
                    }
                }
                None => acked.ack().await,
            }
        }
    }
}

impl StatusEvent {
    /// Recorded: the queue forgets it.
    pub async fn ack(self) {
        self.acked.ack().await;
    }

    /// It can never be recorded: park it in the dead-letter queue so the events
    /// behind it flow on.
    pub async fn dead_letter(self, reason: &str) -> Result<(), atelier_broker::BrokerError> {
        self.acked.dead_letter(reason).await
    }
}

/// Cancel broadcasts.
#[derive(Debug)]
pub struct CancelFeed {
    inner: Subscription<v1::CancelJob>,
}

impl CancelFeed {
    pub(crate) fn new(inner: Subscription<v1::CancelJob>) -> Self {
        Self { inner }
    }

    /// The next cancelled job; `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<JobId> {
        loop {
            match self.inner.next().await? {
                Received::Message(wire) => match CancelNotice::try_from(&wire) {
                    Ok(notice) => return Some(notice.job),
                    Err(error) => tracing::warn!(%error, "skipping an invalid cancel"),
                },
                Received::Lagged(_) => {}
                Received::Undecodable(error) => tracing::warn!(%error, "skipping an undecodable cancel"),
            }
        }
    }
}
