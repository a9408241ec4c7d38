//! Confirmed publishing: every publish waits for the broker's confirm, because
//! without confirms a full bounded queue drops messages silently.

use std::time::Duration;

use atelier_core::pipeline::Stage;
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};

use crate::connection::Broker;
use crate::error::BrokerError;
use crate::meta::{HEADER_DEATH_REASON, HEADER_STAGE, MessageMeta, PERSISTENT, insert_str};

/// How a publish is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    /// A missing route is a bug or a missing queue: report `Unroutable`.
    Mandatory,
    /// Nobody listening is fine (events, control broadcasts).
    BestEffort,
}

impl Broker {
    /// Publishes a stage message (persistent, priority and headers from `meta`)
    /// and waits for the confirm. `QueueFull` when the bounded first queue
    /// rejects it, `Unroutable` if no queue takes it, `Unavailable` when
    /// disconnected or the confirm takes longer than `publish_timeout_ms`.
    pub async fn publish_stage(
        &self,
        stage: Stage,
        body: &[u8],
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        let names = self.names();
        self.publish_raw(
            &names.pipeline_exchange(),
            &names.stage_queue(stage),
            body,
            meta.properties(),
            Routing::Mandatory,
        )
        .await
    }

    /// Publishes a job event on the events topic exchange (persistent,
    /// confirmed). Not mandatory: the status queue is always bound to `job.#`,
    /// and other keys may legitimately have no listener.
    pub async fn publish_event(&self, routing_key: &str, body: &[u8]) -> Result<(), BrokerError> {
        let props = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/x-protobuf".into());
        self.publish_raw(
            &self.names().events_exchange(),
            routing_key,
            body,
            props,
            Routing::BestEffort,
        )
        .await
    }

    /// Broadcasts a control message (e.g. cancel) to every worker's exclusive
    /// queue. Confirmed but not mandatory: no worker running is not an error.
    pub async fn publish_control(&self, body: &[u8]) -> Result<(), BrokerError> {
        let props = BasicProperties::default().with_content_type("application/x-protobuf".into());
        self.publish_raw(
            &self.names().control_exchange(),
            "",
            body,
            props,
            Routing::BestEffort,
        )
        .await
    }

    /// Puts a message in the retry delay queue of `level`; RabbitMQ dead-letters
    /// it back to the stage queue after `expiration_ms`.
    pub(crate) async fn publish_retry(
        &self,
        stage: Stage,
        level: usize,
        body: &[u8],
        meta: &MessageMeta,
        expiration_ms: u64,
    ) -> Result<(), BrokerError> {
        let props = meta
            .properties()
            .with_expiration(expiration_ms.to_string().into());
        self.publish_raw(
            "",
            &self.names().retry_queue(stage, level),
            body,
            props,
            Routing::Mandatory,
        )
        .await
    }

    /// Puts a given-up message in the dead-letter queue with why and where.
    pub(crate) async fn publish_dead_letter(
        &self,
        stage: Stage,
        body: &[u8],
        meta: &MessageMeta,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut headers: FieldTable = meta.headers();
        insert_str(&mut headers, HEADER_DEATH_REASON, reason);
        insert_str(&mut headers, HEADER_STAGE, stage.as_str());
        self.publish_raw(
            "",
            &self.names().dead_letter_queue(),
            body,
            meta.properties_with(headers),
            Routing::Mandatory,
        )
        .await
    }

    /// One confirmed publish, bounded by `publish_timeout_ms` from start (waiting
    /// for a pool channel included), so callers never hang on a dead broker.
    pub(crate) async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
        routing: Routing,
    ) -> Result<(), BrokerError> {
        let timeout = Duration::from_millis(self.settings().publish_timeout_ms);
        let live = self
            .live()
            .ok_or_else(|| BrokerError::Unavailable("not connected to RabbitMQ".into()))?;
        let attempt = async {
            let (_guard, ch) = live.publisher().await?;
            let options = BasicPublishOptions {
                mandatory: routing == Routing::Mandatory,
                immediate: false,
            };
            let confirm = ch
                .basic_publish(exchange.into(), routing_key.into(), options, body, props)
                .await
                .map_err(|e| BrokerError::unavailable("publish", &e))?;
            let confirmation = confirm
                .await
                .map_err(|e| BrokerError::unavailable("publish confirm", &e))?;
            match confirmation {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(_)) => Err(BrokerError::Unroutable),
                Confirmation::Nack(_) => Err(BrokerError::QueueFull),
                Confirmation::NotRequested => Err(BrokerError::Config(
                    "publish channel is not in confirm mode".into(),
                )),
            }
        };
        tokio::time::timeout(timeout, attempt).await.map_err(|_| {
            BrokerError::Unavailable(format!("no publish confirm within {} ms", timeout.as_millis()))
        })?
    }
}
