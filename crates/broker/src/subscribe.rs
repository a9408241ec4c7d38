//! Event and control subscriptions that outlive reconnects.
//!
//! A task owns the AMQP consumer and feeds an mpsc channel; after a connection
//! loss it re-creates the queue and binding and keeps feeding the same stream,
//! so callers hold one [`Subscription`] for their whole life.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::connection::Broker;
use crate::error::BrokerError;

/// Unacked messages one subscription holds at most.
const SUBSCRIPTION_PREFETCH: u16 = 64;
/// Buffered messages between the consumer task and the stream.
const SUBSCRIPTION_BUFFER: usize = 64;

/// Acknowledges one subscription message. Unacked messages of a durable queue
/// come back after a reconnect; on exclusive queues acking just frees prefetch.
#[derive(Debug, Clone)]
pub struct Acker(lapin::Acker);

impl Acker {
    /// Marks the message handled.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.0.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Gives the message back (`requeue`) or drops it.
    pub async fn nack(&self, requeue: bool) -> Result<(), BrokerError> {
        self.0
            .nack(BasicNackOptions {
                multiple: false,
                requeue,
            })
            .await?;
        Ok(())
    }
}

/// A stream of `(body, acker)` that survives reconnects; drop it to unsubscribe.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<(Bytes, Acker)>,
}

impl Stream for Subscription {
    type Item = (Bytes, Acker);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
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
    /// Subscribes to events matching `binding_key` (`job.<id>.#`, ...). With
    /// `durable_queue` = `None` the queue is exclusive and server-named (events
    /// published while disconnected are missed); with `Some(name)` it is a
    /// durable queue (the status service's), so events wait while it is away.
    /// Returns once the queue is bound, so events published afterwards arrive.
    pub async fn subscribe_events(
        &self,
        binding_key: &str,
        durable_queue: Option<&str>,
    ) -> Result<Subscription, BrokerError> {
        self.subscribe(Source {
            exchange: self.names().events_exchange(),
            binding_key: binding_key.to_owned(),
            durable_queue: durable_queue.map(str::to_owned),
        })
        .await
    }

    /// Subscribes to control broadcasts (cancels) with an exclusive queue.
    pub async fn subscribe_control(&self) -> Result<Subscription, BrokerError> {
        self.subscribe(Source {
            exchange: self.names().control_exchange(),
            binding_key: String::new(),
            durable_queue: None,
        })
        .await
    }

    async fn subscribe(&self, source: Source) -> Result<Subscription, BrokerError> {
        let live = self
            .live()
            .ok_or_else(|| BrokerError::Unavailable("not connected to RabbitMQ".into()))?;
        let (ch, consumer) = open(&live.conn, &source).await?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        tokio::spawn(feed(self.clone(), source, ch, consumer, tx));
        Ok(Subscription { rx })
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
    tx: mpsc::Sender<(Bytes, Acker)>,
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
                        if tx.send((Bytes::from(d.data), Acker(d.acker))).await.is_err() {
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
