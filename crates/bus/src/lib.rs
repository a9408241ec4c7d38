//! The job bus: the one API the gateway, the stage workers and the status
//! service speak, in domain types (`JobState`, `JobEvent`, `JobId`).
//!
//! Submit a job, run a stage over its queue, emit and subscribe to a job's
//! events, broadcast a cancel, inspect and replay dead letters. Under it sits a
//! transport from `atelier-broker` (RabbitMQ for the distributed stack, in
//! process for `atelier serve`); encoding, routing keys, headers and decoding
//! are derived here and there from typed values, never spelled by callers.

mod feeds;
mod handler;

use std::sync::Arc;

use atelier_broker::{
    Admission, Broker, ControlTopic, DeadLetter, EventKey, EventTopic, InProcess, Origin, Pipeline,
    QueueStats, RetryPolicy, Transport,
};
use atelier_core::event::JobEvent;
use atelier_core::job::JobId;
use atelier_core::pipeline::{JobState, Stage};
use atelier_core::settings::Settings;
use atelier_proto::v1;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use atelier_broker::{BrokerError, HandlerError, MessageMeta, QueueStats as StageDepth, Received};
pub use feeds::{CancelFeed, JobEvents, StatusEvent, StatusEvents};
pub use handler::JobHandler;

/// The pipeline's bus over one transport. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobBus {
    transport: Arc<dyn Transport>,
    stages: Pipeline<v1::StageMessage>,
    events: EventTopic<v1::JobEvent>,
    control: ControlTopic<v1::CancelJob>,
}

/// A dead letter, read for an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadJob {
    /// Identifies the letter for replay or removal.
    pub id: String,
    /// The job it belonged to, when its headers say.
    pub job: Option<JobId>,
    pub origin: Option<Origin>,
    pub reason: String,
    /// The attempt it was given up on.
    pub attempt: u32,
    pub at_ms: u64,
    pub headers: std::collections::BTreeMap<String, String>,
}

impl DeadJob {
    /// The stage that gave the message up (`None` for a dead event).
    pub fn stage(&self) -> Option<Stage> {
        match self.origin {
            Some(Origin::Stage(stage)) => Some(stage),
            _ => None,
        }
    }

    /// Where the message came from, as operators read it: the stage's name,
    /// `events` for the status service's feed, `unknown` without headers.
    pub fn origin_name(&self) -> &'static str {
        match self.origin {
            Some(Origin::Stage(stage)) => stage.as_str(),
            Some(Origin::StatusEvents) => "events",
            None => "unknown",
        }
    }
}

impl From<DeadLetter> for DeadJob {
    fn from(d: DeadLetter) -> Self {
        Self {
            job: d.meta.job_id.parse().ok(),
            attempt: d.meta.attempt,
            id: d.id,
            origin: d.origin,
            reason: d.reason,
            at_ms: d.at_ms,
            headers: d.headers,
        }
    }
}

impl JobBus {
    /// A bus over `transport`, retrying by `policy`.
    pub fn new(transport: Arc<dyn Transport>, policy: RetryPolicy) -> Self {
        Self {
            stages: Pipeline::new(transport.clone(), policy),
            events: EventTopic::new(transport.clone()),
            control: ControlTopic::new(transport.clone()),
            transport,
        }
    }

    /// The distributed stack's bus: RabbitMQ, connection named `name`. Fails
    /// when RabbitMQ cannot be reached now, so a misconfigured service stops at
    /// start.
    pub async fn rabbitmq(settings: &Settings, name: &str) -> Result<Self, BrokerError> {
        let policy = RetryPolicy::from_settings(&settings.broker)?;
        let broker = Broker::connect(settings.broker.clone(), settings.pipeline.max_queue_size, name).await?;
        Ok(Self::new(Arc::new(broker), policy))
    }

    /// `atelier serve`'s bus: queues in this process.
    pub fn in_process(settings: &Settings) -> Result<Self, BrokerError> {
        let policy = RetryPolicy::from_settings(&settings.broker)?;
        Ok(Self::new(
            Arc::new(InProcess::new(settings.pipeline.max_queue_size)),
            policy,
        ))
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Puts a new job into the first stage. `QueueFull` when the system holds
    /// all the jobs it may; the returned metadata carries the job's trace.
    pub async fn submit(
        &self,
        state: &JobState,
        traceparent: Option<String>,
    ) -> Result<MessageMeta, BrokerError> {
        let meta = first_meta(state, traceparent);
        self.stages
            .publish(
                Stage::Analysis,
                Admission::New,
                &atelier_proto::stage_message(Stage::Analysis, state),
                &meta,
            )
            .await?;
        Ok(meta)
    }

    /// Puts an accepted job back into `stage` (a restart, the reaper, a replay):
    /// never refused by the first stage's bound.
    pub async fn resume(
        &self,
        stage: Stage,
        state: &JobState,
        traceparent: Option<String>,
    ) -> Result<(), BrokerError> {
        let meta = first_meta(state, traceparent);
        self.publish_accepted(stage, state, &meta).await
    }

    /// Hands a job on to `next` after the stage that received `from` finished:
    /// attempt 1, same job, priority and trace.
    pub async fn forward(
        &self,
        next: Stage,
        state: &JobState,
        from: &MessageMeta,
    ) -> Result<(), BrokerError> {
        // The next stage is a child of the span forwarding it (the stage's own,
        // when tracing is set up), else a fresh span id in the same trace.
        let traceparent = atelier_telemetry::current_traceparent()
            .filter(|tp| atelier_broker::is_valid_traceparent(tp))
            .unwrap_or_else(|| atelier_broker::child_traceparent(from.traceparent.as_deref()));
        let meta = MessageMeta {
            attempt: 1,
            traceparent: Some(traceparent),
            ..from.clone()
        };
        self.publish_accepted(next, state, &meta).await
    }

    async fn publish_accepted(
        &self,
        stage: Stage,
        state: &JobState,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.stages
            .publish(
                stage,
                Admission::Accepted,
                &atelier_proto::stage_message(stage, state),
                meta,
            )
            .await
    }

    /// Publishes `event`, confirmed, carrying the current span's trace context
    /// (so its recording joins the job's trace).
    pub async fn emit(&self, event: &JobEvent) -> Result<(), BrokerError> {
        let job_id = event.job.to_string();
        let key = EventKey {
            job_id: &job_id,
            kind: event.kind,
        };
        let mut wire = v1::JobEvent::from(event);
        wire.traceparent = atelier_telemetry::current_traceparent();
        self.events.publish(key, &wire).await
    }

    /// Every job's events from now on (`None`), or one job's.
    pub async fn subscribe(&self, job: Option<JobId>) -> Result<JobEvents, BrokerError> {
        let filter = match job {
            Some(id) => atelier_broker::EventFilter::Job(id.to_string()),
            None => atelier_broker::EventFilter::AllJobs,
        };
        Ok(JobEvents::new(self.events.subscribe(filter).await?))
    }

    /// The status service's durable feed of every event.
    pub async fn subscribe_status(&self) -> Result<StatusEvents, BrokerError> {
        Ok(StatusEvents::new(self.events.subscribe_status().await?))
    }

    /// Tells every worker to skip the job's remaining stages.
    pub async fn cancel(&self, id: JobId) -> Result<(), BrokerError> {
        self.control.broadcast(&atelier_proto::cancel_job(id)).await
    }

    /// Cancel broadcasts from now on.
    pub async fn cancels(&self) -> Result<CancelFeed, BrokerError> {
        Ok(CancelFeed::new(self.control.subscribe().await?))
    }

    /// Runs `handler` on `stage`'s queue with up to `concurrency` jobs at once
    /// until `shutdown`, then drains (see `atelier_broker::run_stage`).
    pub async fn run_stage<H: JobHandler>(
        &self,
        stage: Stage,
        concurrency: u16,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), BrokerError> {
        let adapter = Arc::new(handler::StageAdapter::new(stage, handler));
        atelier_broker::run_stage(&self.stages, stage, concurrency, adapter, shutdown).await
    }

    /// Depth and consumers of `stage`.
    pub async fn queue_stats(&self, stage: Stage) -> Result<QueueStats, BrokerError> {
        self.transport.queue_stats(stage).await
    }

    /// Messages in the dead-letter queue.
    pub async fn dead_letter_count(&self) -> Result<u32, BrokerError> {
        self.transport.dead_letter_count().await
    }

    /// Up to `limit` dead letters, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadJob>, BrokerError> {
        Ok(self
            .transport
            .dead_letters(limit)
            .await?
            .into_iter()
            .map(DeadJob::from)
            .collect())
    }

    /// Puts dead letter `id` (the oldest when `None`) back where it came from,
    /// with its attempts reset; `None` when there is no such letter.
    pub async fn replay_dead_letter(&self, id: Option<&str>) -> Result<Option<DeadJob>, BrokerError> {
        let Some(letter) = self.transport.take_dead_letter(id).await? else {
            return Ok(None);
        };
        let replayed = match letter.origin {
            Some(Origin::Stage(stage)) => {
                let meta = MessageMeta {
                    attempt: 1,
                    ..letter.meta.clone()
                };
                self.transport
                    .publish(stage, Admission::Accepted, letter.body.clone(), &meta)
                    .await
            }
            Some(Origin::StatusEvents) => self.republish_event(letter.body.clone()).await,
            None => Err(BrokerError::Config(format!(
                "dead letter {} has no origin to replay it to",
                letter.id
            ))),
        };
        if let Err(e) = replayed {
            // Put it back rather than lose it.
            let origin = letter.origin.unwrap_or(Origin::StatusEvents);
            self.transport
                .publish_dead(origin, letter.body.clone(), &letter.meta, &letter.reason)
                .await?;
            return Err(e);
        }
        Ok(Some(DeadJob::from(letter)))
    }

    /// Removes dead letter `id` without replaying it.
    pub async fn discard_dead_letter(&self, id: Option<&str>) -> Result<Option<DeadJob>, BrokerError> {
        Ok(self.transport.take_dead_letter(id).await?.map(DeadJob::from))
    }

    async fn republish_event(&self, body: Bytes) -> Result<(), BrokerError> {
        use prost::Message;
        let event = v1::JobEvent::decode(body)
            .ok()
            .and_then(|e| JobEvent::try_from(&e).ok())
            .ok_or_else(|| BrokerError::Config("the dead event does not decode".into()))?;
        self.emit(&event).await
    }

    /// Whether the transport can take messages now.
    pub fn is_connected(&self) -> bool {
        self.transport.is_connected()
    }

    /// Closes the transport.
    pub async fn close(&self) {
        self.transport.close().await;
    }
}

/// Metadata of a job's first message into a stage: in the given trace, else
/// the current span's (the gateway's request), else a new one.
fn first_meta(state: &JobState, traceparent: Option<String>) -> MessageMeta {
    let traceparent = traceparent
        .or_else(atelier_telemetry::current_traceparent)
        .filter(|tp| atelier_broker::is_valid_traceparent(tp))
        .unwrap_or_else(atelier_broker::new_traceparent);
    MessageMeta {
        job_id: state.spec.id.to_string(),
        attempt: 1,
        priority: state.spec.request.effective_priority(),
        traceparent: Some(traceparent),
        deadline_ms: None,
    }
}
