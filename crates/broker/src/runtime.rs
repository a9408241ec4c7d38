//! The stage consumer runtime over [`Deliveries`]: bounded concurrency, ack
//! after success, retries and dead-lettering by the handler's verdict, a panic
//! counted as a failed attempt, and graceful shutdown.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use atelier_core::pipeline::Stage;
use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::pipeline::{Delivery, Pipeline, Retried};
use crate::{BrokerError, HandlerError, MessageMeta};

/// Why a message was given up; handed to [`StageHandler::dead`] once it is in
/// the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaveUp<E> {
    /// The handler said retrying cannot help.
    Permanent(E),
    /// Transient failures until the attempts ran out; the last one.
    Exhausted { attempts: u32, last: E },
    /// The runtime gave up before or around the handler: the message did not
    /// decode, crashed its workers, or made the handler panic every time.
    Runtime(String),
}

impl<E: fmt::Display> fmt::Display for GaveUp<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Permanent(e) => e.fmt(f),
            Self::Exhausted { attempts, last } => write!(f, "failed after {attempts} attempts: {last}"),
            Self::Runtime(reason) => f.write_str(reason),
        }
    }
}

/// The work of one stage. The handler publishes the next stage and its events
/// itself; the runtime settles only once `handle` returned, so a crash in the
/// middle means redelivery, never loss.
#[async_trait]
pub trait StageHandler<M>: Send + Sync + 'static {
    /// The handler's description of a failure.
    type Error: fmt::Display + Send + Sync + 'static;

    /// Processes one message.
    async fn handle(&self, message: M, meta: &MessageMeta) -> Result<(), HandlerError<Self::Error>>;

    /// Called once a message is given up, after it is safely in the dead-letter
    /// queue, so the worker can fail the job with the reason.
    async fn dead(&self, meta: &MessageMeta, why: GaveUp<Self::Error>);
}

/// Consumes `stage` with up to `concurrency` handlers at once until `shutdown`
/// fires; then stops taking deliveries, hands back any prefetched but unstarted
/// ones, waits for running handlers and returns. Errors only when consuming
/// cannot start.
pub async fn run_stage<M, H>(
    pipeline: &Pipeline<M>,
    stage: Stage,
    concurrency: u16,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> Result<(), BrokerError>
where
    M: prost::Message + Default + 'static,
    H: StageHandler<M> + ?Sized,
{
    let concurrency = concurrency.max(1);
    let mut deliveries = pipeline.consume(stage, concurrency).await?;
    let permits = Arc::new(Semaphore::new(usize::from(concurrency)));
    let tasks = TaskTracker::new();
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
            next = deliveries.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                tasks.spawn(process(handler.clone(), delivery, permit));
            }
            Some(Err(rejected)) => {
                let handler = handler.clone();
                tasks.spawn(async move {
                    handler
                        .dead(&rejected.meta, GaveUp::Runtime(rejected.reason))
                        .await;
                    drop(permit);
                });
            }
            None => break,
        }
    }
    // No more deliveries; the running handlers still settle theirs on the
    // consumer's channel, so it closes only after them.
    deliveries.stop().await;
    tasks.close();
    tasks.wait().await;
    deliveries.close().await;
    Ok(())
}

/// Runs one delivery to its outcome and settles it; holds `permit` throughout.
async fn process<M, H>(handler: Arc<H>, delivery: Delivery<M>, permit: OwnedSemaphorePermit)
where
    H: StageHandler<M> + ?Sized,
{
    let (message, ticket) = delivery.into_parts();
    let meta = ticket.meta().clone();
    let result = AssertUnwindSafe(handler.handle(message, &meta))
        .catch_unwind()
        .await;
    match result {
        Ok(Ok(())) => ticket.ack().await,
        Ok(Err(HandlerError::Permanent(error))) => {
            let reason = error.to_string();
            if ticket.dead_letter(&reason).await.is_ok() {
                handler.dead(&meta, GaveUp::Permanent(error)).await;
            }
        }
        Ok(Err(HandlerError::Transient(error))) => match ticket.retry(&error.to_string()).await {
            Ok(Retried::Scheduled(_)) => {}
            Ok(Retried::GaveUp(_)) => {
                let why = GaveUp::Exhausted {
                    attempts: meta.attempt,
                    last: error,
                };
                handler.dead(&meta, why).await;
            }
            Err(e) => warn!(job_id = %meta.job_id, error = %e, "could not schedule a retry"),
        },
        Err(_) => {
            // A panic is a failed attempt: retried, and given up like any other.
            let reason = "the stage handler panicked";
            match ticket.retry(reason).await {
                Ok(Retried::GaveUp(why)) => handler.dead(&meta, GaveUp::Runtime(why)).await,
                Ok(Retried::Scheduled(_)) => {}
                Err(e) => warn!(job_id = %meta.job_id, error = %e, "could not schedule a retry"),
            }
        }
    }
    drop(permit);
}
