//! The job store: job rows created by the gateway and progress written by the
//! status service from pipeline events.
//!
//! Three implementations share one set of rules (the private `rules` module) and
//! one behaviour suite (`tests/jobstore.rs`): PostgreSQL for the distributed
//! stack (several gateways and a status service share it), SQLite for
//! `atelier serve` (one process, one file) and memory for tests. Events arrive at
//! least once and possibly late, so applying them is idempotent and a finished
//! job never changes state again.
//!
//! Every job row keeps a checkpoint: the job's state after the last finished
//! stage and the stage to run next, so a restarted `atelier serve` or the reaper
//! can put it back into the pipeline without the messages that carried it.

mod codec;
mod error;
mod keys;
mod list;
mod lock;
mod memory;
mod postgres;
mod record;
pub mod resource;
mod rules;
mod sqlite;
mod webhooks;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use atelier_core::event::{JobEvent, JobFailure};
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use atelier_core::settings::DatabaseSettings;

pub use atelier_core::event::{EventKind, JobStatus};
pub use error::JobStoreError;
pub use keys::{ApiKey, KEY_PREFIX, KeyStore, RateDecision, RateLimits, hash_key, new_key_secret};
pub use list::{DEFAULT_PAGE_SIZE, JobCursor, JobPage, JobQuery, MAX_PAGE_SIZE};
pub use lock::SweepLock;
pub use memory::MemoryJobStore;
pub use postgres::PgJobStore;
pub use record::{
    ANONYMOUS_TENANT, Admission, Created, JobCounts, JobRecord, NewJob, StageStats, StoredEvent,
};
pub use sqlite::SqliteJobStore;
pub use webhooks::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryStatus, NewDelivery, Webhook, WebhookStore,
};

/// Job rows and their progress. The gateway creates and reads; the status
/// service is the only writer of progress, through [`JobStore::apply_event`].
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Inserts a queued job, pending admission, unless its tenant's idempotency
    /// key still holds for an earlier job (that job, or `KeyReused` when the
    /// body differs) or the tenant is at its in-flight limit. Exact under
    /// concurrent submissions, from any number of gateways.
    async fn create(&self, job: NewJob) -> Result<Created, JobStoreError>;

    /// The job `id`, if it exists (whoever's it is: callers check the tenant).
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobStoreError>;

    /// The job `tenant` created under `key` while the key holds, so a repeated
    /// request skips fetching its inputs again.
    async fn find_by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, JobStoreError>;

    /// Records whether the pipeline took job `id`. A refusal fails the job with
    /// `failure` and frees its idempotency key, so a retry starts afresh.
    async fn set_admission(
        &self,
        id: JobId,
        admission: Admission,
        failure: Option<JobFailure>,
    ) -> Result<Option<JobRecord>, JobStoreError>;

    /// Counts one more resumption of job `id` (by the reaper) and stamps it as
    /// progress; returns how many it has had.
    async fn mark_resumed(&self, id: JobId) -> Result<u32, JobStoreError>;

    /// Takes (or renews) the lease `name` for `holder` until `ttl_ms` from now,
    /// unless another holder's lease is still running. One holder at a time,
    /// cluster-wide, for periodic chores.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool, JobStoreError>;

    /// Forgets a job entirely. Returns whether a job was removed.
    async fn delete(&self, id: JobId) -> Result<bool, JobStoreError>;

    /// Readiness: the store answers.
    async fn ping(&self) -> Result<(), JobStoreError>;

    /// Records `event` and moves the job accordingly. Duplicates change nothing,
    /// a terminal status is never left, and an unknown job yields `Ok(None)` (its
    /// row may not be visible yet, or the event is stale). Otherwise returns the
    /// job after the event.
    async fn apply_event(&self, event: &JobEvent) -> Result<Option<JobRecord>, JobStoreError>;

    /// The job's recorded events in the order they were applied, each with its
    /// sequence number (for replaying progress to a late subscriber).
    async fn events(&self, id: JobId) -> Result<Vec<StoredEvent>, JobStoreError>;

    /// Number of jobs in each status.
    async fn counts(&self) -> Result<JobCounts, JobStoreError>;

    /// One entry per stage in `Stage::ALL` order; timing figures cover stage
    /// finishes within the last `window_seconds`.
    async fn stage_stats(&self, window_seconds: u32) -> Result<Vec<StageStats>, JobStoreError>;

    /// Jobs not yet finished whose last progress is at or before
    /// `updated_before_ms`, least recently updated first, at most `limit`: what a
    /// restart re-enqueues and what the reaper looks at.
    async fn unfinished(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobRecord>, JobStoreError>;

    /// One page of jobs matching `query`, newest first (creation time, then
    /// id), and where the next page starts.
    async fn list(&self, query: &JobQuery) -> Result<JobPage, JobStoreError>;

    /// Puts a failed job back to work at `stage`, for a dead letter being
    /// replayed: running (queued if it never started), failure cleared, its
    /// checkpoint kept and `stage` to resume at, and its `failed` event
    /// forgotten so a second failure is recorded again. A job in any other
    /// status is returned unchanged; `None` when there is no such job.
    async fn reopen(&self, id: JobId, stage: Stage) -> Result<Option<JobRecord>, JobStoreError>;

    /// Ids of finished jobs (completed, failed, cancelled) last updated at or
    /// before `updated_before_ms`, oldest first, at most `limit`.
    async fn finished_before(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobId>, JobStoreError>;

    /// Deletes the jobs of `ids` that are finished, with their events and
    /// stage timings; an unfinished job is left alone. Returns how many went.
    async fn delete_finished(&self, ids: &[JobId]) -> Result<u64, JobStoreError>;

    /// Clears idempotency keys that expired at or before `now_ms` (their jobs
    /// stay). Returns how many were cleared.
    async fn clear_expired_idempotency_keys(&self, now_ms: u64) -> Result<u64, JobStoreError>;

    /// The retention sweeper's lock, unless another sweeper holds it
    /// (cluster-wide on PostgreSQL).
    async fn try_sweep_lock(&self) -> Result<Option<SweepLock>, JobStoreError>;
}

/// Everything the edge and the pipeline keep: jobs, API keys, rate limits,
/// webhook deliveries.
pub trait Store: JobStore + KeyStore + RateLimits + WebhookStore {}

impl<T: JobStore + KeyStore + RateLimits + WebhookStore> Store for T {}

/// The store `settings.url` names: `postgres://…` (the stack), `sqlite://PATH`
/// (`atelier serve`; the file is created when missing) or `memory://` (tests).
pub async fn connect(settings: &DatabaseSettings) -> Result<Arc<dyn Store>, JobStoreError> {
    let url = settings.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgJobStore::connect(settings).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteJobStore::connect(settings).await?))
    } else if url == "memory://" {
        Ok(Arc::new(MemoryJobStore::new()))
    } else {
        Err(JobStoreError::UnsupportedUrl(atelier_core::settings::redact_url(
            url,
        )))
    }
}
