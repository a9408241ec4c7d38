//! The retention sweeper on the stack's store (PostgreSQL) and `atelier
//! serve`'s (SQLite), each with a blob folder: with a short TTL old finished
//! jobs, their events and their blobs go; running and recent jobs stay; while
//! one sweeper holds the lock another does nothing.

use std::sync::Arc;

use atelier_core::event::{EventKind, JobEvent};
use atelier_core::job::{JobId, JobKind, JobSpec};
use atelier_core::keys;
use atelier_core::pipeline::{JobState, Stage};
use atelier_core::settings::DatabaseSettings;
use atelier_jobs::{NewJob, PgJobStore, SqliteJobStore, Store};
use atelier_status::{RetentionPolicy, Sweep, Swept, sweep};
use atelier_storage::BlobStore;
use bytes::Bytes;

const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The TTL of the test: everything finished up to this long before the sweep goes.
const TTL_MS: u64 = 5_000;

fn database(url: &str, schema: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: url.to_string(),
        schema: schema.to_string(),
        max_connections: 4,
        connect_timeout_ms: 10_000,
    }
}

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        jobs_max_age_ms: Some(TTL_MS),
        blobs_max_age_ms: Some(TTL_MS),
        cache_max_age_ms: Some(TTL_MS),
        batch_size: 2,
    }
}

async fn create(store: &dyn Store, blobs: &BlobStore, key: Option<&str>, ttl_ms: u64) -> JobId {
    let request = serde_json::from_value(serde_json::json!({
        "inputImages": [{ "url": "https://shop.example/a.jpg", "backgrounds": [1, 0, 0] }]
    }))
    .expect("request");
    let id = JobId::new();
    let state = JobState::new(JobSpec {
        id,
        kind: JobKind::Images,
        request,
        inputs: vec![],
        submitted_at_ms: atelier_core::clock::now_ms(),
    });
    let job = NewJob {
        idempotency_ttl_ms: ttl_ms,
        ..NewJob::new(state, key.map(str::to_string))
    };
    store.create(job).await.expect("create");
    for name in [keys::input(0, "jpg"), keys::variation(0, "jpg")] {
        blobs
            .put(
                &format!("{}{name}", keys::job_prefix(&id)),
                Bytes::from_static(b"jpeg"),
            )
            .await
            .expect("put");
    }
    id
}

async fn emit(store: &dyn Store, id: JobId, kind: EventKind, at_ms: u64) {
    let mut event = JobEvent::new(id, kind, "test");
    if kind == EventKind::StageStarted {
        event = event.in_stage(Stage::Analysis, 1);
    }
    event.at_ms = at_ms;
    store.apply_event(&event).await.expect("apply").expect("job");
}

fn folder_exists(root: &std::path::Path, id: JobId) -> bool {
    root.join("jobs").join(id.to_string()).exists()
}

/// The whole story on one store: `other` is a second handle on the same
/// database (another replica's sweeper).
async fn sweeps_old_finished_jobs_only(store: Arc<dyn Store>, other: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tmp");
    let blobs = BlobStore::local(dir.path()).expect("blobs");
    let now = atelier_core::clock::now_ms();
    let old_done = create(&*store, &blobs, Some("spent"), 1).await;
    let old_failed = create(&*store, &blobs, None, u64::MAX).await;
    let running = create(&*store, &blobs, Some("live"), u64::MAX).await;
    let recent = create(&*store, &blobs, None, u64::MAX).await;
    emit(&*store, old_done, EventKind::StageStarted, now).await;
    emit(&*store, old_done, EventKind::Completed, now).await;
    emit(&*store, old_failed, EventKind::Failed, now).await;
    emit(&*store, running, EventKind::StageStarted, now).await;
    // Finished after the sweep's cutoff: too young to go.
    emit(&*store, recent, EventKind::Completed, now + 2 * TTL_MS).await;
    // Files of a job whose row is gone (deleted by hand, or by an older sweep).
    let orphan = JobId::new();
    blobs
        .put(
            &format!("{}result.json", keys::job_prefix(&orphan)),
            Bytes::from_static(b"{}"),
        )
        .await
        .expect("put");
    // A result-cache entry written now, older than the TTL at the sweep.
    blobs
        .put("cache/generation/ab/abcd.json", Bytes::from_static(b"{}"))
        .await
        .expect("put");
    let sweep_at = now + TTL_MS + 1_000;

    // Another sweeper at work: this one does nothing at all.
    let held = other.try_sweep_lock().await.expect("lock").expect("free");
    assert_eq!(
        sweep(&*store, &blobs, policy(), sweep_at).await.expect("sweep"),
        Sweep::Busy
    );
    assert!(
        store.get(old_done).await.expect("get").is_some(),
        "untouched while busy"
    );
    assert!(folder_exists(dir.path(), old_done));
    held.release().await;

    let Sweep::Done(swept) = sweep(&*store, &blobs, policy(), sweep_at).await.expect("sweep") else {
        panic!("the lock was free");
    };
    assert_eq!(
        swept,
        Swept {
            jobs: 2,
            blob_folders: 3,
            blobs: 5,
            cache_blobs: 1,
            idempotency_keys: 1,
        }
    );
    for gone in [old_done, old_failed] {
        assert_eq!(store.get(gone).await.expect("get"), None, "the row goes");
        assert!(
            store.events(gone).await.expect("events").is_empty(),
            "its events go"
        );
        assert!(!folder_exists(dir.path(), gone), "its blobs go");
    }
    assert!(!folder_exists(dir.path(), orphan), "orphaned blobs go");
    assert!(
        !dir.path().join("cache/generation/ab/abcd.json").exists(),
        "old cache entries go"
    );
    for kept in [running, recent] {
        assert!(store.get(kept).await.expect("get").is_some(), "kept");
        assert!(!store.events(kept).await.expect("events").is_empty());
        assert!(folder_exists(dir.path(), kept));
    }
    let running_job = store.get(running).await.expect("get").expect("job");
    assert_eq!(
        running_job.idempotency_key.as_deref(),
        Some("live"),
        "an unexpired key stays"
    );

    // Nothing more to do the second time.
    assert_eq!(
        sweep(&*store, &blobs, policy(), sweep_at).await.expect("sweep"),
        Sweep::Done(Swept::default())
    );
    // Retention off: even old jobs stay.
    let off = RetentionPolicy {
        jobs_max_age_ms: None,
        blobs_max_age_ms: None,
        cache_max_age_ms: None,
        batch_size: 10,
    };
    assert_eq!(
        sweep(&*store, &blobs, off, sweep_at + 10 * TTL_MS)
            .await
            .expect("sweep"),
        Sweep::Done(Swept::default())
    );
    assert!(store.get(recent).await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sweeps_old_finished_jobs_only_one_sweeper_at_a_time() {
    let url = std::env::var("ATELIER_TEST_DATABASE_URL").unwrap_or_else(|_| DATABASE_URL.to_string());
    let schema = format!("ret_{}", uuid::Uuid::new_v4().simple());
    let settings = database(&url, &schema);
    let store = PgJobStore::connect(&settings).await.expect("connect");
    let other = PgJobStore::connect(&settings).await.expect("connect");
    let pools = [store.pool().clone(), other.pool().clone()];
    let outcome = tokio::spawn(sweeps_old_finished_jobs_only(Arc::new(store), Arc::new(other))).await;
    for pool in pools {
        pool.close().await;
    }
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-q", "-c"])
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .output();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sweeps_old_finished_jobs_only_one_sweeper_at_a_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("atelier.db").display());
    let store = SqliteJobStore::connect(&database(&url, "atelier"))
        .await
        .expect("open");
    // `atelier serve` is one process: its store's clones share the lock.
    sweeps_old_finished_jobs_only(Arc::new(store.clone()), Arc::new(store)).await;
}
