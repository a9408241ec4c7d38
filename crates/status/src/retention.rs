//! Retention: finished jobs, their events and their blobs are deleted once
//! older than `[retention]` says, result-cache entries once older than
//! `cache.ttl_days`, and expired idempotency keys are cleared.
//!
//! The sweeper runs every `retention.interval_seconds` in the status service
//! (and so inside `atelier serve`). One sweep at a time, cluster-wide: a sweep
//! first takes the job store's sweeper lock (a PostgreSQL advisory lock) and a
//! replica that finds it held skips its turn. Queued and running jobs are never
//! touched: the store deletes only rows still finished at the moment of
//! deletion, and a job's blobs go only when its row says it finished long ago
//! (or no row names them any more).
//!
//! Blobs go before rows, so a failure halfway leaves rows that the next sweep
//! finds again, never files nothing points to for ever.

use std::sync::Arc;
use std::time::Duration;

use atelier_core::clock::now_ms;
use atelier_core::error::error_chain;
use atelier_core::job::JobId;
use atelier_core::keys;
use atelier_core::settings::{CacheSettings, RetentionSettings};
use atelier_jobs::{JobStoreError, Store};
use atelier_storage::{BlobStore, StorageError};
use tokio_util::sync::CancellationToken;

/// Where the services keep jobs' blobs: one folder per job id below it.
const JOBS_FOLDER: &str = "jobs/";
/// Where the stages keep the result cache (atelier-stages' `cache::PREFIX`).
const CACHE_FOLDER: &str = "cache/";

/// What a sweep deletes, and how much at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Finished jobs older than this go with their events; `None` = kept.
    pub jobs_max_age_ms: Option<u64>,
    /// Finished jobs' blobs older than this go; `None` = kept.
    pub blobs_max_age_ms: Option<u64>,
    /// Result-cache entries written longer ago than this go; `None` = kept.
    /// No job points into the cache (a hit is copied into the job), so age
    /// alone decides.
    pub cache_max_age_ms: Option<u64>,
    /// Jobs deleted per round trip.
    pub batch_size: u32,
}

impl RetentionPolicy {
    /// The policy of `[retention]` and `[cache]`.
    pub fn new(retention: &RetentionSettings, cache: &CacheSettings) -> Self {
        Self {
            jobs_max_age_ms: retention.jobs_max_age_ms(),
            blobs_max_age_ms: retention.blobs_max_age_ms(),
            cache_max_age_ms: cache.max_age_ms(),
            batch_size: retention.batch_size,
        }
    }

    fn keeps_everything(&self) -> bool {
        self.jobs_max_age_ms.is_none() && self.blobs_max_age_ms.is_none() && self.cache_max_age_ms.is_none()
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Job rows deleted (their events and stage timings with them).
    pub jobs: u64,
    /// Jobs whose blob folders were deleted.
    pub blob_folders: u64,
    /// Blobs deleted in those folders.
    pub blobs: u64,
    /// Result-cache blobs deleted (records, payloads and lapsed claims).
    pub cache_blobs: u64,
    /// Expired idempotency keys cleared.
    pub idempotency_keys: u64,
}

/// A sweep's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// This sweeper held the lock and did this.
    Done(Swept),
    /// Another sweeper holds the lock: nothing was done.
    Busy,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("the job store failed during a retention sweep")]
    Jobs(#[from] JobStoreError),
    #[error("the blob store failed during a retention sweep")]
    Blobs(#[from] StorageError),
}

/// One sweep as of `now_ms`, unless another sweeper is at work.
pub async fn sweep(
    store: &dyn Store,
    blobs: &BlobStore,
    policy: RetentionPolicy,
    now_ms: u64,
) -> Result<Sweep, SweepError> {
    let Some(lock) = store.try_sweep_lock().await? else {
        return Ok(Sweep::Busy);
    };
    let swept = sweep_locked(store, blobs, policy, now_ms).await;
    lock.release().await;
    swept.map(Sweep::Done)
}

async fn sweep_locked(
    store: &dyn Store,
    blobs: &BlobStore,
    policy: RetentionPolicy,
    now_ms: u64,
) -> Result<Swept, SweepError> {
    let mut swept = Swept {
        idempotency_keys: store.clear_expired_idempotency_keys(now_ms).await?,
        ..Swept::default()
    };
    if let Some(age) = policy.blobs_max_age_ms {
        sweep_blobs(store, blobs, now_ms.saturating_sub(age), &mut swept).await?;
    }
    if let Some(age) = policy.cache_max_age_ms {
        swept.cache_blobs = blobs
            .delete_older_than(CACHE_FOLDER, now_ms.saturating_sub(age))
            .await?;
    }
    if let Some(age) = policy.jobs_max_age_ms {
        let cutoff = now_ms.saturating_sub(age);
        loop {
            let ids = store.finished_before(cutoff, policy.batch_size).await?;
            if ids.is_empty() {
                break;
            }
            let deleted = store.delete_finished(&ids).await?;
            swept.jobs += deleted;
            // Every listed job became unfinished meanwhile (reopened): stop
            // rather than list them again.
            if deleted == 0 {
                break;
            }
        }
    }
    Ok(swept)
}

/// Deletes the blob folders of jobs that finished at or before `cutoff_ms`,
/// and of jobs created by then that no row names any more.
async fn sweep_blobs(
    store: &dyn Store,
    blobs: &BlobStore,
    cutoff_ms: u64,
    swept: &mut Swept,
) -> Result<(), SweepError> {
    for folder in blobs.folders(JOBS_FOLDER).await? {
        let Ok(id) = folder.parse::<JobId>() else {
            continue;
        };
        // A job cannot have finished before it was created: younger folders
        // are skipped without asking the store.
        if created_ms(id).is_none_or(|created| created > cutoff_ms) {
            continue;
        }
        let expired = match store.get(id).await? {
            None => true,
            Some(job) => job.status.is_terminal() && job.updated_at_ms <= cutoff_ms,
        };
        if expired {
            swept.blobs += blobs.delete_prefix(&keys::job_prefix(&id)).await?;
            swept.blob_folders += 1;
        }
    }
    Ok(())
}

/// When job `id` was created: its UUIDv7 carries the millisecond.
fn created_ms(id: JobId) -> Option<u64> {
    let (seconds, nanos) = id.0.get_timestamp()?.to_unix();
    Some(seconds.saturating_mul(1_000) + u64::from(nanos / 1_000_000))
}

/// Sweeps every `settings.interval_seconds` until `shutdown`.
pub async fn run_sweeper(
    store: Arc<dyn Store>,
    blobs: BlobStore,
    settings: RetentionSettings,
    cache: CacheSettings,
    shutdown: CancellationToken,
) {
    let policy = RetentionPolicy::new(&settings, &cache);
    if policy.keeps_everything() {
        tracing::info!(
            "retention: jobs, blobs and cache entries are kept forever; only expired idempotency keys are cleared"
        );
    }
    let mut tick = tokio::time::interval(Duration::from_secs(settings.interval_seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep(&*store, &blobs, policy, now_ms()).await {
            Ok(Sweep::Done(swept)) if swept != Swept::default() => tracing::info!(
                jobs = swept.jobs,
                blob_folders = swept.blob_folders,
                blobs = swept.blobs,
                cache_blobs = swept.cache_blobs,
                idempotency_keys = swept.idempotency_keys,
                "retention sweep"
            ),
            Ok(Sweep::Done(_)) => tracing::debug!("retention sweep: nothing to delete"),
            Ok(Sweep::Busy) => tracing::debug!("another retention sweeper is at work"),
            Err(error) => tracing::warn!(error = %error_chain(&error), "retention sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_id_tells_when_it_was_made() {
        let before = now_ms();
        let id = JobId::new();
        let made = created_ms(id).expect("UUIDv7");
        assert!(made >= before && made <= now_ms(), "{before} {made}");
        assert_eq!(created_ms(JobId(uuid::Uuid::nil())), None);
    }
}
