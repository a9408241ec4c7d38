//! Stage handlers in domain terms, and their adapter to the broker's runtime.

use std::sync::Arc;

use async_trait::async_trait;
use atelier_broker::{GaveUp, HandlerError, MessageMeta, StageHandler};
use atelier_core::event::JobFailure;
use atelier_core::job::JobId;
use atelier_core::pipeline::{JobState, Stage};
use atelier_proto::v1;

/// The work of one stage on one job.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs the stage on `state`. The handler forwards the job and emits its
    /// events itself; the message is settled once this returns.
    async fn handle(&self, state: JobState, meta: &MessageMeta) -> Result<(), HandlerError<JobFailure>>;

    /// The job's message was given up (it is in the dead-letter queue): fail
    /// the job with `failure`. `job` is `None` when even the id is unreadable.
    async fn dead(&self, job: Option<JobId>, meta: &MessageMeta, failure: JobFailure);
}

/// Decodes stage messages for a [`JobHandler`] and refuses those it must not act on.
pub(crate) struct StageAdapter<H: ?Sized> {
    stage: Stage,
    inner: Arc<H>,
}

impl<H: ?Sized> StageAdapter<H> {
    pub(crate) fn new(stage: Stage, inner: Arc<H>) -> Self {
        Self { stage, inner }
    }
}

#[async_trait]
impl<H: JobHandler + ?Sized> StageHandler<v1::StageMessage> for StageAdapter<H> {
    type Error = JobFailure;

    async fn handle(
        &self,
        message: v1::StageMessage,
        meta: &MessageMeta,
    ) -> Result<(), HandlerError<JobFailure>> {
        let (stage, state) = atelier_proto::job_state(&message)
            .map_err(|e| HandlerError::Permanent(JobFailure::stage(format!("invalid stage message: {e}"))))?;
        if stage != self.stage {
            return Err(HandlerError::Permanent(JobFailure::stage(format!(
                "a message for stage {stage} arrived on the {} queue",
                self.stage
            ))));
        }
        self.inner.handle(state, meta).await
    }

    async fn dead(&self, meta: &MessageMeta, why: GaveUp<JobFailure>) {
        let failure = match why {
            GaveUp::Permanent(failure) => failure,
            GaveUp::Exhausted { attempts, last } => JobFailure {
                message: format!("failed after {attempts} attempts: {}", last.message),
                ..last
            },
            GaveUp::Runtime(reason) => JobFailure::stage(reason),
        };
        self.inner.dead(meta.job_id.parse().ok(), meta, failure).await;
    }
}
