//! Putting unfinished jobs back into the pipeline from their checkpoints: what
//! `atelier serve` does at start (its in-process queues died with the last
//! process), and what the reaper does for jobs that made no progress.

use atelier_bus::JobBus;
use atelier_core::error::error_chain;
use atelier_core::event::{EventKind, JobEvent, JobFailure};
use atelier_jobs::{JobRecord, JobStore, JobStoreError};

/// Most jobs one pass looks at.
const BATCH: u32 = 500;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Jobs put back into their resume stage.
    pub requeued: usize,
    /// Jobs failed because they cannot be resumed (no checkpoint).
    pub failed: usize,
}

/// Re-publishes every unfinished job last updated at or before
/// `updated_before_ms` to its resume stage. Stages are idempotent (their output
/// keys are deterministic), so a job that was in fact still queued only runs
/// one stage twice.
pub async fn resume_unfinished(
    store: &dyn JobStore,
    bus: &JobBus,
    updated_before_ms: u64,
) -> Result<Resumed, JobStoreError> {
    let mut done = Resumed::default();
    for job in store.unfinished(updated_before_ms, BATCH).await? {
        if resume(store, bus, &job).await {
            done.requeued += 1;
        } else {
            done.failed += 1;
        }
    }
    Ok(done)
}

/// Puts one job back; `false` when it cannot be (it is failed with the reason).
async fn resume(store: &dyn JobStore, bus: &JobBus, job: &JobRecord) -> bool {
    let (Some(state), Some(stage)) = (&job.state, job.resume_stage) else {
        let failure = JobFailure::stage(
            "the job was interrupted and has no checkpoint to resume from; submit it again",
        );
        let event = JobEvent::new(job.id, EventKind::Failed, "resume").failure(failure);
        if let Err(error) = store.apply_event(&event).await {
            tracing::warn!(job = %job.id, error = %error_chain(&error), "could not fail an unresumable job");
        }
        return false;
    };
    match bus.resume(stage, state, None).await {
        Ok(()) => {
            tracing::info!(job = %job.id, stage = stage.as_str(), "job resumed from its checkpoint");
            true
        }
        Err(error) => {
            tracing::warn!(job = %job.id, error = %error_chain(&error), "could not resume a job");
            false
        }
    }
}
