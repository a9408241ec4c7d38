//! Event and control subscriptions that outlive reconnects.
//!
//! A task owns the AMQP consumer and feeds an mpsc channel; after a connection
//! loss it re-creates the queue and binding and keeps feeding the same stream,
//! so callers hold one subscription for their whole life.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::connection::Broker;
use super::consume::RabbitSettle;
use crate::error::BrokerError;
use crate::names::EventFilter;
use crate::transport::{RawSubscription, SubscriptionItem, Topic};

/// Unacked messages one subscription holds at most.
const SUBSCRIPTION_PREFETCH: u16 = 64;
/// Buffered messages between the consumer task and the stream.
const SUBSCRIPTION_BUFFER: usize = 64;

/// A subscription's messages, fed by a task that survives reconnects; drop it
/// to unsubscribe.
#[derive(Debug)]
pub(crate) struct RabbitSubscription {
    rx: mpsc::Receiver<(Bytes, lapin::Acker)>,
}

#[async_trait]
impl RawSubscription for RabbitSubscription {
    async fn next(&mut self) -> Option<SubscriptionItem> {
        let (body, acker) = self.rx.recv().await?;
        Some(SubscriptionItem::Message(body, Box::new(RabbitSettle(acker))))
    }
}

/// Where a subscription's messages come from.
#[derive(Debug, Clone)]
struct Source {
    exchange: String,
    binding_key: String,
    /// `None`: exclusive, auto-delete, server-named (gone with the connection).
    durable_queue: Option<String>,
}

impl Broker {
    /// Subscribes to `topic`. Event and control subscriptions get an exclusive,
    /// server-named queue (messages published while disconnected are missed);
    /// the status service's is the durable status queue, so events wait for it.
    /// Returns once the queue is bound, so messages published afterwards arrive.
    pub(crate) async fn subscribe_topic(&self, topic: Topic) -> Result<RabbitSubscription, BrokerError> {
        let names = self.names();
        let source = match topic {
            Topic::Events(filter) => Source {
                exchange: names.events_exchange(),
                binding_key: filter.binding_key(),
                durable_queue: None,
            },
            Topic::StatusEvents => Source {
                exchange: names.events_exchange(),
                binding_key: EventFilter::AllJobs.binding_key(),
                durable_queue: Some(names.status_queue()),
            },
            Topic::Control => Source {
                exchange: names.control_exchange(),
                binding_key: String::new(),
                durable_queue: None,
            },
        };
        let live = self
            .live()
            .ok_or_else(|| BrokerError::Unavailable("not connected to RabbitMQ".into()))?;
        let (ch, consumer) = open(&live.conn, &source).await?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        tokio::spawn(feed(self.clone(), source, ch, consumer, tx));
        Ok(RabbitSubscription { rx })
    }
}

/// Declares and binds the queue and starts consuming it.
async fn open(conn: &lapin::Connection, source: &Source) -> Result<(Channel, Consumer), BrokerError> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(SUBSCRIPTION_PREFETCH, BasicQosOptions::default())
        .await?;
    let (name, options) = match &source.durable_queue {
        Some(name) => (
            name.clone(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
        ),
        None => (
            String::new(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
        ),
    };
    let queue = ch
        .queue_declare(name.into(), options, FieldTable::default())
        .await?;
    let queue_name = queue.name().clone();
    ch.queue_bind(
        queue_name.clone(),
        source.exchange.as_str().into(),
        source.binding_key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let consumer = ch
        .basic_consume(
            queue_name,
            format!("sub.{:08x}", rand::random::<u32>()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
}

/// Forwards deliveries until the subscriber drops the stream or the broker is
/// closed, re-opening the queue after every connection loss.
async fn feed(
    broker: Broker,
    source: Source,
    mut ch: Channel,
    mut consumer: Consumer,
    tx: mpsc::Sender<(Bytes, lapin::Acker)>,
) {
    let stopped = broker.stopped();
    let initial = Duration::from_millis(broker.settings().reconnect_initial_ms.max(1));
    loop {
        // Forward from the current consumer.
        loop {
            tokio::select! {
                () = tx.closed() => {
                    let _ = ch.close(200, "OK".into()).await;
                    return;
                }
                () = stopped.cancelled() => return,
                next = consumer.next() => match next {
                    Some(Ok(d)) => {
                        if tx.send((Bytes::from(d.data), d.acker)).await.is_err() {
                            let _ = ch.close(200, "OK".into()).await;
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "subscription stream error");
                        break;
                    }
                    None => break,
                },
            }
        }
        // Re-open on the next connection.
        loop {
            let live = tokio::select! {
                () = tx.closed() => return,
                live = broker.live_wait() => match live {
                    Ok(live) => live,
                    Err(_) => return,
                },
            };
            match open(&live.conn, &source).await {
                Ok((c, s)) => {
                    ch = c;
                    consumer = s;
                    break;
                }
                Err(e) => {
                    warn!(exchange = %source.exchange, error = %e, "re-subscribing failed");
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(initial) => {}
                    }
                }
            }
        }
    }
}
