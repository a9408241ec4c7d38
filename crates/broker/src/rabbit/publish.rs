//! Confirmed publishing: every publish waits for the broker's confirm, because
//! without confirms a full bounded queue drops messages silently.

use std::time::Duration;

use atelier_core::pipeline::Stage;
use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};

use super::connection::Broker;
use super::headers::{HEADER_DEATH_REASON, HEADER_ORIGIN, HEADER_STAGE, PERSISTENT, insert_str};
use crate::names::{EventKey, Origin};
use crate::policy::Retry;
use crate::transport::Admission;
use crate::{BrokerError, MessageMeta};

/// Header on dead letters: a unique id, so one can be taken out of the queue.
pub(crate) const HEADER_DEAD_ID: &str = "x-dead-id";
/// Header on dead letters: when it was given up (ms since the Unix epoch).
pub(crate) const HEADER_DEAD_AT: &str = "x-dead-at-ms";

/// How a publish is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    /// A missing route is a bug or a missing queue: report `Unroutable`.
    Mandatory,
    /// Nobody listening is fine (events, control broadcasts).
    BestEffort,
}

impl Broker {
    /// A stage message into its queue (new jobs) or its resume queue (accepted work).
    pub(crate) async fn publish_stage(
        &self,
        stage: Stage,
        admission: Admission,
        body: &[u8],
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        let names = self.names();
        let queue = match admission {
            Admission::New => names.stage_queue(stage),
            Admission::Accepted => names.resume_queue(stage),
        };
        self.publish_raw(
            &names.pipeline_exchange(),
            &queue,
            body,
            meta.properties(),
            Routing::Mandatory,
        )
        .await
    }

    /// Puts a message in the delay queue of `retry.level`; RabbitMQ dead-letters
    /// it into the stage's resume queue after `retry.delay_ms`.
    pub(crate) async fn publish_delayed(
        &self,
        stage: Stage,
        retry: Retry,
        body: &[u8],
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        let levels = self.settings().retry_delays_ms.len().max(1);
        let props = meta
            .properties()
            .with_expiration(retry.delay_ms.to_string().into());
        self.publish_raw(
            "",
            &self.names().delay_queue(stage, retry.level.min(levels - 1)),
            body,
            props,
            Routing::Mandatory,
        )
        .await
    }

    /// Puts a given-up message in the dead-letter queue with why and where.
    pub(crate) async fn publish_dead_letter(
        &self,
        origin: Origin,
        body: &[u8],
        meta: &MessageMeta,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut headers: FieldTable = meta.headers();
        insert_str(&mut headers, HEADER_DEATH_REASON, reason);
        insert_str(&mut headers, HEADER_ORIGIN, &origin.as_header());
        if let Origin::Stage(stage) = origin {
            insert_str(&mut headers, HEADER_STAGE, stage.as_str());
        }
        insert_str(
            &mut headers,
            HEADER_DEAD_ID,
            &format!("{:032x}", rand::random::<u128>()),
        );
        insert_str(
            &mut headers,
            HEADER_DEAD_AT,
            &atelier_core::clock::now_ms().to_string(),
        );
        self.publish_raw(
            "",
            &self.names().dead_letter_queue(),
            body,
            meta.properties_with(headers),
            Routing::Mandatory,
        )
        .await
    }

    /// A job event on the events topic exchange (persistent, confirmed). Not
    /// mandatory: the status queue is always bound to every job's events, and
    /// other keys may legitimately have no listener.
    pub(crate) async fn publish_event_raw(&self, key: EventKey<'_>, body: &[u8]) -> Result<(), BrokerError> {
        let props = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/x-protobuf".into());
        self.publish_raw(
            &self.names().events_exchange(),
            &key.routing_key(),
            body,
            props,
            Routing::BestEffort,
        )
        .await
    }

    /// A control message (e.g. cancel) to every worker's exclusive queue.
    /// Confirmed but not mandatory: no worker running is not an error.
    pub(crate) async fn publish_control_raw(&self, body: &[u8]) -> Result<(), BrokerError> {
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
