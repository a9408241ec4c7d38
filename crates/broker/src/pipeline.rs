//! Stage queues speaking a protobuf message type: publishing, and consuming as
//! a stream of typed deliveries that are acknowledged, retried with backoff or
//! dead-lettered. Decoding, crash-redelivery accounting and the retry rule live
//! here, once, for every transport.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use atelier_core::pipeline::Stage;
use bytes::Bytes;
use tracing::{info, warn};

use crate::names::Origin;
use crate::policy::{Retry, RetryPolicy};
use crate::transport::{Admission, RawConsumer, RawDelivery, Settle, Transport};
use crate::{BrokerError, MessageMeta};

/// The stage queues of one transport, carrying messages of type `M`.
pub struct Pipeline<M> {
    transport: Arc<dyn Transport>,
    policy: RetryPolicy,
    _message: PhantomData<fn() -> M>,
}

impl<M> Clone for Pipeline<M> {
    fn clone(&self) -> Self {
        Self {
            transport: self.transport.clone(),
            policy: self.policy.clone(),
            _message: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Pipeline<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("transport", &self.transport)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<M: prost::Message + Default + 'static> Pipeline<M> {
    pub fn new(transport: Arc<dyn Transport>, policy: RetryPolicy) -> Self {
        Self {
            transport,
            policy,
            _message: PhantomData,
        }
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Puts `message` in `stage`'s queue, confirmed.
    pub async fn publish(
        &self,
        stage: Stage,
        admission: Admission,
        message: &M,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.transport
            .publish(stage, admission, Bytes::from(message.encode_to_vec()), meta)
            .await
    }

    /// Consumes `stage` with at most `prefetch` unsettled deliveries.
    pub async fn consume(&self, stage: Stage, prefetch: u16) -> Result<Deliveries<M>, BrokerError> {
        Ok(Deliveries {
            raw: Some(self.transport.consume(stage, prefetch).await?),
            ctx: Arc::new(Ctx {
                transport: self.transport.clone(),
                policy: self.policy.clone(),
                stage,
            }),
            _message: PhantomData,
        })
    }
}

/// What settling a delivery needs.
#[derive(Debug)]
struct Ctx {
    transport: Arc<dyn Transport>,
    policy: RetryPolicy,
    stage: Stage,
}

/// A message the stream refused before anyone could handle it (undecodable, or
/// redelivered after crashing its workers too often). It is already in the
/// dead-letter queue; the consumer should fail its job with `reason`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub meta: MessageMeta,
    pub reason: String,
}

/// A stage's deliveries, decoded.
pub struct Deliveries<M> {
    raw: Option<Box<dyn RawConsumer>>,
    ctx: Arc<Ctx>,
    _message: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Deliveries<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliveries")
            .field("stage", &self.ctx.stage)
            .finish()
    }
}

impl<M: prost::Message + Default> Deliveries<M> {
    /// The next delivery, waiting for one; `None` once the transport is closed.
    pub async fn next(&mut self) -> Option<Result<Delivery<M>, Rejected>> {
        loop {
            let raw = self.raw.as_mut()?.next().await?;
            let ctx = self.ctx.clone();
            if let Some(item) = admit(&ctx, raw).await {
                return Some(item);
            }
        }
    }

    /// Stops taking deliveries; those prefetched but not handed out go back
    /// unchanged. Deliveries already handed out can still be settled.
    pub async fn stop(&mut self) {
        if let Some(raw) = self.raw.as_mut() {
            raw.stop().await;
        }
    }

    /// Stops and releases the consumer; settle its deliveries first.
    pub async fn close(mut self) {
        if let Some(raw) = self.raw.take() {
            raw.close().await;
        }
    }
}

/// Decodes a raw delivery, or deals with it: a crash redelivery is republished
/// as its next attempt (so a message that kills workers reaches the dead-letter
/// queue instead of looping), an undecodable one is dead-lettered.
async fn admit<M: prost::Message + Default>(
    ctx: &Arc<Ctx>,
    raw: RawDelivery,
) -> Option<Result<Delivery<M>, Rejected>> {
    if raw.redelivered {
        let attempt = raw.meta.attempt;
        if !ctx.policy.may_retry(attempt) {
            let reason = format!(
                "redelivered after attempt {attempt} of {}: a worker died or lost its connection while handling it",
                ctx.policy.max_attempts
            );
            return reject(ctx, raw, reason).await;
        }
        let next = raw.meta.next_attempt();
        match ctx
            .transport
            .publish(ctx.stage, Admission::Accepted, raw.body.clone(), &next)
            .await
        {
            Ok(()) => raw.settle.ack().await,
            Err(e) => {
                warn!(job_id = %raw.meta.job_id, error = %e, "could not republish a redelivered message");
                raw.settle.requeue().await;
            }
        }
        return None;
    }
    match M::decode(raw.body.clone()) {
        Ok(message) => Some(Ok(Delivery {
            message,
            ticket: Ticket {
                meta: raw.meta,
                body: raw.body,
                settle: Some(raw.settle),
                ctx: ctx.clone(),
            },
        })),
        Err(e) => {
            let reason = format!("undecodable {} message: {e}", ctx.stage.as_str());
            reject(ctx, raw, reason).await
        }
    }
}

async fn reject<M>(ctx: &Ctx, raw: RawDelivery, reason: String) -> Option<Result<Delivery<M>, Rejected>> {
    match ctx
        .transport
        .publish_dead(Origin::Stage(ctx.stage), raw.body, &raw.meta, &reason)
        .await
    {
        Ok(()) => {
            raw.settle.ack().await;
            warn!(job_id = %raw.meta.job_id, stage = ctx.stage.as_str(), %reason, "dead-lettered");
            Some(Err(Rejected {
                meta: raw.meta,
                reason,
            }))
        }
        Err(e) => {
            warn!(job_id = %raw.meta.job_id, error = %e, "could not dead-letter; requeueing");
            raw.settle.requeue().await;
            None
        }
    }
}

/// One decoded stage message. Settle it with [`Delivery::ack`],
/// [`Delivery::retry`] or [`Delivery::dead_letter`]; dropped unsettled, it
/// goes back to its queue as a redelivery, which costs it an attempt, as a
/// crash would.
#[derive(Debug)]
pub struct Delivery<M> {
    pub message: M,
    pub ticket: Ticket,
}

impl<M> Delivery<M> {
    pub fn meta(&self) -> &MessageMeta {
        &self.ticket.meta
    }

    /// The message and the ticket that settles it, apart.
    pub fn into_parts(self) -> (M, Ticket) {
        (self.message, self.ticket)
    }

    pub async fn ack(self) {
        self.ticket.ack().await;
    }

    pub async fn retry(self, reason: &str) -> Result<Retried, BrokerError> {
        self.ticket.retry(reason).await
    }

    pub async fn dead_letter(self, reason: &str) -> Result<(), BrokerError> {
        self.ticket.dead_letter(reason).await
    }
}

/// What [`Ticket::retry`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// The message comes back after the retry's delay, one attempt later.
    Scheduled(Retry),
    /// Attempts ran out: it is in the dead-letter queue with this reason.
    GaveUp(String),
}

/// The right to settle one delivery.
pub struct Ticket {
    meta: MessageMeta,
    body: Bytes,
    settle: Option<Box<dyn Settle>>,
    ctx: Arc<Ctx>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("stage", &self.ctx.stage)
            .field("meta", &self.meta)
            .finish()
    }
}

impl Ticket {
    pub fn meta(&self) -> &MessageMeta {
        &self.meta
    }

    pub fn stage(&self) -> Stage {
        self.ctx.stage
    }

    /// Done: the transport forgets the message.
    pub async fn ack(mut self) {
        if let Some(settle) = self.settle.take() {
            settle.ack().await;
        }
    }

    /// Tries the message again after the policy's delay for this attempt, or
    /// dead-letters it when attempts ran out. If the transport cannot take the
    /// retry, the message goes back as a redelivery (still one attempt spent).
    pub async fn retry(mut self, reason: &str) -> Result<Retried, BrokerError> {
        let attempt = self.meta.attempt;
        if !self.ctx.policy.may_retry(attempt) {
            let reason = format!("failed after {attempt} attempts: {reason}");
            self.dead_letter_inner(&reason).await?;
            return Ok(Retried::GaveUp(reason));
        }
        let retry = self.ctx.policy.retry_after(attempt);
        let next = self.meta.next_attempt();
        let published = self
            .ctx
            .transport
            .publish_retry(self.ctx.stage, retry, self.body.clone(), &next)
            .await;
        let settle = self.settle.take();
        match published {
            Ok(()) => {
                info!(
                    job_id = %self.meta.job_id,
                    stage = self.ctx.stage.as_str(),
                    attempt,
                    delay_ms = retry.delay_ms,
                    error = reason,
                    "transient failure, retrying"
                );
                if let Some(settle) = settle {
                    settle.ack().await;
                }
                Ok(Retried::Scheduled(retry))
            }
            Err(e) => {
                if let Some(settle) = settle {
                    settle.requeue().await;
                }
                Err(e)
            }
        }
    }

    /// Parks the message in the dead-letter queue with `reason`.
    pub async fn dead_letter(mut self, reason: &str) -> Result<(), BrokerError> {
        self.dead_letter_inner(reason).await
    }

    async fn dead_letter_inner(&mut self, reason: &str) -> Result<(), BrokerError> {
        let published = self
            .ctx
            .transport
            .publish_dead(
                Origin::Stage(self.ctx.stage),
                self.body.clone(),
                &self.meta,
                reason,
            )
            .await;
        let Some(settle) = self.settle.take() else {
            return published;
        };
        match published {
            Ok(()) => {
                warn!(job_id = %self.meta.job_id, stage = self.ctx.stage.as_str(), reason, "dead-lettered");
                settle.ack().await;
                Ok(())
            }
            Err(e) => {
                settle.requeue().await;
                Err(e)
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(settle) = self.settle.take() {
            settle.abandon();
        }
    }
}
