//! The RabbitMQ transport: one reconnecting connection per process, the
//! topology every service declares, confirmed publishing, consumers with
//! hand-back on shutdown, subscriptions that survive reconnects, and
//! dead-letter inspection.

mod connection;
mod consume;
mod headers;
mod inspect;
mod publish;
mod subscribe;
mod topology;

use async_trait::async_trait;
use atelier_core::pipeline::Stage;
use bytes::Bytes;

pub use connection::Broker;
pub use headers::{
    HEADER_ATTEMPT, HEADER_DEADLINE_MS, HEADER_DEATH_REASON, HEADER_JOB_ID, HEADER_ORIGIN, HEADER_STAGE,
    HEADER_TRACEPARENT,
};
pub use topology::{declare_topology, delete_topology};

use crate::names::{EventKey, Origin};
use crate::policy::Retry;
use crate::transport::{Admission, DeadLetter, QueueStats, RawConsumer, RawSubscription, Topic, Transport};
use crate::{BrokerError, MessageMeta};

#[async_trait]
impl Transport for Broker {
    async fn publish(
        &self,
        stage: Stage,
        admission: Admission,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.publish_stage(stage, admission, &body, meta).await
    }

    async fn publish_retry(
        &self,
        stage: Stage,
        retry: Retry,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.publish_delayed(stage, retry, &body, meta).await
    }

    async fn publish_dead(
        &self,
        origin: Origin,
        body: Bytes,
        meta: &MessageMeta,
        reason: &str,
    ) -> Result<(), BrokerError> {
        self.publish_dead_letter(origin, &body, meta, reason).await
    }

    async fn publish_event(&self, key: EventKey<'_>, body: Bytes) -> Result<(), BrokerError> {
        self.publish_event_raw(key, &body).await
    }

    async fn publish_control(&self, body: Bytes) -> Result<(), BrokerError> {
        self.publish_control_raw(&body).await
    }

    async fn consume(&self, stage: Stage, prefetch: u16) -> Result<Box<dyn RawConsumer>, BrokerError> {
        Ok(Box::new(
            consume::RabbitConsumer::start(self.clone(), stage, prefetch).await?,
        ))
    }

    async fn subscribe(&self, topic: Topic) -> Result<Box<dyn RawSubscription>, BrokerError> {
        Ok(Box::new(self.subscribe_topic(topic).await?))
    }

    async fn queue_stats(&self, stage: Stage) -> Result<QueueStats, BrokerError> {
        self.stage_stats(stage).await
    }

    async fn dead_letter_count(&self) -> Result<u32, BrokerError> {
        Ok(self
            .named_queue_stats(&self.names().dead_letter_queue())
            .await?
            .messages)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        Ok(self.scan_dead_letters(limit, None).await?.0)
    }

    async fn take_dead_letter(&self, id: Option<&str>) -> Result<Option<DeadLetter>, BrokerError> {
        Ok(self.scan_dead_letters(0, Some(id.unwrap_or(""))).await?.1)
    }

    fn is_connected(&self) -> bool {
        Broker::is_connected(self)
    }

    async fn close(&self) {
        Broker::close(self).await;
    }
}
