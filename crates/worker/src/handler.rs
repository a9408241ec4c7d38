//! One stage message in: the stage run on the job's state, the job forwarded to
//! the next stage and its events emitted, all before the message is settled.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use atelier_broker::MessageMeta;
use atelier_bus::{HandlerError, JobBus, JobHandler};
use atelier_core::clock::now_ms;
use atelier_core::event::{EventKind, JobEvent, JobFailure};
use atelier_core::job::JobId;
use atelier_core::keys;
use atelier_core::pipeline::{JobState, Stage};
use atelier_stages::{NoProgress, StageContext, run_stage};
use atelier_storage::BlobStore;

use crate::CancelledJobs;

/// Runs one stage for every message of that stage's queue.
#[derive(Debug)]
pub struct StageWorker {
    stage: Stage,
    ctx: StageContext,
    blobs: BlobStore,
    bus: JobBus,
    cancelled: Arc<CancelledJobs>,
    /// Names this process in events (`analysis@host:pid`).
    name: String,
}

impl StageWorker {
    /// A worker for `stage` over the given dependencies.
    pub fn new(
        stage: Stage,
        ctx: StageContext,
        blobs: BlobStore,
        bus: JobBus,
        cancelled: Arc<CancelledJobs>,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        let name = format!("{}@{host}:{}", stage.as_str(), std::process::id());
        Self {
            stage,
            ctx,
            blobs,
            bus,
            cancelled,
            name,
        }
    }

    /// Whether the job was cancelled, through the broadcast or the marker blob.
    async fn is_cancelled(&self, id: &JobId) -> Result<bool, HandlerError<JobFailure>> {
        if self.cancelled.contains(id) {
            return Ok(true);
        }
        match self.blobs.size(&keys::cancel_marker(id)).await {
            Ok(found) => Ok(found.is_some()),
            Err(e) => Err(HandlerError::Transient(JobFailure::stage(format!(
                "checking the cancel marker: {}",
                atelier_core::error::error_chain(&e)
            )))),
        }
    }

    fn event(&self, id: JobId, kind: EventKind, attempt: u32) -> JobEvent {
        JobEvent::new(id, kind, &self.name).in_stage(self.stage, attempt)
    }

    async fn emit(&self, event: JobEvent) -> Result<(), HandlerError<JobFailure>> {
        self.bus.emit(&event).await.map_err(|e| {
            HandlerError::Transient(JobFailure::stage(format!(
                "publishing the {} event: {}",
                event.kind,
                atelier_core::error::error_chain(&e)
            )))
        })
    }
}

#[async_trait]
impl JobHandler for StageWorker {
    async fn handle(&self, mut state: JobState, meta: &MessageMeta) -> Result<(), HandlerError<JobFailure>> {
        let id = state.spec.id;
        let attempt = meta.attempt;
        if self.is_cancelled(&id).await? {
            tracing::info!(job = %id, stage = self.stage.as_str(), "job cancelled, stage skipped");
            return Ok(());
        }
        if self.stage == Stage::Analysis {
            state.times.queue_wait = now_ms().saturating_sub(state.spec.submitted_at_ms) as f64 / 1000.0;
        }
        self.emit(self.event(id, EventKind::StageStarted, attempt))
            .await?;
        let started = Instant::now();
        let blobs = self.blobs.scoped(keys::job_prefix(&id));
        if let Err(error) = run_stage(self.stage, &self.ctx, &blobs, &mut state, &NoProgress).await {
            let failure = error.failure();
            if error.is_permanent() {
                return Err(HandlerError::Permanent(failure));
            }
            // Best effort: the retry itself is the runtime's and must not wait on this.
            let _ = self
                .emit(
                    self.event(id, EventKind::StageRetrying, attempt)
                        .failure(failure.clone()),
                )
                .await;
            return Err(HandlerError::Transient(failure));
        }
        let seconds = started.elapsed().as_secs_f64();
        match self.stage.next() {
            Some(next) => {
                // The finish is published (confirmed) before the job is handed
                // on, so the status feed holds it before any event of the next
                // stage: a watcher replaying a completed job sees every stage.
                let finished = self.event(id, EventKind::StageFinished, attempt).seconds(seconds);
                self.emit(finished.state(state.clone())).await?;
                self.bus.forward(next, &state, meta).await.map_err(|e| {
                    HandlerError::Transient(JobFailure::stage(format!(
                        "forwarding to {next}: {}",
                        atelier_core::error::error_chain(&e)
                    )))
                })?;
            }
            None => {
                state.times.total = now_ms().saturating_sub(state.spec.submitted_at_ms) as f64 / 1000.0;
                let finished = self.event(id, EventKind::StageFinished, attempt).seconds(seconds);
                self.emit(finished.state(state.clone())).await?;
                let total = state.times.total;
                self.emit(
                    JobEvent::new(id, EventKind::Completed, &self.name)
                        .seconds(total)
                        .state(state),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn dead(&self, job: Option<JobId>, meta: &MessageMeta, failure: JobFailure) {
        let Some(id) = job else {
            tracing::error!(job = %meta.job_id, %failure, "dead message without a valid job id");
            return;
        };
        tracing::warn!(job = %id, stage = self.stage.as_str(), %failure, "job failed");
        let event = self.event(id, EventKind::Failed, meta.attempt).failure(failure);
        if let Err(error) = self.bus.emit(&event).await {
            tracing::error!(job = %id, %error, "could not publish the failure event");
        }
    }
}
