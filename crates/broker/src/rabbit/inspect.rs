//! Queue depths and dead-letter access for the status service, operators and tests.

use atelier_core::pipeline::Stage;
use bytes::Bytes;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::FieldTable;

use super::connection::Broker;
use super::headers::{HEADER_DEATH_REASON, HEADER_ORIGIN, headers_to_strings};
use super::publish::{HEADER_DEAD_AT, HEADER_DEAD_ID};
use crate::names::Origin;
use crate::transport::{DeadLetter, QueueStats};
use crate::{BrokerError, MessageMeta};

impl Broker {
    /// Depth and consumer count of a stage: its queues' ready messages summed,
    /// and the consumers of its main queue.
    pub(crate) async fn stage_stats(&self, stage: Stage) -> Result<QueueStats, BrokerError> {
        let names = self.names();
        let mut total = self.named_queue_stats(&names.stage_queue(stage)).await?;
        if names.resume_queue(stage) != names.stage_queue(stage) {
            let resume = self.named_queue_stats(&names.resume_queue(stage)).await?;
            total.messages = total.messages.saturating_add(resume.messages);
        }
        Ok(total)
    }

    /// Depth of any queue, by a passive declare on a short-lived channel (a
    /// passive declare of a missing queue closes its channel, so it must not
    /// share one). RabbitMQ reports ready messages only: `unacked` is 0.
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
            unacked: 0,
            consumers: q.consumer_count(),
        })
    }

    /// Reads up to `limit` dead letters; with `take`, removes the one whose id
    /// is `take` (or the first when `take` is `Some("")`). The rest are fetched
    /// unacknowledged and return to the queue, in order, when the channel closes.
    pub(crate) async fn scan_dead_letters(
        &self,
        limit: usize,
        take: Option<&str>,
    ) -> Result<(Vec<DeadLetter>, Option<DeadLetter>), BrokerError> {
        let ch = self.channel().await?;
        let result = scan(self, &ch, limit, take).await;
        let _ = ch.close(200, "OK".into()).await;
        result
    }

    /// Removes every dead letter; returns how many there were.
    pub async fn purge_dead_letters(&self) -> Result<u32, BrokerError> {
        self.purge_queue(&self.names().dead_letter_queue()).await
    }

    /// Removes every ready message of `queue`; returns how many there were
    /// (operators' last resort, and tests that lose messages on purpose).
    pub async fn purge_queue(&self, queue: &str) -> Result<u32, BrokerError> {
        let ch = self.channel().await?;
        let res = ch.queue_purge(queue.into(), QueuePurgeOptions::default()).await;
        let _ = ch.close(200, "OK".into()).await;
        Ok(res?)
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
        let res = super::topology::delete_topology(&ch, self.settings()).await;
        let _ = ch.close(200, "OK".into()).await;
        res
    }
}

async fn scan(
    broker: &Broker,
    ch: &Channel,
    limit: usize,
    take: Option<&str>,
) -> Result<(Vec<DeadLetter>, Option<DeadLetter>), BrokerError> {
    let queue = broker.names().dead_letter_queue();
    let mut seen = Vec::new();
    let mut taken = None;
    while seen.len() < limit || (take.is_some() && taken.is_none()) {
        let Some(message) = ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let letter = to_dead_letter(&message.delivery);
        let wanted = take.is_some_and(|id| id.is_empty() || id == letter.id);
        if wanted && taken.is_none() {
            message.delivery.acker.ack(BasicAckOptions::default()).await?;
            taken = Some(letter);
        } else if seen.len() < limit {
            seen.push(letter);
        } else if take.is_none() {
            break;
        }
    }
    Ok((seen, taken))
}

fn to_dead_letter(d: &lapin::message::Delivery) -> DeadLetter {
    let headers = headers_to_strings(&d.properties);
    let id = headers.get(HEADER_DEAD_ID).cloned().unwrap_or_else(|| {
        // Put there by hand or by an older version: name it by its content.
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.data.hash(&mut h);
        format!("{:016x}", h.finish())
    });
    DeadLetter {
        id,
        body: Bytes::from(d.data.clone()),
        meta: MessageMeta::from_properties(&d.properties),
        origin: headers
            .get(HEADER_ORIGIN)
            .and_then(|o| Origin::parse(o))
            .or_else(|| {
                headers
                    .get(super::headers::HEADER_STAGE)
                    .and_then(|s| Stage::parse(s))
                    .map(Origin::Stage)
            }),
        reason: headers.get(HEADER_DEATH_REASON).cloned().unwrap_or_default(),
        at_ms: headers
            .get(HEADER_DEAD_AT)
            .and_then(|t| t.parse().ok())
            .unwrap_or_default(),
        headers,
    }
}
