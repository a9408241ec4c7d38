//! One stage message in, the next stage's message and the job's events out.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use atelier_broker::{Broker, Delivery, HandlerError, MessageMeta, StageHandler};
use atelier_core::job::JobId;
use atelier_core::keys;
use atelier_core::pipeline::{JobState, Stage};
use atelier_proto::v1::EventKind;
use atelier_stages::runner::now_ms;
use atelier_stages::{NoProgress, StageContext, run_stage};
use atelier_storage::BlobStore;

use crate::CancelledJobs;

/// Runs one stage for every message of that stage's queue.
#[derive(Debug)]
pub struct StageWorker {
    stage: Stage,
    ctx: StageContext,
    blobs: BlobStore,
    broker: Broker,
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
        broker: Broker,
        cancelled: Arc<CancelledJobs>,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        let name = format!("{}@{host}:{}", stage.as_str(), std::process::id());
        Self {
            stage,
            ctx,
            blobs,
            broker,
            cancelled,
            name,
        }
    }

    /// Whether the job was cancelled, through the broadcast or the marker blob.
    async fn is_cancelled(&self, id: &JobId) -> Result<bool, HandlerError> {
        if self.cancelled.contains(id) {
            return Ok(true);
        }
        let marker = format!("{}{}", keys::job_prefix(id), keys::CANCELLED);
        match self.blobs.size(&marker).await {
            Ok(found) => Ok(found.is_some()),
            Err(e) => Err(HandlerError::Transient(format!(
                "checking the cancel marker: {e}"
            ))),
        }
    }

    async fn emit(
        &self,
        state: &JobState,
        kind: EventKind,
        attempt: u32,
        seconds: f64,
        error: Option<String>,
        with_state: bool,
    ) -> Result<(), HandlerError> {
        let event = atelier_proto::event(
            state.spec.id,
            kind,
            Some(self.stage),
            attempt,
            seconds,
            error,
            with_state.then_some(state),
            &self.name,
        );
        let key = atelier_proto::event_routing_key(&event);
        self.broker
            .publish_event(&key, &atelier_proto::encode_event(&event))
            .await
            .map_err(|e| HandlerError::Transient(format!("publishing the {key} event: {e}")))
    }

    async fn run(&self, d: &Delivery, mut state: JobState) -> Result<(), HandlerError> {
        let id = state.spec.id;
        let attempt = d.meta.attempt;
        if self.is_cancelled(&id).await? {
            tracing::info!(job = %id, stage = self.stage.as_str(), "job cancelled, stage skipped");
            return Ok(());
        }
        if self.stage == Stage::Analysis {
            state.times.queue_wait = now_ms().saturating_sub(state.spec.submitted_at_ms) as f64 / 1000.0;
        }
        self.emit(&state, EventKind::StageStarted, attempt, 0.0, None, false)
            .await?;
        let started = Instant::now();
        let blobs = self.blobs.scoped(keys::job_prefix(&id));
        if let Err(error) = run_stage(self.stage, &self.ctx, &blobs, &mut state, &NoProgress).await {
            let reason = error_chain(&error);
            if error.is_permanent() {
                return Err(HandlerError::Permanent(reason));
            }
            // Best effort: the retry itself is the runtime's and must not wait on this.
            let _ = self
                .emit(
                    &state,
                    EventKind::StageRetrying,
                    attempt,
                    0.0,
                    Some(reason.clone()),
                    false,
                )
                .await;
            return Err(HandlerError::Transient(reason));
        }
        let seconds = started.elapsed().as_secs_f64();
        match next_stage(self.stage) {
            Some(next) => {
                let meta = MessageMeta {
                    attempt: 1,
                    ..d.meta.clone()
                };
                let body = atelier_proto::encode_stage(next, &state);
                self.broker
                    .publish_stage(next, &body, &meta)
                    .await
                    .map_err(|e| HandlerError::Transient(format!("publishing to {}: {e}", next.as_str())))?;
                self.emit(&state, EventKind::StageFinished, attempt, seconds, None, false)
                    .await?;
            }
            None => {
                state.times.total = now_ms().saturating_sub(state.spec.submitted_at_ms) as f64 / 1000.0;
                self.emit(&state, EventKind::StageFinished, attempt, seconds, None, false)
                    .await?;
                self.emit(
                    &state,
                    EventKind::Completed,
                    attempt,
                    state.times.total,
                    None,
                    true,
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl StageHandler for StageWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        let (stage, state) = atelier_proto::decode_stage(&d.body)
            .map_err(|e| HandlerError::Permanent(format!("undecodable stage message: {e}")))?;
        if stage != self.stage {
            return Err(HandlerError::Permanent(format!(
                "message for stage {} arrived on the {} queue",
                stage.as_str(),
                self.stage.as_str()
            )));
        }
        self.run(d, state).await
    }

    async fn dead(&self, d: &Delivery, reason: &str) {
        let Ok(id) = d.meta.job_id.parse::<JobId>() else {
            tracing::error!(job = %d.meta.job_id, reason, "dead message without a valid job id");
            return;
        };
        tracing::warn!(job = %id, stage = self.stage.as_str(), reason, "job failed");
        let event = atelier_proto::event(
            id,
            EventKind::Failed,
            Some(self.stage),
            d.meta.attempt,
            0.0,
            Some(reason.to_string()),
            None,
            &self.name,
        );
        let key = atelier_proto::event_routing_key(&event);
        if let Err(error) = self
            .broker
            .publish_event(&key, &atelier_proto::encode_event(&event))
            .await
        {
            tracing::error!(job = %id, %error, "could not publish the failure event");
        }
    }
}

/// The stage after `stage`, or `None` after the last.
pub fn next_stage(stage: Stage) -> Option<Stage> {
    let i = Stage::ALL.iter().position(|s| *s == stage)?;
    Stage::ALL.get(i + 1).copied()
}

/// `error: cause: cause`, so the job's failure reason says what really happened.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some errors already print their cause; don't say it twice.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_chain_in_order() {
        assert_eq!(next_stage(Stage::Analysis), Some(Stage::Generation));
        assert_eq!(next_stage(Stage::Upscaling), Some(Stage::PostProcessing));
        assert_eq!(next_stage(Stage::PostProcessing), None);
    }
}
