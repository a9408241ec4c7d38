//! Consuming a stage's queues from RabbitMQ: one channel whose prefetch is the
//! worker's concurrency, re-opened after every connection loss, and a graceful
//! close that hands back what was prefetched but never started.

use std::time::Duration;

use async_trait::async_trait;
use atelier_core::pipeline::Stage;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::SelectAll;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tracing::{debug, info, warn};

use super::connection::Broker;
use crate::transport::{Admission, RawConsumer, RawDelivery, Settle};
use crate::{MessageMeta, Transport};

/// A consume session: the channel and one consumer per queue of the stage.
struct Session {
    channel: Channel,
    tags: Vec<String>,
    consumers: SelectAll<Consumer>,
}

/// [`RawConsumer`] over RabbitMQ.
pub(crate) struct RabbitConsumer {
    broker: Broker,
    stage: Stage,
    prefetch: u16,
    session: Option<Session>,
    /// Set by `stop`: no more deliveries are taken.
    stopped: bool,
}

impl RabbitConsumer {
    pub(crate) async fn start(
        broker: Broker,
        stage: Stage,
        prefetch: u16,
    ) -> Result<Self, crate::BrokerError> {
        let live = broker.live_wait().await?;
        let session = open(&broker, &live.conn, stage, prefetch).await?;
        Ok(Self {
            broker,
            stage,
            prefetch,
            session: Some(session),
            stopped: false,
        })
    }

    /// Waits for a connection and consumes again, backing off while the queues
    /// cannot be consumed (e.g. deleted under us).
    async fn reopen(&mut self) -> bool {
        let initial = Duration::from_millis(self.broker.settings().reconnect_initial_ms.max(1));
        let max = Duration::from_millis(self.broker.settings().reconnect_max_ms.max(1));
        let mut backoff = initial;
        loop {
            let Ok(live) = self.broker.live_wait().await else {
                return false;
            };
            match open(&self.broker, &live.conn, self.stage, self.prefetch).await {
                Ok(session) => {
                    info!(
                        stage = self.stage.as_str(),
                        "consuming again after a lost channel"
                    );
                    self.session = Some(session);
                    return true;
                }
                Err(e) => {
                    warn!(stage = self.stage.as_str(), error = %e, ?backoff, "consumer setup failed");
                    let stopped = self.broker.stopped();
                    tokio::select! {
                        () = stopped.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(max);
                }
            }
        }
    }
}

async fn open(
    broker: &Broker,
    conn: &lapin::Connection,
    stage: Stage,
    prefetch: u16,
) -> Result<Session, crate::BrokerError> {
    let channel = conn.create_channel().await?;
    // Global: one limit for the channel, shared by the stage's queues.
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions { global: true })
        .await?;
    let mut consumers = SelectAll::new();
    let mut tags = Vec::new();
    for queue in broker.names().consumed_queues(stage) {
        let tag = format!(
            "{}.{}.{:08x}",
            broker.inner.name,
            stage.service_name(),
            rand::random::<u32>()
        );
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        debug!(%queue, %tag, "consuming");
        tags.push(tag);
        consumers.push(consumer);
    }
    Ok(Session {
        channel,
        tags,
        consumers,
    })
}

fn to_raw(d: lapin::message::Delivery) -> RawDelivery {
    RawDelivery {
        meta: MessageMeta::from_properties(&d.properties),
        body: Bytes::from(d.data),
        redelivered: d.redelivered,
        settle: Box::new(RabbitSettle(d.acker)),
    }
}

#[async_trait]
impl RawConsumer for RabbitConsumer {
    async fn next(&mut self) -> Option<RawDelivery> {
        loop {
            if self.stopped {
                return None;
            }
            if self.session.is_none() && !self.reopen().await {
                return None;
            }
            let stopped = self.broker.stopped();
            let session = self.session.as_mut()?;
            let next = tokio::select! {
                () = stopped.cancelled() => return None,
                next = session.consumers.next() => next,
            };
            match next {
                Some(Ok(d)) => return Some(to_raw(d)),
                Some(Err(e)) => debug!(error = %e, "consumer stream error"),
                None => debug!("consumer stream ended"),
            }
            // The channel is gone: RabbitMQ requeues what it held.
            self.session = None;
        }
    }

    async fn stop(&mut self) {
        self.stopped = true;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let mut cancelled = true;
        for tag in &session.tags {
            if let Err(e) = session
                .channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                debug!(error = %e, "basic.cancel failed");
                cancelled = false;
            }
        }
        if cancelled {
            let deadline = Duration::from_millis(self.broker.settings().publish_timeout_ms);
            let broker = self.broker.clone();
            let stage = self.stage;
            let drain = async {
                // After cancel-ok each stream yields what was buffered, then ends.
                while let Some(Ok(d)) = session.consumers.next().await {
                    hand_back(&broker, stage, d).await;
                }
            };
            let _ = tokio::time::timeout(deadline, drain).await;
        }
    }

    async fn close(mut self: Box<Self>) {
        if !self.stopped {
            self.stop().await;
        }
        if let Some(session) = self.session.take() {
            let _ = session.channel.close(200, "OK".into()).await;
        }
    }
}

/// Returns an unstarted prefetched delivery to its stage unchanged. A plain
/// requeue would mark it redelivered and so cost it an attempt it never had.
async fn hand_back(broker: &Broker, stage: Stage, d: lapin::message::Delivery) {
    let raw = to_raw(d);
    if raw.redelivered {
        // Still needs the crash accounting: leave that to the next consumer.
        raw.settle.requeue().await;
        return;
    }
    match broker
        .publish(stage, Admission::Accepted, raw.body.clone(), &raw.meta)
        .await
    {
        Ok(()) => raw.settle.ack().await,
        Err(_) => raw.settle.requeue().await,
    }
}

/// Settles a RabbitMQ delivery through its channel.
pub(crate) struct RabbitSettle(pub(crate) lapin::Acker);

#[async_trait]
impl Settle for RabbitSettle {
    async fn ack(self: Box<Self>) {
        if let Err(e) = self.0.ack(BasicAckOptions::default()).await {
            // The channel is gone; RabbitMQ requeues the message by itself.
            debug!(error = %e, "could not ack");
        }
    }

    async fn requeue(self: Box<Self>) {
        let nack = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        if let Err(e) = self.0.nack(nack).await {
            debug!(error = %e, "could not requeue");
        }
    }

    fn abandon(self: Box<Self>) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(self.requeue());
            }
            // No runtime: the channel's end will requeue it.
            Err(_) => debug!("delivery abandoned outside a runtime"),
        }
    }
}
