//! One set of behavioural tests, run against every job store: PostgreSQL (each
//! test in a fresh schema of its own, dropped afterwards, so tests run in
//! parallel), SQLite (a fresh file per test) and memory. They must be
//! indistinguishable to their callers.

use std::future::Future;
use std::sync::Arc;

use atelier_core::event::{EventKind, JobEvent, JobFailure, JobStatus};
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::pipeline::{JobState, ProcessingTimes, Stage};
use atelier_core::request::GenerateRequest;
use atelier_core::settings::DatabaseSettings;
use atelier_jobs::{
    Admission, ApiKey, Created, JobCursor, JobQuery, JobRecord, JobStore, JobStoreError, MemoryJobStore,
    NewJob, PgJobStore, RateLimits, SqliteJobStore, Store,
};

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const HOUR_MS: u64 = 3_600_000;

fn settings(schema: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: std::env::var("ATELIER_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string()),
        schema: schema.to_string(),
        max_connections: 10,
        connect_timeout_ms: 10_000,
    }
}

fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

async fn drop_schema(pool: &sqlx::PgPool, schema: &str) {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(pool)
        .await
        .expect("drop schema");
}

/// Runs `test` on a store in a fresh schema and drops the schema even when the
/// test panics (the panic is re-raised afterwards).
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = fresh_schema();
    let store = PgJobStore::connect(&settings(&schema)).await.expect("connect");
    let pool = store.pool().clone();
    let outcome = tokio::spawn(test(Arc::new(store))).await;
    drop_schema(&pool, &schema).await;
    pool.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tmp");
    let settings = DatabaseSettings {
        url: format!("sqlite://{}", dir.path().join("data/atelier.db").display()),
        ..settings("atelier")
    };
    let store = SqliteJobStore::connect(&settings).await.expect("open");
    test(Arc::new(store)).await;
}

async fn on_memory<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Arc::new(MemoryJobStore::new())).await;
}

/// Declares each named test once per store.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_memory(super::$name).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_postgres(super::$name).await;
                }
            )*
        }
    };
}

on_every_store!(
    create_then_get,
    idempotency_key_returns_the_first_job,
    idempotency_keys_belong_to_a_tenant_and_fingerprint_the_body,
    idempotency_keys_expire,
    concurrent_creates_with_one_key_make_one_job,
    the_in_flight_limit_holds_under_concurrent_creates,
    a_refused_job_fails_and_frees_its_key,
    admission_recorded_after_the_first_stage_started_keeps_it_running,
    resumptions_are_counted,
    leases_have_one_holder_at_a_time,
    api_keys_are_stored_by_hash_and_revoked,
    rate_limits_allow_the_burst_then_the_rate,
    event_sequence_completes_the_job,
    checkpoints_follow_finished_stages,
    duplicate_events_are_ignored,
    terminal_status_is_sticky,
    event_for_unknown_job_is_none,
    counts_by_status,
    stage_stats_percentiles_and_window,
    deleted_jobs_free_their_key,
    unfinished_jobs_oldest_first,
    the_jobs_list_pages_newest_first_through_filters,
    a_reopened_job_runs_again_and_may_fail_again,
    retention_deletes_old_finished_jobs_with_their_events_only,
    expired_idempotency_keys_are_cleared,
    one_sweeper_holds_the_lock_at_a_time,
    webhook_deliveries_are_claimed_leased_attempted_and_retried,
);

fn now_ms() -> u64 {
    atelier_core::clock::now_ms()
}

fn state(id: JobId, submitted_at_ms: u64) -> JobState {
    let request: GenerateRequest = serde_json::from_value(serde_json::json!({
        "inputImages": [{ "url": "https://shop.example/a.jpg", "backgrounds": [1, 1, 1] }],
        "priority": 5
    }))
    .expect("request");
    JobState::new(JobSpec {
        id,
        kind: JobKind::Full,
        request,
        inputs: vec![StoredInput {
            key: "inputs/0.jpg".into(),
            source: "https://shop.example/a.jpg".into(),
        }],
        submitted_at_ms,
    })
}

fn new_job(key: Option<&str>) -> NewJob {
    NewJob::new(state(JobId::new(), now_ms()), key.map(str::to_string))
}

fn event(job: JobId, kind: EventKind, stage: Option<Stage>, at_ms: u64) -> JobEvent {
    let mut e = JobEvent::new(job, kind, "test");
    e.stage = stage;
    e.attempt = 1;
    e.at_ms = at_ms;
    e
}

fn finished(job: JobId, stage: Stage, seconds: f64, at_ms: u64) -> JobEvent {
    event(job, EventKind::StageFinished, Some(stage), at_ms).seconds(seconds)
}

async fn apply(store: &dyn JobStore, e: &JobEvent) -> JobRecord {
    store.apply_event(e).await.expect("apply").expect("job exists")
}

/// The events as the store gives them back (without sequence numbers and states).
async fn history(store: &dyn JobStore, id: JobId) -> Vec<JobEvent> {
    let stored = store.events(id).await.expect("events");
    assert!(
        stored.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequence numbers increase"
    );
    stored.into_iter().map(|s| s.event).collect()
}

fn without_state(events: &[JobEvent]) -> Vec<JobEvent> {
    events
        .iter()
        .map(|e| JobEvent {
            state: None,
            ..e.clone()
        })
        .collect()
}

async fn create_then_get(store: Arc<dyn Store>) {
    let new = new_job(None);
    let job = fresh(store.create(new.clone()).await.expect("create"));
    assert_eq!(job.tenant, atelier_jobs::ANONYMOUS_TENANT);
    assert_eq!(job.admission, Admission::Pending);
    assert_eq!(job.id, new.id());
    assert_eq!(job.kind, JobKind::Full);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.current_stage, None);
    assert_eq!(job.priority, 5);
    assert_eq!(
        job.state.as_ref(),
        Some(&new.state),
        "the initial state is the first checkpoint"
    );
    assert_eq!(job.resume_stage, Some(Stage::Analysis));
    assert_eq!((job.result(), job.failure.clone()), (None, None));
    assert_eq!(job.created_at_ms, new.state.spec.submitted_at_ms);
    assert_eq!(job.updated_at_ms, new.state.spec.submitted_at_ms);
    assert_eq!(job.times, ProcessingTimes::default());
    assert_eq!(store.get(new.id()).await.expect("get"), Some(job));
    assert_eq!(store.get(JobId::new()).await.expect("get"), None);
}

/// The job of a `Created::New`.
fn fresh(created: Created) -> JobRecord {
    match created {
        Created::New(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

/// The job of a `Created::Existing`.
fn existing(created: Created) -> JobRecord {
    match created {
        Created::Existing(job) => job,
        other => panic!("expected the earlier job, got {other:?}"),
    }
}

fn keyed(key: &str, tenant: &str, body: &str) -> NewJob {
    NewJob {
        request_hash: Some(body.to_string()),
        idempotency_ttl_ms: HOUR_MS,
        ..new_job(Some(key)).for_tenant(tenant)
    }
}

async fn idempotency_key_returns_the_first_job(store: Arc<dyn Store>) {
    let first = fresh(store.create(new_job(Some("k-1"))).await.expect("create"));
    let again = existing(store.create(new_job(Some("k-1"))).await.expect("again"));
    assert_eq!(again, first);
    fresh(store.create(new_job(Some("k-2"))).await.expect("other"));
    // Without a key every submission is a job of its own.
    let a = fresh(store.create(new_job(None)).await.expect("a"));
    let b = fresh(store.create(new_job(None)).await.expect("b"));
    assert_ne!(a.id, b.id);
    // Resubmitting the same id (a gateway retry) is not a second job either.
    let same_id = new_job(None);
    store.create(same_id.clone()).await.expect("create");
    existing(store.create(same_id).await.expect("retry"));
    assert_eq!(store.counts().await.expect("counts").queued, 5);
    // The same id under another key is a caller bug, not a duplicate.
    let clash = NewJob::new(new_job(None).state, Some("k-3".into()));
    store.create(clash.clone()).await.expect("create");
    let clash = NewJob::new(clash.state, Some("k-4".into()));
    assert!(matches!(
        store.create(clash).await,
        Err(JobStoreError::JobConflict { .. })
    ));
}

async fn idempotency_keys_belong_to_a_tenant_and_fingerprint_the_body(store: Arc<dyn Store>) {
    let alice = fresh(
        store
            .create(keyed("order-1", "alice", "body-a"))
            .await
            .expect("create"),
    );
    assert_eq!(alice.tenant, "alice");
    // Another tenant's same key is another job: keys are not global.
    let bob = fresh(
        store
            .create(keyed("order-1", "bob", "body-a"))
            .await
            .expect("create"),
    );
    assert_ne!(bob.id, alice.id);
    // The same key and body: the same job; another body: refused.
    assert_eq!(
        existing(
            store
                .create(keyed("order-1", "alice", "body-a"))
                .await
                .expect("again")
        )
        .id,
        alice.id
    );
    match store
        .create(keyed("order-1", "alice", "body-b"))
        .await
        .expect("reuse")
    {
        Created::KeyReused { existing } => assert_eq!(existing, alice.id),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let found = store
        .find_by_idempotency_key("alice", "order-1")
        .await
        .expect("find");
    assert_eq!(found.map(|j| j.id), Some(alice.id));
    assert!(
        store
            .find_by_idempotency_key("carol", "order-1")
            .await
            .expect("find")
            .is_none()
    );
}

async fn idempotency_keys_expire(store: Arc<dyn Store>) {
    let old = NewJob {
        idempotency_ttl_ms: 1,
        ..keyed("short", "t", "body")
    };
    let first = fresh(store.create(old).await.expect("create"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        store
            .find_by_idempotency_key("t", "short")
            .await
            .expect("find")
            .is_none()
    );
    // Even with another body, an expired key starts a new job.
    let second = fresh(
        store
            .create(keyed("short", "t", "other body"))
            .await
            .expect("create"),
    );
    assert_ne!(second.id, first.id);
    assert_eq!(
        store.get(first.id).await.expect("get").map(|j| j.idempotency_key),
        Some(None)
    );
}

async fn deleted_jobs_free_their_key(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
    let first = fresh(store.create(new_job(Some("k-del"))).await.expect("create"));
    assert!(store.delete(first.id).await.expect("delete"));
    assert!(!store.delete(first.id).await.expect("delete twice"));
    assert!(store.get(first.id).await.expect("get").is_none());
    let retry = fresh(store.create(new_job(Some("k-del"))).await.expect("retry"));
    assert_ne!(retry.id, first.id);
}

async fn concurrent_creates_with_one_key_make_one_job(store: Arc<dyn Store>) {
    const SUBMISSIONS: usize = 8;
    let tasks: Vec<_> = (0..SUBMISSIONS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.create(keyed("same", "t", "body")).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("join").expect("create"));
    }
    let new: Vec<_> = results.iter().filter(|c| matches!(c, Created::New(_))).collect();
    assert_eq!(new.len(), 1, "exactly one submission creates the job");
    let id = new[0].job().map(|j| j.id);
    assert!(results.iter().all(|c| c.job().map(|j| j.id) == id));
    assert_eq!(store.counts().await.expect("counts").queued, 1);
}

async fn the_in_flight_limit_holds_under_concurrent_creates(store: Arc<dyn Store>) {
    const LIMIT: u32 = 3;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            let job = NewJob {
                max_in_flight: Some(LIMIT),
                ..new_job(None).for_tenant("busy")
            };
            tokio::spawn(async move { store.create(job).await })
        })
        .collect();
    let mut new = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("join").expect("create") {
            Created::New(job) => new.push(job.id),
            Created::TooManyInFlight { limit } => {
                assert_eq!(limit, LIMIT);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((new.len(), refused), (3, 7));
    // A finished job makes room; another tenant is not counted.
    apply(&*store, &event(new[0], EventKind::Completed, None, now_ms())).await;
    let more = NewJob {
        max_in_flight: Some(LIMIT),
        ..new_job(None).for_tenant("busy")
    };
    fresh(store.create(more).await.expect("create"));
    let other = NewJob {
        max_in_flight: Some(1),
        ..new_job(None).for_tenant("quiet")
    };
    fresh(store.create(other).await.expect("create"));
}

async fn a_refused_job_fails_and_frees_its_key(store: Arc<dyn Store>) {
    let job = fresh(store.create(keyed("k", "t", "body")).await.expect("create"));
    let admitted = store
        .set_admission(job.id, Admission::Admitted, None)
        .await
        .expect("admit")
        .expect("job");
    assert_eq!(
        (admitted.admission, admitted.status),
        (Admission::Admitted, JobStatus::Queued)
    );

    let refused = fresh(store.create(keyed("k2", "t", "body")).await.expect("create"));
    let failure = JobFailure::new("queue_full", "the pipeline is at capacity");
    let after = store
        .set_admission(refused.id, Admission::Refused, Some(failure.clone()))
        .await
        .expect("refuse")
        .expect("job");
    assert_eq!(
        (after.admission, after.status),
        (Admission::Refused, JobStatus::Failed)
    );
    assert_eq!(after.failure, Some(failure));
    assert_eq!(
        store.get(refused.id).await.expect("get"),
        Some(after.clone()),
        "the refusal is stored"
    );
    assert!(
        !store
            .unfinished(now_ms(), 10)
            .await
            .expect("unfinished")
            .iter()
            .any(|j| j.id == refused.id)
    );
    // Its key is free: a retry is a new job.
    let retry = fresh(store.create(keyed("k2", "t", "body")).await.expect("retry"));
    assert_ne!(retry.id, refused.id);
}

/// A worker may start a job before the gateway records its admission (the
/// publish confirm and the delivery race): the admission must not put the
/// running job back to queued.
async fn admission_recorded_after_the_first_stage_started_keeps_it_running(store: Arc<dyn Store>) {
    for _ in 0..50 {
        let job = fresh(store.create(new_job(None)).await.expect("create"));
        let started = event(job.id, EventKind::StageStarted, Some(Stage::Analysis), now_ms());
        let (admitted, _) = tokio::join!(
            store.set_admission(job.id, Admission::Admitted, None),
            store.apply_event(&started),
        );
        admitted.expect("admit").expect("job");
        let now = store.get(job.id).await.expect("get").expect("job");
        assert_eq!(
            (now.status, now.admission),
            (JobStatus::Running, Admission::Admitted),
            "{now:?}"
        );
    }
}

async fn resumptions_are_counted(store: Arc<dyn Store>) {
    let job = fresh(store.create(new_job(None)).await.expect("create"));
    assert_eq!(job.resumes, 0);
    assert_eq!(store.mark_resumed(job.id).await.expect("resume"), 1);
    assert_eq!(store.mark_resumed(job.id).await.expect("resume"), 2);
    let after = store.get(job.id).await.expect("get").expect("job");
    assert_eq!((after.resumes, after.admission), (2, Admission::Admitted));
    assert!(after.updated_at_ms >= job.updated_at_ms);
    assert_eq!(store.mark_resumed(JobId::new()).await.expect("unknown"), 0);
}

async fn leases_have_one_holder_at_a_time(store: Arc<dyn Store>) {
    assert!(store.acquire_lease("reaper", "a", 60_000).await.expect("take"));
    assert!(
        !store.acquire_lease("reaper", "b", 60_000).await.expect("held"),
        "b waits"
    );
    assert!(
        store.acquire_lease("reaper", "a", 60_000).await.expect("renew"),
        "a renews"
    );
    assert!(
        store
            .acquire_lease("sweeper", "b", 60_000)
            .await
            .expect("other lease")
    );
    assert!(store.acquire_lease("short", "a", 1).await.expect("take"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        store.acquire_lease("short", "b", 60_000).await.expect("expired"),
        "an expired lease is free"
    );
}

async fn api_keys_are_stored_by_hash_and_revoked(store: Arc<dyn Store>) {
    let key = ApiKey {
        name: "shop-1".into(),
        tenant: "shop-1".into(),
        admin: false,
        rate_per_minute: Some(60),
        max_in_flight: None,
        prefix: "atl_abcd".into(),
        webhook_secret: Some("whsec_x".into()),
        created_at_ms: now_ms(),
        revoked_at_ms: None,
    };
    store.create_key(&key, "hash-1").await.expect("create");
    assert!(matches!(
        store.create_key(&key, "hash-2").await,
        Err(JobStoreError::KeyNameTaken(_))
    ));
    let admin = ApiKey {
        name: "ops".into(),
        admin: true,
        ..key.clone()
    };
    store.create_key(&admin, "hash-3").await.expect("create");
    assert_eq!(
        store.key_by_hash("hash-1").await.expect("find"),
        Some(key.clone())
    );
    assert_eq!(store.key_by_hash("nope").await.expect("find"), None);
    let names: Vec<_> = store
        .keys()
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        store
            .set_webhook_secret("shop-1", "whsec_y")
            .await
            .expect("rotate")
    );
    assert!(store.revoke_key("shop-1", now_ms()).await.expect("revoke"));
    assert!(
        !store.revoke_key("shop-1", now_ms()).await.expect("again"),
        "already revoked"
    );
    assert!(!store.revoke_key("nobody", now_ms()).await.expect("unknown"));
    let revoked = store.key_by_hash("hash-1").await.expect("find").expect("kept");
    assert!(!revoked.is_active());
    assert_eq!(revoked.webhook_secret.as_deref(), Some("whsec_y"));
}

async fn rate_limits_allow_the_burst_then_the_rate(store: Arc<dyn Store>) {
    let mut allowed = 0;
    let mut last = None;
    for _ in 0..8 {
        let d = store.check_rate("key:a", 60, 3).await.expect("check");
        if d.allowed {
            allowed += 1;
        }
        last = Some(d);
    }
    assert_eq!(allowed, 3, "the burst, then one a second");
    let last = last.expect("decision");
    assert!(
        !last.allowed && last.retry_after_ms > 0 && last.retry_after_ms <= 1_000,
        "{last:?}"
    );
    // Another bucket is not touched.
    assert!(store.check_rate("key:b", 60, 3).await.expect("check").allowed);
}

async fn event_sequence_completes_the_job(store: Arc<dyn Store>) {
    let new = new_job(None);
    let id = new.id();
    let t0 = new.state.spec.submitted_at_ms;
    let initial = new.state.clone();
    store.create(new).await.expect("create");

    let mut sent = vec![event(id, EventKind::Queued, None, t0)];
    let job = apply(&*store, &sent[0]).await;
    assert_eq!(job.status, JobStatus::Queued);

    let mut at = t0 + 2_000;
    let mut seconds = 1.0;
    for stage in Stage::ALL {
        let started = event(id, EventKind::StageStarted, Some(stage), at);
        let job = apply(&*store, &started).await;
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.current_stage, Some(stage));
        assert_eq!(job.times.queue_wait, 2.0, "first start fixes the queue wait");
        let done = finished(id, stage, seconds, at + 500);
        let job = apply(&*store, &done).await;
        assert_eq!(job.times.get(stage), seconds);
        assert_eq!(job.updated_at_ms, at + 500);
        sent.extend([started, done]);
        at += 1_000;
        seconds += 1.0;
    }

    let times = ProcessingTimes {
        queue_wait: 2.0,
        analysis: 1.0,
        generation: 2.0,
        upscaling: 3.0,
        post_processing: 4.0,
        saving: 0.25,
        total: 6.5,
    };
    let mut result = initial;
    result.times = times;
    let completed = event(id, EventKind::Completed, None, at).state(result.clone());
    let job = apply(&*store, &completed).await;
    sent.push(completed);
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.current_stage, Some(Stage::PostProcessing));
    assert_eq!(job.result(), Some(&result));
    assert_eq!(job.resume_stage, None);
    assert_eq!(job.times, times);
    assert_eq!(job.failure, None);
    assert_eq!(store.get(id).await.expect("get"), Some(job));
    assert_eq!(history(&*store, id).await, without_state(&sent));
}

async fn duplicate_events_are_ignored(store: Arc<dyn Store>) {
    let new = new_job(None);
    let (id, t0) = (new.id(), new.state.spec.submitted_at_ms);
    store.create(new).await.expect("create");
    let started = event(id, EventKind::StageStarted, Some(Stage::Analysis), t0 + 1_000);
    let first = apply(&*store, &started).await;
    assert_eq!(apply(&*store, &started).await, first);

    let done = finished(id, Stage::Analysis, 1.5, t0 + 2_000);
    let after = apply(&*store, &done).await;
    // A redelivery with drifted fields is still the same event: it changes nothing.
    let redelivered = JobEvent {
        seconds: 9.0,
        at_ms: t0 + 9_000,
        ..done.clone()
    };
    assert_eq!(apply(&*store, &redelivered).await, after);
    assert_eq!(after.times.analysis, 1.5);
    // A retry is a new attempt, hence a new event.
    let retry = JobEvent {
        attempt: 2,
        ..started.clone()
    };
    apply(&*store, &retry).await;
    assert_eq!(history(&*store, id).await, vec![started, done, retry]);
    let stats = store.stage_stats(3_600).await.expect("stats");
    assert_eq!(stats[0].completed, 1);
    assert_eq!(stats[0].mean, 1.5);
}

async fn terminal_status_is_sticky(store: Arc<dyn Store>) {
    // Completed, then a late cancel.
    let new = new_job(None);
    let (done_id, t0) = (new.id(), new.state.spec.submitted_at_ms);
    let final_state = new.state.clone();
    store.create(new).await.expect("create");
    let completed = event(done_id, EventKind::Completed, None, t0 + 1_000).state(final_state);
    let job = apply(&*store, &completed).await;
    let after = apply(&*store, &event(done_id, EventKind::Cancelled, None, t0 + 2_000)).await;
    assert_eq!(after, job);
    assert_eq!(after.status, JobStatus::Completed);

    // Cancelled, then a stage that was already on its way starts.
    let new = new_job(None);
    let cancelled_id = new.id();
    store.create(new).await.expect("create");
    let cancel = event(cancelled_id, EventKind::Cancelled, None, t0 + 1_000);
    let job = apply(&*store, &cancel).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    let late = event(
        cancelled_id,
        EventKind::StageStarted,
        Some(Stage::Generation),
        t0 + 2_000,
    );
    assert_eq!(apply(&*store, &late).await, job);
    assert_eq!(
        history(&*store, cancelled_id).await,
        vec![cancel, late],
        "the late event is recorded even though it changes nothing"
    );

    // Failed, then a completion from a redelivered message.
    let new = new_job(None);
    let failed_id = new.id();
    store.create(new).await.expect("create");
    let failure = JobFailure::new("invalid_image", "undecodable image").with_field("inputImages[0].url");
    let failed =
        event(failed_id, EventKind::Failed, Some(Stage::Analysis), t0 + 1_000).failure(failure.clone());
    let job = apply(&*store, &failed).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.failure.as_ref(), Some(&failure));
    assert_eq!(job.resume_stage, None);
    assert_eq!(
        history(&*store, failed_id).await,
        vec![failed.clone()],
        "the failure's code and field are kept"
    );
    assert_eq!(job.current_stage, Some(Stage::Analysis));
    let completed = event(failed_id, EventKind::Completed, None, t0 + 2_000);
    assert_eq!(apply(&*store, &completed).await, job);
}

async fn event_for_unknown_job_is_none(store: Arc<dyn Store>) {
    let ghost = JobId::new();
    let got = store
        .apply_event(&event(
            ghost,
            EventKind::StageStarted,
            Some(Stage::Analysis),
            now_ms(),
        ))
        .await
        .expect("no error for an unknown job");
    assert_eq!(got, None);
    assert!(store.events(ghost).await.expect("events").is_empty());
    assert_eq!(store.get(ghost).await.expect("get"), None);
}

async fn counts_by_status(store: Arc<dyn Store>) {
    assert_eq!(store.counts().await.expect("counts"), Default::default());
    let mut ids = Vec::new();
    for _ in 0..6 {
        let new = new_job(None);
        ids.push(new.id());
        store.create(new).await.expect("create");
    }
    let at = now_ms();
    apply(
        &*store,
        &event(ids[1], EventKind::StageStarted, Some(Stage::Generation), at),
    )
    .await;
    apply(&*store, &event(ids[2], EventKind::Completed, None, at)).await;
    apply(
        &*store,
        &event(ids[3], EventKind::Failed, Some(Stage::Upscaling), at),
    )
    .await;
    apply(&*store, &event(ids[4], EventKind::Cancelled, None, at)).await;
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        (
            counts.queued,
            counts.running,
            counts.completed,
            counts.failed,
            counts.cancelled
        ),
        (2, 1, 1, 1, 1)
    );
}

async fn stage_stats_percentiles_and_window(store: Arc<dyn Store>) {
    const WINDOW_SECONDS: u32 = 3_600;
    let now = now_ms();
    for seconds in 1..=100 {
        let new = new_job(None);
        let id = new.id();
        store.create(new).await.expect("create");
        apply(&*store, &finished(id, Stage::Analysis, f64::from(seconds), now)).await;
    }
    // Finished two hours ago: counted as completed, but outside the window.
    let old = new_job(None);
    let old_id = old.id();
    store.create(old).await.expect("create");
    apply(
        &*store,
        &finished(old_id, Stage::Analysis, 1_000.0, now - 2 * HOUR_MS),
    )
    .await;

    let running = new_job(None);
    let running_id = running.id();
    store.create(running).await.expect("create");
    apply(
        &*store,
        &event(running_id, EventKind::StageStarted, Some(Stage::Generation), now),
    )
    .await;
    let failed = new_job(None);
    let failed_id = failed.id();
    store.create(failed).await.expect("create");
    apply(
        &*store,
        &event(failed_id, EventKind::Failed, Some(Stage::Upscaling), now),
    )
    .await;

    let stats = store.stage_stats(WINDOW_SECONDS).await.expect("stats");
    let stages: Vec<_> = stats.iter().map(|s| s.stage).collect();
    assert_eq!(stages, Stage::ALL);
    let analysis = &stats[0];
    assert_eq!(analysis.count_in_window, 100);
    assert_eq!(analysis.completed, 101);
    assert_eq!(analysis.running, 101, "finished analysis, next stage not started");
    let close = |got: f64, want: f64| assert!((got - want).abs() < 1e-9, "{got} != {want}");
    close(analysis.p50, 50.5);
    close(analysis.p95, 95.05);
    close(analysis.p99, 99.01);
    close(analysis.mean, 50.5);

    let generation = &stats[1];
    assert_eq!((generation.running, generation.failed), (1, 0));
    assert_eq!(generation.count_in_window, 0);
    assert_eq!(generation.p50, 0.0);
    let upscaling = &stats[2];
    assert_eq!((upscaling.running, upscaling.failed), (0, 1));
    let post = &stats[3];
    assert_eq!(
        (post.running, post.completed, post.failed, post.mean),
        (0, 0, 0, 0.0)
    );

    // A wider window takes the old finish in.
    let wide = store.stage_stats(3 * WINDOW_SECONDS).await.expect("stats");
    assert_eq!(wide[0].count_in_window, 101);
}

async fn checkpoints_follow_finished_stages(store: Arc<dyn Store>) {
    let new = new_job(None);
    let (id, t0) = (new.id(), new.state.spec.submitted_at_ms);
    let mut state = new.state.clone();
    store.create(new).await.expect("create");
    state.times.analysis = 0.5;
    let analysed = finished(id, Stage::Analysis, 0.5, t0 + 1_000).state(state.clone());
    let job = apply(&*store, &analysed).await;
    assert_eq!(job.state.as_ref(), Some(&state));
    assert_eq!(job.resume_stage, Some(Stage::Generation));

    state.times.generation = 0.75;
    let generated = finished(id, Stage::Generation, 0.75, t0 + 2_000).state(state.clone());
    let job = apply(&*store, &generated).await;
    assert_eq!(job.resume_stage, Some(Stage::Upscaling));

    // A late (retried) finish of an earlier stage does not rewind the checkpoint.
    let mut stale = state.clone();
    stale.times.generation = 0.0;
    let late = JobEvent {
        attempt: 2,
        ..finished(id, Stage::Analysis, 0.5, t0 + 3_000).state(stale)
    };
    let job = apply(&*store, &late).await;
    assert_eq!(job.state.as_ref(), Some(&state));
    assert_eq!(job.resume_stage, Some(Stage::Upscaling));
    // The last stage's checkpoint resumes at that stage (it emits the completion).
    let post = finished(id, Stage::PostProcessing, 1.0, t0 + 4_000).state(state);
    assert_eq!(
        apply(&*store, &post).await.resume_stage,
        Some(Stage::PostProcessing)
    );
}

async fn unfinished_jobs_oldest_first(store: Arc<dyn Store>) {
    let t0 = now_ms() - 60_000;
    let mut ids = Vec::new();
    for n in 0..4u64 {
        let job = NewJob::new(state(JobId::new(), t0 + n * 1_000), None);
        ids.push(job.id());
        store.create(job).await.expect("create");
    }
    // Job 0 progresses last; job 3 finishes.
    apply(
        &*store,
        &event(
            ids[0],
            EventKind::StageStarted,
            Some(Stage::Analysis),
            t0 + 10_000,
        ),
    )
    .await;
    apply(&*store, &event(ids[3], EventKind::Completed, None, t0 + 10_000)).await;

    let all = store.unfinished(now_ms(), 10).await.expect("unfinished");
    let got: Vec<_> = all.iter().map(|j| j.id).collect();
    assert_eq!(
        got,
        [ids[1], ids[2], ids[0]],
        "oldest progress first, finished jobs left out"
    );
    assert!(all.iter().all(|j| j.state.is_some() && j.resume_stage.is_some()));
    let stale = store.unfinished(t0 + 1_500, 10).await.expect("stale");
    assert_eq!(stale.iter().map(|j| j.id).collect::<Vec<_>>(), [ids[1]]);
    assert_eq!(store.unfinished(now_ms(), 1).await.expect("limit").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_startups_migrate_one_fresh_schema() {
    const SERVICES: usize = 3;
    let schema = fresh_schema();
    let settings = settings(&schema);
    let connects: Vec<_> = (0..SERVICES)
        .map(|_| {
            let settings = settings.clone();
            tokio::spawn(async move { PgJobStore::connect(&settings).await })
        })
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.expect("join").expect("connect"));
    }
    let pool = stores[0].pool().clone();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .expect("tables");
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "api_keys",
            "job_events",
            "jobs",
            "leases",
            "rate_limits",
            "stage_timings",
            "webhook_deliveries",
            "webhooks"
        ]
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .expect("migrations");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations folder")
        .count();
    assert_eq!(
        applied,
        i64::try_from(migrations).expect("count"),
        "every migration ran once"
    );
    for store in &stores {
        store.ping().await.expect("ping");
    }

    // Another schema is another world: it sees none of the first one's jobs.
    let created = fresh(stores[0].create(new_job(None)).await.expect("create"));
    let other_schema = fresh_schema();
    let other = PgJobStore::connect(&self::settings(&other_schema))
        .await
        .expect("connect other");
    assert_eq!(other.get(created.id).await.expect("get"), None);
    assert!(stores[1].get(created.id).await.expect("get").is_some());

    drop_schema(&pool, &schema).await;
    drop_schema(&pool, &other_schema).await;
}

#[tokio::test]
async fn invalid_schema_is_refused_before_connecting() {
    for bad in ["Public", "a;drop", "1x", ""] {
        let err = PgJobStore::connect(&settings(bad))
            .await
            .expect_err("invalid schema");
        assert!(matches!(err, JobStoreError::InvalidSchema(_)), "{bad}: {err}");
    }
}

#[tokio::test]
async fn errors_say_whether_to_retry() {
    let unreachable = DatabaseSettings {
        url: "postgres://postgres@127.0.0.1:1/postgres".to_string(),
        connect_timeout_ms: 2_000,
        ..settings("atelier")
    };
    let err = PgJobStore::connect(&unreachable)
        .await
        .expect_err("nothing listens on port 1");
    assert!(err.is_transient(), "{err:?}");
    assert!(!JobStoreError::InvalidSchema("X".into()).is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_by_every_connection_to_one_database() {
    // Two stores on one schema stand for two gateways: together they get the
    // bucket's rate, not twice it.
    let schema = fresh_schema();
    let one = PgJobStore::connect(&settings(&schema)).await.expect("connect");
    let two = PgJobStore::connect(&settings(&schema)).await.expect("connect");
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(
            async move { store.check_rate("shared", 60, 5).await },
        ));
    }
    let mut allowed = 0;
    for task in tasks {
        if task.await.expect("join").expect("check").allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "the burst, once, across both");
    drop_schema(one.pool(), &schema).await;
}

/// Seven jobs of two tenants, one second apart (the newest last), in assorted states.
async fn listed_jobs(store: &dyn Store, t0: u64) -> Vec<JobId> {
    let mut ids = Vec::new();
    for n in 0..7u64 {
        let tenant = if n % 2 == 0 { "even" } else { "odd" };
        let job = NewJob::new(state(JobId::new(), t0 + n * 1_000), None).for_tenant(tenant);
        ids.push(job.id());
        store.create(job).await.expect("create");
    }
    let at = t0 + 60_000;
    apply(
        store,
        &event(ids[1], EventKind::StageStarted, Some(Stage::Generation), at),
    )
    .await;
    apply(store, &event(ids[2], EventKind::Completed, None, at)).await;
    apply(
        store,
        &event(ids[4], EventKind::StageStarted, Some(Stage::Generation), at),
    )
    .await;
    apply(
        store,
        &event(ids[5], EventKind::StageStarted, Some(Stage::Analysis), at),
    )
    .await;
    ids
}

async fn page_ids(store: &dyn Store, query: &JobQuery) -> (Vec<JobId>, Option<JobCursor>) {
    let page = store.list(query).await.expect("list");
    (page.jobs.iter().map(|j| j.id).collect(), page.next)
}

async fn the_jobs_list_pages_newest_first_through_filters(store: Arc<dyn Store>) {
    let t0 = now_ms() - 3_600_000;
    let ids = listed_jobs(&*store, t0).await;

    // Every job, three at a time, newest first; the cursor ends on the last page.
    let mut query = JobQuery {
        limit: 3,
        ..JobQuery::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (got, next) = page_ids(&*store, &query).await;
        pages += 1;
        seen.extend(got);
        match next {
            Some(cursor) => query.after = Some(JobCursor::decode(&cursor.encode()).expect("token")),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids.iter().rev().copied().collect::<Vec<_>>());

    // A page exactly as long as what is left says there is no more.
    let exact = JobQuery {
        limit: 7,
        ..JobQuery::default()
    };
    assert_eq!(page_ids(&*store, &exact).await.1, None);

    let filtered = |q: JobQuery| q;
    let (even, _) = page_ids(
        &*store,
        &filtered(JobQuery {
            tenant: Some("even".into()),
            ..JobQuery::default()
        }),
    )
    .await;
    assert_eq!(even, [ids[6], ids[4], ids[2], ids[0]]);
    let (running, _) = page_ids(
        &*store,
        &filtered(JobQuery {
            status: Some(JobStatus::Running),
            ..JobQuery::default()
        }),
    )
    .await;
    assert_eq!(running, [ids[5], ids[4], ids[1]]);
    let (generating, _) = page_ids(
        &*store,
        &filtered(JobQuery {
            stage: Some(Stage::Generation),
            ..JobQuery::default()
        }),
    )
    .await;
    assert_eq!(generating, [ids[4], ids[1]]);
    let (recent, _) = page_ids(
        &*store,
        &filtered(JobQuery {
            since_ms: Some(t0 + 4_000),
            ..JobQuery::default()
        }),
    )
    .await;
    assert_eq!(recent, [ids[6], ids[5], ids[4]]);
    let mut combined = JobQuery {
        tenant: Some("even".into()),
        status: Some(JobStatus::Queued),
        limit: 1,
        ..JobQuery::default()
    };
    let (first, next) = page_ids(&*store, &combined).await;
    assert_eq!(first, [ids[6]]);
    combined.after = next;
    assert_eq!(page_ids(&*store, &combined).await, (vec![ids[0]], None));
    let page = store.list(&JobQuery::default()).await.expect("list");
    assert!(
        page.jobs.iter().all(|j| j.state.is_some()),
        "whole jobs, checkpoints included"
    );
}

async fn a_reopened_job_runs_again_and_may_fail_again(store: Arc<dyn Store>) {
    let job = fresh(store.create(new_job(None)).await.expect("create"));
    let at = now_ms();
    apply(
        &*store,
        &event(job.id, EventKind::StageStarted, Some(Stage::Analysis), at),
    )
    .await;
    apply(&*store, &finished(job.id, Stage::Analysis, 1.0, at + 1)).await;
    apply(
        &*store,
        &event(job.id, EventKind::StageStarted, Some(Stage::Generation), at + 2),
    )
    .await;
    let failure = JobFailure::stage("provider down");
    let failed = event(job.id, EventKind::Failed, Some(Stage::Generation), at + 3).failure(failure);
    assert_eq!(apply(&*store, &failed).await.status, JobStatus::Failed);

    let reopened = store
        .reopen(job.id, Stage::Generation)
        .await
        .expect("reopen")
        .expect("job");
    assert_eq!(reopened.status, JobStatus::Running);
    assert_eq!(reopened.failure, None);
    assert_eq!(reopened.resume_stage, Some(Stage::Generation));
    assert_eq!(reopened.current_stage, Some(Stage::Generation));
    assert_eq!(store.get(job.id).await.expect("get"), Some(reopened.clone()));
    assert!(
        history(&*store, job.id)
            .await
            .iter()
            .all(|e| e.kind != EventKind::Failed),
        "the failure is forgotten"
    );
    // The same failure once more is recorded again: the job does not hang.
    assert_eq!(apply(&*store, &failed).await.status, JobStatus::Failed);
    store.reopen(job.id, Stage::Generation).await.expect("reopen");
    apply(&*store, &finished(job.id, Stage::Generation, 1.0, at + 5)).await;
    let done = apply(&*store, &event(job.id, EventKind::Completed, None, at + 6)).await;
    assert_eq!(done.status, JobStatus::Completed);
    // Only failed jobs reopen; a missing one is None.
    let kept = store
        .reopen(job.id, Stage::Analysis)
        .await
        .expect("reopen")
        .expect("job");
    assert_eq!(kept.status, JobStatus::Completed);
    assert_eq!(
        store.reopen(JobId::new(), Stage::Analysis).await.expect("reopen"),
        None
    );
}

async fn retention_deletes_old_finished_jobs_with_their_events_only(store: Arc<dyn Store>) {
    let t0 = now_ms() - 10 * HOUR_MS;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let job = NewJob::new(state(JobId::new(), t0), None);
        ids.push(job.id());
        store.create(job).await.expect("create");
    }
    // 0 completed long ago, 1 failed long ago, 2 completed just now, 3 still running.
    apply(&*store, &finished(ids[0], Stage::Analysis, 1.0, t0 + 1)).await;
    apply(&*store, &event(ids[0], EventKind::Completed, None, t0 + 2)).await;
    apply(&*store, &event(ids[1], EventKind::Failed, None, t0 + 2)).await;
    apply(&*store, &event(ids[2], EventKind::Completed, None, now_ms())).await;
    apply(
        &*store,
        &event(ids[3], EventKind::StageStarted, Some(Stage::Analysis), t0 + 2),
    )
    .await;

    let cutoff = now_ms() - HOUR_MS;
    let old = store.finished_before(cutoff, 10).await.expect("finished");
    let mut expected = vec![ids[0], ids[1]];
    expected.sort_by_key(|id| id.0);
    let mut got = old.clone();
    got.sort_by_key(|id| id.0);
    assert_eq!(got, expected, "only old finished jobs");
    assert_eq!(store.finished_before(cutoff, 1).await.expect("limit").len(), 1);

    // A running job among the ids is left alone.
    let deleted = store
        .delete_finished(&[ids[0], ids[1], ids[3]])
        .await
        .expect("delete");
    assert_eq!(deleted, 2);
    for id in &ids[..2] {
        assert_eq!(store.get(*id).await.expect("get"), None);
        assert!(
            store.events(*id).await.expect("events").is_empty(),
            "events go too"
        );
    }
    assert_eq!(
        store.get(ids[3]).await.expect("get").map(|j| j.status),
        Some(JobStatus::Running)
    );
    assert!(!store.events(ids[3]).await.expect("events").is_empty());
    assert!(store.get(ids[2]).await.expect("get").is_some());
    assert!(store.finished_before(cutoff, 10).await.expect("again").is_empty());
}

async fn expired_idempotency_keys_are_cleared(store: Arc<dyn Store>) {
    let short = NewJob {
        idempotency_ttl_ms: 1,
        ..keyed("short", "t", "body")
    };
    let long = NewJob {
        idempotency_ttl_ms: HOUR_MS,
        ..keyed("long", "t", "body")
    };
    let short = fresh(store.create(short).await.expect("create"));
    let long = fresh(store.create(long).await.expect("create"));
    let now = now_ms() + 10;
    assert_eq!(store.clear_expired_idempotency_keys(now).await.expect("clear"), 1);
    let key_of = |job: Option<JobRecord>| job.and_then(|j| j.idempotency_key);
    assert_eq!(key_of(store.get(short.id).await.expect("get")), None);
    assert_eq!(
        key_of(store.get(long.id).await.expect("get")).as_deref(),
        Some("long")
    );
    assert_eq!(store.clear_expired_idempotency_keys(now).await.expect("again"), 0);
}

async fn one_sweeper_holds_the_lock_at_a_time(store: Arc<dyn Store>) {
    let first = store
        .try_sweep_lock()
        .await
        .expect("lock")
        .expect("free at first");
    assert!(store.try_sweep_lock().await.expect("lock").is_none(), "held");
    first.release().await;
    let again = store.try_sweep_lock().await.expect("lock");
    assert!(again.is_some(), "free once released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_lock_is_cluster_wide_on_postgres() {
    let schema = fresh_schema();
    let one = PgJobStore::connect(&settings(&schema)).await.expect("connect");
    let two = PgJobStore::connect(&settings(&schema)).await.expect("connect");
    let other_schema = fresh_schema();
    let other = PgJobStore::connect(&settings(&other_schema))
        .await
        .expect("connect");
    let held = one.try_sweep_lock().await.expect("lock").expect("free");
    assert!(
        two.try_sweep_lock().await.expect("lock").is_none(),
        "another process waits"
    );
    let elsewhere = other.try_sweep_lock().await.expect("lock");
    assert!(elsewhere.is_some(), "another schema has a lock of its own");
    // A holder that dies (its connection drops) frees the lock too.
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let taken = loop {
        if let Some(lock) = two.try_sweep_lock().await.expect("lock") {
            break lock;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a dropped holder frees the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    taken.release().await;
    if let Some(lock) = elsewhere {
        lock.release().await;
    }
    for store in [&one, &two, &other] {
        store.pool().close().await;
    }
    let cleanup = PgJobStore::connect(&settings(&schema)).await.expect("connect");
    drop_schema(cleanup.pool(), &schema).await;
    drop_schema(cleanup.pool(), &other_schema).await;
    cleanup.pool().close().await;
}

async fn webhook_deliveries_are_claimed_leased_attempted_and_retried(store: Arc<dyn Store>) {
    use atelier_jobs::{AttemptOutcome, DeliveryAttempt, DeliveryStatus, NewDelivery, Webhook};
    let job = new_job(None);
    let id = job.id();
    store.create(job).await.expect("create");
    assert_eq!(store.webhook(id).await.expect("read"), None);
    let hook = Webhook {
        job: id,
        url: "https://hooks.example/a".into(),
        key_name: Some("shop".into()),
        events: vec!["job.completed".into()],
    };
    store.set_webhook(&hook).await.expect("set");
    assert_eq!(store.webhook(id).await.expect("read"), Some(hook));

    let t0 = now_ms();
    let delivery = |topic: &str, n: u64| NewDelivery {
        id: format!("msg_{topic}_{n}"),
        job: id,
        topic: topic.into(),
        event_type: "job.completed".into(),
        url: "https://hooks.example/a".into(),
        key_name: Some("shop".into()),
        body: r#"{"status":"completed"}"#.into(),
        created_at_ms: t0 + n,
    };
    assert!(
        store
            .add_delivery(&delivery("job.completed", 0))
            .await
            .expect("add")
    );
    // The same event again is the same delivery.
    assert!(
        !store
            .add_delivery(&delivery("job.completed", 1))
            .await
            .expect("add")
    );
    assert!(
        store
            .add_delivery(&delivery("job.stage_finished:analysis:1", 2))
            .await
            .expect("add")
    );

    // Claimed once: leased until the lease ends, then due again.
    let lease = 60_000;
    let claimed = store.claim_deliveries(t0 + 10, lease, 1).await.expect("claim");
    assert_eq!(claimed.len(), 1, "the limit holds");
    assert_eq!(claimed[0].id, "msg_job.completed_0", "oldest due first");
    let second = store.claim_deliveries(t0 + 10, lease, 10).await.expect("claim");
    assert_eq!(second.len(), 1, "the first is leased");
    assert!(
        store
            .claim_deliveries(t0 + 10, lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let expired = store
        .claim_deliveries(t0 + 10 + lease, lease, 10)
        .await
        .expect("claim");
    assert_eq!(expired.len(), 2, "leases end");

    // A failed attempt, retried later; then delivered.
    let attempt = |number, status_code, at_ms| DeliveryAttempt {
        number,
        at_ms,
        duration_ms: 5,
        status_code: Some(status_code),
        error: None,
        response: Some("busy".into()),
    };
    let first = "msg_job.completed_0";
    store
        .record_attempt(
            first,
            &attempt(1, 500, t0 + 20),
            AttemptOutcome::RetryAt(t0 + 5_000),
        )
        .await
        .expect("record");
    store
        .defer_delivery("msg_job.stage_finished:analysis:1_2", t0 + 9_000)
        .await
        .expect("defer");
    let due = store
        .claim_deliveries(t0 + 5_000, lease, 10)
        .await
        .expect("claim");
    assert_eq!(due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [first]);
    assert_eq!(due[0].attempts.len(), 1);
    store
        .record_attempt(first, &attempt(2, 200, t0 + 5_001), AttemptOutcome::Delivered)
        .await
        .expect("record");
    let all = store.deliveries(id).await.expect("list");
    assert_eq!(all.len(), 2);
    let done = all.iter().find(|d| d.id == first).expect("delivery");
    assert_eq!(done.status, DeliveryStatus::Delivered);
    assert_eq!(done.next_attempt_at_ms, None);
    assert_eq!(
        done.attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
        [Some(500), Some(200)]
    );
    assert_eq!(done.attempts[0].response.as_deref(), Some("busy"));
    assert_eq!(done.body, r#"{"status":"completed"}"#);

    // Given up, then retried by hand: pending and due now, history kept.
    let other = "msg_job.stage_finished:analysis:1_2";
    store
        .record_attempt(other, &attempt(1, 410, t0 + 9_000), AttemptOutcome::GaveUp)
        .await
        .expect("record");
    assert!(
        store
            .claim_deliveries(t0 + HOUR_MS, lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let retried = store
        .retry_delivery(id, other, t0 + HOUR_MS)
        .await
        .expect("retry")
        .expect("found");
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.attempts.len(), 1);
    assert_eq!(
        store
            .claim_deliveries(t0 + HOUR_MS, lease, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
    assert!(
        store
            .retry_delivery(JobId::new(), other, t0)
            .await
            .expect("retry")
            .is_none(),
        "another job's"
    );
    assert!(
        store
            .retry_delivery(id, "msg_nope", t0)
            .await
            .expect("retry")
            .is_none()
    );

    // Deleting the job takes its webhook and deliveries with it.
    assert!(store.delete(id).await.expect("delete"));
    assert!(store.deliveries(id).await.expect("list").is_empty());
    assert_eq!(store.webhook(id).await.expect("read"), None);
}
