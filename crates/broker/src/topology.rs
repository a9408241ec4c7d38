//! Exchange and queue names, and their idempotent declaration.
//!
//! Every service declares the whole topology at start (and after each
//! reconnect), so no start order is needed. Declarations are idempotent only
//! while arguments stay identical, so every argument here derives from settings
//! that all services share.

use atelier_core::pipeline::Stage;
use atelier_core::settings::BrokerSettings;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::error::BrokerError;
use crate::meta::MAX_PRIORITY;

/// Binding key of the status service's queue on the events exchange.
pub const STATUS_BINDING_KEY: &str = "job.#";

/// Names of every exchange and queue under one prefix, so stacks and tests can
/// share one RabbitMQ side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Direct exchange all stage messages go through (`{p}.pipeline`).
    pub fn pipeline_exchange(&self) -> String {
        format!("{}.pipeline", self.prefix)
    }

    /// Queue of a stage; also its routing key on the pipeline exchange.
    pub fn stage_queue(&self, stage: Stage) -> String {
        let short = match stage {
            Stage::Analysis => "analysis",
            Stage::Generation => "generation",
            Stage::Upscaling => "upscaling",
            Stage::PostProcessing => "postprocess",
        };
        format!("{}.{short}", self.prefix)
    }

    /// Delay queue of retry `level` (0-based) for `stage`.
    pub fn retry_queue(&self, stage: Stage, level: usize) -> String {
        format!("{}.retry.{level}", self.stage_queue(stage))
    }

    /// Queue holding messages given up on (`{p}.dead`), fed via the default exchange.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Topic exchange of job events (`{p}.events`).
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Fanout exchange of control messages such as cancels (`{p}.control`).
    pub fn control_exchange(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// Durable queue of the status service (`{p}.status.events`), so events
    /// wait while it restarts.
    pub fn status_queue(&self) -> String {
        format!("{}.status.events", self.prefix)
    }
}

fn long(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn i64_arg(v: u64) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Arguments of a stage queue. Only the first stage is bounded: later stages
/// receive work the system already accepted, and rejecting it there would fail
/// jobs instead of pushing back on new ones.
fn stage_queue_args(stage: Stage, max_queue_size: u32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(MAX_PRIORITY));
    if stage == Stage::Analysis {
        args.insert("x-max-length".into(), i64_arg(u64::from(max_queue_size)));
        args.insert("x-overflow".into(), long("reject-publish"));
    }
    args
}

fn check_settings(settings: &BrokerSettings) -> Result<(), BrokerError> {
    if settings.prefix.is_empty() {
        return Err(BrokerError::Config("broker.prefix is empty".into()));
    }
    if settings.retry_delays_ms.is_empty() {
        return Err(BrokerError::Config("broker.retry_delays_ms is empty".into()));
    }
    if settings.max_attempts == 0 {
        return Err(BrokerError::Config("broker.max_attempts is 0".into()));
    }
    Ok(())
}

/// Declares every exchange, queue and binding. Safe to run any number of times
/// and from concurrent processes: RabbitMQ treats an identical redeclaration as
/// a no-op. A declaration whose arguments differ from the existing queue fails
/// with an `Amqp` error (PRECONDITION_FAILED) and closes `channel`.
pub async fn declare_topology(
    channel: &Channel,
    settings: &BrokerSettings,
    max_queue_size: u32,
) -> Result<(), BrokerError> {
    check_settings(settings)?;
    let names = Names::new(settings.prefix.clone());
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let pipeline = names.pipeline_exchange();
    channel
        .exchange_declare(
            pipeline.as_str().into(),
            ExchangeKind::Direct,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            names.events_exchange().into(),
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            names.control_exchange().into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;

    for stage in Stage::ALL {
        let queue = names.stage_queue(stage);
        channel
            .queue_declare(
                queue.as_str().into(),
                durable_queue,
                stage_queue_args(stage, max_queue_size),
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                pipeline.as_str().into(),
                queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for (level, delay) in settings.retry_delays_ms.iter().enumerate() {
            // Expired messages dead-letter back through the pipeline exchange to
            // the stage queue: the delay needs no timer in any process.
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), i64_arg(*delay));
            args.insert("x-dead-letter-exchange".into(), long(&pipeline));
            args.insert("x-dead-letter-routing-key".into(), long(&queue));
            channel
                .queue_declare(names.retry_queue(stage, level).into(), durable_queue, args)
                .await?;
        }
    }

    channel
        .queue_declare(
            names.dead_letter_queue().into(),
            durable_queue,
            FieldTable::default(),
        )
        .await?;
    let status = names.status_queue();
    channel
        .queue_declare(status.as_str().into(), durable_queue, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            status.into(),
            names.events_exchange().into(),
            STATUS_BINDING_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Deletes everything `declare_topology` made for `settings` (tests and
/// tear-down of throwaway stacks). Missing objects are not an error.
pub async fn delete_topology(channel: &Channel, settings: &BrokerSettings) -> Result<(), BrokerError> {
    let names = Names::new(settings.prefix.clone());
    let mut queues = Vec::new();
    for stage in Stage::ALL {
        queues.push(names.stage_queue(stage));
        for level in 0..settings.retry_delays_ms.len() {
            queues.push(names.retry_queue(stage, level));
        }
    }
    queues.push(names.dead_letter_queue());
    queues.push(names.status_queue());
    for q in queues {
        // Deleting a missing queue is a no-op in RabbitMQ 3.x.
        channel
            .queue_delete(ShortString::from(q), QueueDeleteOptions::default())
            .await?;
    }
    for ex in [
        names.pipeline_exchange(),
        names.events_exchange(),
        names.control_exchange(),
    ] {
        channel
            .exchange_delete(ShortString::from(ex), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = Names::new("atelier");
        assert_eq!(n.pipeline_exchange(), "atelier.pipeline");
        assert_eq!(n.stage_queue(Stage::Analysis), "atelier.analysis");
        assert_eq!(n.stage_queue(Stage::PostProcessing), "atelier.postprocess");
        assert_eq!(n.retry_queue(Stage::Generation, 1), "atelier.generation.retry.1");
        assert_eq!(n.dead_letter_queue(), "atelier.dead");
        assert_eq!(n.events_exchange(), "atelier.events");
        assert_eq!(n.control_exchange(), "atelier.control");
        assert_eq!(n.status_queue(), "atelier.status.events");
    }
}
