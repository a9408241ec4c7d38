//! The stage consumer runtime: bounded concurrency, ack after success, retries
//! through delay queues, dead-lettering, crash-redelivery accounting, resume
//! after reconnect and graceful shutdown.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use atelier_core::pipeline::Stage;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connection::{Broker, Live};
use crate::error::{BrokerError, HandlerError};
use crate::meta::MessageMeta;

/// One stage message as a handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub body: Bytes,
    pub meta: MessageMeta,
    /// Always `false` for handlers: the runtime turns crash redeliveries into a
    /// new attempt before anyone runs them.
    pub redelivered: bool,
}

/// The work of one stage. The handler publishes the next stage and events
/// itself; the runtime acks only once `handle` returned `Ok`, so a crash in the
/// middle means redelivery, never loss.
#[async_trait]
pub trait StageHandler: Send + Sync {
    /// Processes one message.
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError>;
    /// Called once when the message is given up (permanent error, attempts
    /// exhausted), after it is safely in the dead-letter queue, so the worker
    /// can mark the job failed with `reason`.
    async fn dead(&self, d: &Delivery, reason: &str);
}

/// What to tell RabbitMQ about a delivery once the runtime is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ack,
    /// Publishing its retry or dead letter failed: put it back rather than lose it.
    Requeue,
}

/// Why a consume session ended.
enum SessionEnd {
    Shutdown,
    Lost,
}

/// Everything a delivery task needs.
#[derive(Clone)]
struct Ctx {
    broker: Broker,
    stage: Stage,
    handler: Arc<dyn StageHandler>,
}

impl Broker {
    /// Consumes `stage`'s queue with up to `concurrency` handlers at once until
    /// `shutdown` fires; then stops taking deliveries, hands back any prefetched
    /// but unstarted ones, waits for running handlers and returns. Survives
    /// connection loss (resumes after reconnect). Errors only when the broker
    /// itself is closed.
    pub async fn run_stage_consumer(
        &self,
        stage: Stage,
        concurrency: u16,
        handler: Arc<dyn StageHandler>,
        shutdown: CancellationToken,
    ) -> Result<(), BrokerError> {
        let concurrency = concurrency.max(1);
        // Gates handlers across sessions: after a reconnect the old session's
        // handlers may still run while the new channel's prefetch fills up.
        let permits = Arc::new(Semaphore::new(usize::from(concurrency)));
        let tasks = TaskTracker::new();
        let ctx = Ctx {
            broker: self.clone(),
            stage,
            handler,
        };
        let initial = Duration::from_millis(self.settings().reconnect_initial_ms.max(1));
        let max_backoff = Duration::from_millis(self.settings().reconnect_max_ms.max(1));
        let mut backoff = initial;
        let result = loop {
            let live = tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                live = self.live_wait() => match live {
                    Ok(live) => live,
                    Err(e) => break Err(e),
                },
            };
            match consume_session(&ctx, &live, concurrency, &permits, &tasks, &shutdown).await {
                Ok(SessionEnd::Shutdown) => break Ok(()),
                Ok(SessionEnd::Lost) => {
                    backoff = initial;
                    info!(stage = stage.as_str(), "consumer lost its channel, resuming");
                }
                Err(e) => {
                    // E.g. the queue was deleted under us: back off instead of spinning.
                    warn!(stage = stage.as_str(), error = %e, ?backoff, "consumer setup failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        };
        tasks.close();
        tasks.wait().await;
        result
    }
}

/// One channel's consumer, until shutdown or channel loss.
async fn consume_session(
    ctx: &Ctx,
    live: &Live,
    concurrency: u16,
    permits: &Arc<Semaphore>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, BrokerError> {
    let ch = live.conn.create_channel().await?;
    ch.basic_qos(concurrency, BasicQosOptions::default()).await?;
    let queue = ctx.broker.names().stage_queue(ctx.stage);
    let tag = format!(
        "{}.{}.{:08x}",
        ctx.broker.inner.name,
        ctx.stage.as_str(),
        rand::random::<u32>()
    );
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    debug!(%queue, %tag, "consuming");
    loop {
        // A permit first, so a delivery is only taken when a handler can run it.
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(d)) => {
                tasks.spawn(process(ctx.clone(), d, permit));
            }
            Some(Err(e)) => {
                debug!(error = %e, "consumer stream error");
                return Ok(SessionEnd::Lost);
            }
            None => return Ok(SessionEnd::Lost),
        }
    }
    stop_session(ctx, &ch, consumer, &tag, tasks).await;
    Ok(SessionEnd::Shutdown)
}

/// Graceful end: cancel the consumer so RabbitMQ sends nothing more, hand back
/// deliveries already prefetched but not started, wait for running handlers
/// (their acks need this channel), then close it.
async fn stop_session(ctx: &Ctx, ch: &Channel, mut consumer: Consumer, tag: &str, tasks: &TaskTracker) {
    if let Err(e) = ch.basic_cancel(tag.into(), BasicCancelOptions::default()).await {
        debug!(error = %e, "basic.cancel failed");
    } else {
        let deadline = Duration::from_millis(ctx.broker.settings().publish_timeout_ms);
        let drain = async {
            // After cancel-ok the stream yields what was buffered, then ends.
            while let Some(Ok(d)) = consumer.next().await {
                hand_back(ctx, d).await;
            }
        };
        let _ = tokio::time::timeout(deadline, drain).await;
    }
    tasks.close();
    tasks.wait().await;
    let _ = ch.close(200, "OK".into()).await;
}

/// Returns an unstarted prefetched delivery to its queue unchanged. A plain
/// requeue would mark it redelivered and so cost it an attempt it never had.
async fn hand_back(ctx: &Ctx, d: lapin::message::Delivery) {
    let meta = MessageMeta::from_properties(&d.properties);
    let outcome = if d.redelivered {
        // Still needs the crash accounting: leave that to the next consumer.
        Outcome::Requeue
    } else {
        match ctx.broker.publish_stage(ctx.stage, &d.data, &meta).await {
            Ok(()) => Outcome::Ack,
            Err(_) => Outcome::Requeue,
        }
    };
    settle(&d.acker, outcome).await;
}

/// Runs one delivery to its outcome and settles it; holds `permit` throughout.
async fn process(ctx: Ctx, d: lapin::message::Delivery, permit: OwnedSemaphorePermit) {
    let acker = d.acker.clone();
    let delivery = Delivery {
        meta: MessageMeta::from_properties(&d.properties),
        body: Bytes::from(d.data),
        redelivered: d.redelivered,
    };
    let outcome = decide(&ctx, delivery).await;
    settle(&acker, outcome).await;
    drop(permit);
}

async fn settle(acker: &lapin::Acker, outcome: Outcome) {
    let res = match outcome {
        Outcome::Ack => acker.ack(BasicAckOptions::default()).await,
        Outcome::Requeue => {
            acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await
        }
    };
    if let Err(e) = res {
        // The channel is gone; RabbitMQ requeues the message by itself.
        debug!(error = %e, ?outcome, "could not settle delivery");
    }
}

async fn decide(ctx: &Ctx, mut delivery: Delivery) -> Outcome {
    let max_attempts = ctx.broker.settings().max_attempts;
    if delivery.redelivered {
        // A worker died (or lost its connection) holding this message. Record
        // that as an attempt by republishing before running it, so a message
        // that kills workers reaches the dead-letter queue instead of looping.
        let next = delivery.meta.next_attempt();
        if next.attempt > max_attempts {
            let reason = format!(
                "redelivered after attempt {} of {max_attempts}: a worker died or lost its connection while handling it",
                delivery.meta.attempt
            );
            return dead_letter(ctx, &delivery, &reason).await;
        }
        match ctx.broker.publish_stage(ctx.stage, &delivery.body, &next).await {
            Ok(()) => return Outcome::Ack,
            Err(BrokerError::QueueFull) => {
                // The bounded first queue is full: run it here rather than
                // requeue it into a hot loop; the attempt is still counted.
                delivery.meta = next;
                delivery.redelivered = false;
            }
            Err(e) => {
                warn!(job_id = %delivery.meta.job_id, error = %e, "could not republish a redelivered message");
                return Outcome::Requeue;
            }
        }
    }

    let result = AssertUnwindSafe(ctx.handler.handle(&delivery))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(HandlerError::Transient("handler panicked".into())));
    match result {
        Ok(()) => Outcome::Ack,
        Err(HandlerError::Permanent(reason)) => dead_letter(ctx, &delivery, &reason).await,
        Err(HandlerError::Transient(msg)) => {
            let attempt = delivery.meta.attempt;
            if attempt.saturating_add(1) > max_attempts {
                let reason = format!("failed after {attempt} attempts: {msg}");
                return dead_letter(ctx, &delivery, &reason).await;
            }
            retry(ctx, &delivery, &msg).await
        }
    }
}

/// Sends the message to the delay queue of its level with attempt + 1.
async fn retry(ctx: &Ctx, delivery: &Delivery, msg: &str) -> Outcome {
    let settings = ctx.broker.settings();
    let levels = settings.retry_delays_ms.len().max(1);
    let level = usize::try_from(delivery.meta.attempt.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .min(levels - 1);
    let delay = settings.retry_delays_ms.get(level).copied().unwrap_or(1_000);
    let expiration = jittered_delay(delay, settings.retry_jitter);
    let next = delivery.meta.next_attempt();
    match ctx
        .broker
        .publish_retry(ctx.stage, level, &delivery.body, &next, expiration)
        .await
    {
        Ok(()) => {
            info!(
                job_id = %delivery.meta.job_id,
                stage = ctx.stage.as_str(),
                attempt = delivery.meta.attempt,
                delay_ms = expiration,
                error = msg,
                "transient failure, retrying"
            );
            Outcome::Ack
        }
        Err(e) => {
            warn!(job_id = %delivery.meta.job_id, error = %e, "could not schedule a retry");
            Outcome::Requeue
        }
    }
}

/// Per-message expiration for a retry. The delay queue's own TTL (= `delay`)
/// caps any per-message value above it, so jitter only shortens: the spread is
/// `[delay·(1 − jitter), delay]`, enough to keep retries from marching in step.
fn jittered_delay(delay: u64, jitter: f64) -> u64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if jitter == 0.0 || delay == 0 {
        return delay;
    }
    let factor = 1.0 - jitter * rand::random_range(0.0..1.0);
    // Precision loss is irrelevant at millisecond delays.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let ms = (delay as f64 * factor).round() as u64;
    ms.min(delay)
}

/// Parks the message in the dead-letter queue, then tells the handler.
async fn dead_letter(ctx: &Ctx, delivery: &Delivery, reason: &str) -> Outcome {
    match ctx
        .broker
        .publish_dead_letter(ctx.stage, &delivery.body, &delivery.meta, reason)
        .await
    {
        Ok(()) => {
            warn!(job_id = %delivery.meta.job_id, stage = ctx.stage.as_str(), reason, "dead-lettered");
            ctx.handler.dead(delivery, reason).await;
            Outcome::Ack
        }
        Err(e) => {
            warn!(job_id = %delivery.meta.job_id, error = %e, "could not dead-letter; requeueing");
            Outcome::Requeue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::jittered_delay;

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..1000 {
            let d = jittered_delay(1000, 0.2);
            assert!((800..=1000).contains(&d), "{d}");
        }
        assert_eq!(jittered_delay(1000, 0.0), 1000);
        assert_eq!(jittered_delay(1000, f64::NAN), 1000);
    }
}
