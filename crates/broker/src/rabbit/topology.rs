//! The idempotent declaration of every exchange, queue and binding.
//!
//! Every service declares the whole topology at start (and after each
//! reconnect), so no start order is needed. Declarations are idempotent only
//! while arguments stay identical, so every argument here derives from settings
//! that all services share.
//!
//! ```text
//! {p}.pipeline (direct) ──{p}.analysis──▶ {p}.analysis          bounded: new jobs (reject-publish)
//!                       ──{p}.analysis.resume──▶ {p}.analysis.resume   accepted work, unbounded
//!                       ──{p}.generation──▶ {p}.generation   (and upscaling, postprocess)
//! {p}.<stage>.delay.N   TTL = retry delay N, dead-letters into the stage's resume queue
//! {p}.dead              given-up messages, with reason, origin and attempt headers
//! {p}.events (topic)  ──job.#──▶ {p}.status.events (durable); others bind exclusive queues
//! {p}.control (fanout) ─▶ one exclusive queue per worker (cancels)
//! ```

use atelier_core::pipeline::Stage;
use atelier_core::settings::BrokerSettings;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::error::BrokerError;
use crate::meta::MAX_PRIORITY;
use crate::names::{EventFilter, Names, is_bounded};

fn long(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn i64_arg(v: u64) -> AMQPValue {
    AMQPValue::LongLongInt(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Arguments of a stage queue. Only the first stage's intake is bounded: work
/// the system already accepted goes to queues without a bound, where refusing
/// it would fail (or, through dead-lettering, silently drop) jobs instead of
/// pushing back on new ones.
fn stage_queue_args(bounded: bool, max_queue_size: u32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(MAX_PRIORITY));
    if bounded {
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
        let resume = names.resume_queue(stage);
        let mut queues = vec![(queue.clone(), is_bounded(stage))];
        if resume != queue {
            queues.push((resume.clone(), false));
        }
        for (name, bounded) in queues {
            channel
                .queue_declare(
                    name.as_str().into(),
                    durable_queue,
                    stage_queue_args(bounded, max_queue_size),
                )
                .await?;
            channel
                .queue_bind(
                    name.as_str().into(),
                    pipeline.as_str().into(),
                    name.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        for (level, delay) in settings.retry_delays_ms.iter().enumerate() {
            // Expired messages dead-letter back through the pipeline exchange to
            // the resume queue: the delay needs no timer in any process, and a
            // full intake can never drop a retry.
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), i64_arg(*delay));
            args.insert("x-dead-letter-exchange".into(), long(&pipeline));
            args.insert("x-dead-letter-routing-key".into(), long(&resume));
            channel
                .queue_declare(names.delay_queue(stage, level).into(), durable_queue, args)
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
            EventFilter::AllJobs.binding_key().into(),
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
        if names.resume_queue(stage) != names.stage_queue(stage) {
            queues.push(names.resume_queue(stage));
        }
        for level in 0..settings.retry_delays_ms.len() {
            queues.push(names.delay_queue(stage, level));
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
