//! Stage handlers in domain terms, and their adapter to the broker's runtime.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use atelier_broker::{GaveUp, HandlerError, MessageMeta, StageHandler};
use atelier_core::event::JobFailure;
use atelier_core::job::JobId;
use atelier_core::pipeline::{JobState, Stage};
use atelier_proto::v1;
use atelier_telemetry::metrics::{QUEUE_MESSAGES, STAGE_DURATION, STAGE_MESSAGES};
use tracing::Instrument;
use tracing::field::Empty;

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
        let span = stage_span(self.stage, "process", meta);
        let _held = Held::new(self.stage);
        let started = Instant::now();
        let result = self.run(message, meta).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(()) => "ok",
            Err(HandlerError::Transient(_)) => "retry",
            Err(HandlerError::Permanent(_)) => "failed",
        };
        if let Err(HandlerError::Transient(failure) | HandlerError::Permanent(failure)) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("error", failure.message.as_str());
        }
        let stage = self.stage.as_str();
        metrics::histogram!(STAGE_DURATION, "stage" => stage).record(started.elapsed().as_secs_f64());
        metrics::counter!(STAGE_MESSAGES, "stage" => stage, "outcome" => outcome).increment(1);
        result
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
        let span = stage_span(self.stage, "give up", meta);
        self.inner
            .dead(meta.job_id.parse().ok(), meta, failure)
            .instrument(span)
            .await;
    }
}

impl<H: JobHandler + ?Sized> StageAdapter<H> {
    /// Decodes and checks the message, then hands it to the stage.
    async fn run(
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
}

/// The span of one stage message: a consumer span continuing the trace of the
/// hop that published it (the gateway's request or the previous stage), so
/// every stage of a job hangs under its request in one trace.
fn stage_span(stage: Stage, what: &str, meta: &MessageMeta) -> tracing::Span {
    let span = tracing::info_span!(
        "stage",
        otel.name = %format!("{} {what}", stage.as_str()),
        otel.kind = "consumer",
        otel.status_code = Empty,
        stage = stage.as_str(),
        job_id = %meta.job_id,
        attempt = meta.attempt,
        error = Empty,
        trace_id = Empty,
    );
    atelier_telemetry::continue_trace(&span, meta.traceparent.as_deref());
    span
}

/// Counts a message this worker holds unacknowledged in
/// `atelier_queue_messages{state="unacked"}` while it lives (a panicking
/// handler included): summed over workers, the queue's unacked messages, which
/// RabbitMQ does not tell an AMQP client.
struct Held(Stage);

impl Held {
    fn new(stage: Stage) -> Self {
        metrics::gauge!(QUEUE_MESSAGES, "stage" => stage.as_str(), "state" => "unacked").increment(1.0);
        Self(stage)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(QUEUE_MESSAGES, "stage" => self.0.as_str(), "state" => "unacked").decrement(1.0);
    }
}
