//! A stage's events reach the bus before its job reaches the next stage, so
//! the status feed never holds a later stage's events (or the job's end)
//! ahead of an earlier stage's finish.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_broker::{
    Admission, BrokerError, DeadLetter, EventKey, InProcess, MessageMeta, Origin, QueueStats, RawConsumer,
    RawSubscription, Retry, RetryPolicy, Topic, Transport,
};
use atelier_bus::{JobBus, JobHandler};
use atelier_core::event::EventKind;
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::keys;
use atelier_core::pipeline::{JobState, Stage};
use atelier_core::request::{GenerateRequest, InputImage, View};
use atelier_core::settings::Settings;
use atelier_fixtures::{GarmentShape, Scene};
use atelier_stages::StageContext;
use atelier_storage::BlobStore;
use atelier_worker::{CancelledJobs, StageWorker, build_providers};
use bytes::Bytes;

/// What went out, in order: `event:<kind>` or `stage:<stage>`.
#[derive(Debug)]
struct Recording {
    inner: InProcess,
    sent: Mutex<Vec<String>>,
}

impl Recording {
    fn note(&self, what: String) {
        self.sent.lock().expect("lock").push(what);
    }
}

#[async_trait]
impl Transport for Recording {
    async fn publish(
        &self,
        stage: Stage,
        admission: Admission,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.note(format!("stage:{stage}"));
        self.inner.publish(stage, admission, body, meta).await
    }
    async fn publish_retry(
        &self,
        stage: Stage,
        retry: Retry,
        body: Bytes,
        meta: &MessageMeta,
    ) -> Result<(), BrokerError> {
        self.inner.publish_retry(stage, retry, body, meta).await
    }
    async fn publish_dead(
        &self,
        origin: Origin,
        body: Bytes,
        meta: &MessageMeta,
        reason: &str,
    ) -> Result<(), BrokerError> {
        self.inner.publish_dead(origin, body, meta, reason).await
    }
    async fn publish_event(&self, key: EventKey<'_>, body: Bytes) -> Result<(), BrokerError> {
        self.note(format!("event:{}", key.kind));
        self.inner.publish_event(key, body).await
    }
    async fn publish_control(&self, body: Bytes) -> Result<(), BrokerError> {
        self.inner.publish_control(body).await
    }
    async fn consume(&self, stage: Stage, prefetch: u16) -> Result<Box<dyn RawConsumer>, BrokerError> {
        self.inner.consume(stage, prefetch).await
    }
    async fn subscribe(&self, topic: Topic) -> Result<Box<dyn RawSubscription>, BrokerError> {
        self.inner.subscribe(topic).await
    }
    async fn queue_stats(&self, stage: Stage) -> Result<QueueStats, BrokerError> {
        self.inner.queue_stats(stage).await
    }
    async fn dead_letter_count(&self) -> Result<u32, BrokerError> {
        self.inner.dead_letter_count().await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        self.inner.dead_letters(limit).await
    }
    async fn take_dead_letter(&self, id: Option<&str>) -> Result<Option<DeadLetter>, BrokerError> {
        self.inner.take_dead_letter(id).await
    }
    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_finish_is_published_before_the_job_moves_on() {
    let mut settings = Settings::defaults();
    settings.generation.canvas_width = 240;
    settings.generation.canvas_height = 320;
    let settings = Arc::new(settings);
    let transport = Arc::new(Recording {
        inner: InProcess::new(settings.pipeline.max_queue_size),
        sent: Mutex::default(),
    });
    let policy = RetryPolicy::from_settings(&settings.broker).expect("policy");
    let bus = JobBus::new(transport.clone(), policy);
    let blobs = BlobStore::memory();

    let id = JobId::new();
    let photo = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 300, 400, 3));
    let key = "inputs/0.jpg".to_string();
    blobs
        .scoped(keys::job_prefix(&id))
        .put(&key, atelier_fixtures::jpeg(&photo.image, 90))
        .await
        .expect("put input");
    let request = GenerateRequest::for_inputs(vec![InputImage {
        url: "garment.jpg".into(),
        view: View::Front,
        backgrounds: [1, 0, 0],
    }]);
    let state = JobState::new(JobSpec {
        id,
        kind: JobKind::Images,
        request,
        inputs: vec![StoredInput {
            key,
            source: "garment.jpg".into(),
        }],
        submitted_at_ms: atelier_core::clock::now_ms(),
    });

    let providers = build_providers(&settings, None).await.expect("providers");
    let worker = StageWorker::new(
        Stage::Analysis,
        StageContext::new(settings.clone(), providers),
        blobs,
        bus,
        Arc::new(CancelledJobs::default()),
    );
    worker
        .handle(state, &MessageMeta::new(id.to_string(), 0))
        .await
        .expect("analysis runs");

    let sent = transport.sent.lock().expect("lock").clone();
    let finished = format!("event:{}", EventKind::StageFinished);
    let forwarded = format!("stage:{}", Stage::Generation);
    let at = |what: &str| sent.iter().position(|s| s == what);
    assert!(
        matches!((at(&finished), at(&forwarded)), (Some(f), Some(n)) if f < n),
        "the finish must go out before the hand-on: {sent:?}"
    );
}
