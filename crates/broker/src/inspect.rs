//! Queue depths and dead-letter access for the status service, ops and tests.

use std::collections::BTreeMap;

use atelier_core::pipeline::Stage;
use bytes::Bytes;
use lapin::Channel;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use crate::connection::Broker;
use crate::error::BrokerError;
use crate::meta::{MessageMeta, headers_to_strings};

/// Depth of a queue as RabbitMQ reports it (ready messages, not unacked ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

/// A message from the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub body: Bytes,
    pub meta: MessageMeta,
    /// Every header as text, including `x-death-reason`, `x-stage`, `x-attempt`.
    pub headers: BTreeMap<String, String>,
}

impl DeadLetter {
    /// The `x-death-reason` header.
    pub fn reason(&self) -> Option<&str> {
        self.headers
            .get(crate::meta::HEADER_DEATH_REASON)
            .map(String::as_str)
    }
}

impl Broker {
    /// Depth and consumer count of a stage queue.
    pub async fn queue_stats(&self, stage: Stage) -> Result<QueueStats, BrokerError> {
        self.named_queue_stats(&self.names().stage_queue(stage)).await
    }

    /// Depth and consumer count of the dead-letter queue.
    pub async fn dead_letter_stats(&self) -> Result<QueueStats, BrokerError> {
        self.named_queue_stats(&self.names().dead_letter_queue()).await
    }

    /// Depth of any queue, by a passive declare on a short-lived channel (a
    /// passive declare of a missing queue closes its channel, so it must not
    /// share one).
    pub async fn named_queue_stats(&self, queue: &str) -> Result<QueueStats, BrokerError> {
        let ch = self.channel().await?;
        let res = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let _ = ch.close(200, "OK".into()).await;
        let q = res?;
        Ok(QueueStats {
            messages: q.message_count(),
            consumers: q.consumer_count(),
        })
    }

    /// Takes (removes) the oldest dead letter, if any.
    pub async fn get_dead_letter(&self) -> Result<Option<DeadLetter>, BrokerError> {
        let ch = self.channel().await?;
        let res = ch
            .basic_get(
                self.names().dead_letter_queue().into(),
                BasicGetOptions { no_ack: true },
            )
            .await;
        let _ = ch.close(200, "OK".into()).await;
        Ok(res?.map(|m| to_dead_letter(m.delivery.data, &m.delivery.properties)))
    }

    /// Reads up to `n` dead letters without removing them: they are fetched
    /// unacknowledged and return to the queue when the channel closes.
    pub async fn dead_letters_peek(&self, n: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        let ch = self.channel().await?;
        let mut out = Vec::new();
        let mut failure = None;
        while out.len() < n {
            match ch
                .basic_get(
                    self.names().dead_letter_queue().into(),
                    BasicGetOptions { no_ack: false },
                )
                .await
            {
                Ok(Some(m)) => out.push(to_dead_letter(m.delivery.data, &m.delivery.properties)),
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let _ = ch.close(200, "OK".into()).await;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// A fresh channel on the current connection, for ad-hoc operations
    /// (tests, admin tools). The caller closes it; it does not survive reconnects.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        let live = self
            .live()
            .ok_or_else(|| BrokerError::Unavailable("not connected to RabbitMQ".into()))?;
        live.conn
            .create_channel()
            .await
            .map_err(|e| BrokerError::unavailable("open channel", &e))
    }

    /// Deletes this prefix's queues and exchanges (tests, throwaway stacks).
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        let ch = self.channel().await?;
        let res = crate::topology::delete_topology(&ch, self.settings()).await;
        let _ = ch.close(200, "OK".into()).await;
        res
    }
}

fn to_dead_letter(data: Vec<u8>, props: &lapin::BasicProperties) -> DeadLetter {
    DeadLetter {
        body: Bytes::from(data),
        meta: MessageMeta::from_properties(props),
        headers: headers_to_strings(props),
    }
}
