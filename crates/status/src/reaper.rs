//! Jobs that stopped moving. Every job row holds a checkpoint (its state after
//! the last finished stage and the stage to resume at), so a job whose message
//! was lost can be put back into the pipeline without it:
//!
//! - at `atelier serve`'s start, every unfinished job (its in-process queues
//!   died with the last process): [`resume_unfinished`];
//! - periodically, by one reaper at a time cluster-wide (a lease in the job
//!   store): a job accepted but never queued (its gateway died between the row
//!   and the publish), and a job without progress for `reaper.stalled_after`
//!   while its stage's queue is empty. After `reaper.max_resumes` it is failed
//!   with the reason instead.
//!
//! Stages are idempotent (deterministic output keys), so a job that was in fact
//! still on its way only runs a stage twice.

use std::sync::Arc;
use std::time::Duration;

use atelier_bus::JobBus;
use atelier_core::clock::now_ms;
use atelier_core::error::error_chain;
use atelier_core::event::{EventKind, JobEvent, JobFailure};
use atelier_core::settings::ReaperSettings;
use atelier_jobs::{Admission, JobRecord, JobStoreError, Store};
use tokio_util::sync::CancellationToken;

use crate::QueueWatch;

/// Most jobs one pass looks at.
const BATCH: u32 = 500;
/// Name of the reaper's lease.
const LEASE: &str = "reaper";
/// Who emits the reaper's events.
const WORKER: &str = "reaper";

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Jobs put back into their resume stage.
    pub requeued: usize,
    /// Jobs failed (no checkpoint, or too many resumptions).
    pub failed: usize,
}

/// Re-publishes every unfinished job last updated at or before
/// `updated_before_ms` to its resume stage (`atelier serve` at start).
pub async fn resume_unfinished(
    store: &dyn Store,
    bus: &JobBus,
    updated_before_ms: u64,
) -> Result<Resumed, JobStoreError> {
    let mut done = Resumed::default();
    for job in store.unfinished(updated_before_ms, BATCH).await? {
        put_back(store, bus, &job, u32::MAX, &mut done).await;
    }
    Ok(done)
}

/// Runs the reaper every `settings.interval_seconds` until `shutdown`.
pub async fn run_reaper(
    store: Arc<dyn Store>,
    bus: JobBus,
    queues: QueueWatch,
    settings: ReaperSettings,
    shutdown: CancellationToken,
) {
    let holder = format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
        std::process::id()
    );
    let every = Duration::from_secs(settings.interval_seconds);
    let lease_ms = u64::try_from(every.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(3);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.acquire_lease(LEASE, &holder, lease_ms).await {
            Ok(true) => match reap(&*store, &bus, &queues, &settings).await {
                Ok(done) if done != Resumed::default() => {
                    tracing::info!(requeued = done.requeued, failed = done.failed, "reaper pass");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error_chain(&error), "reaper pass failed"),
            },
            Ok(false) => tracing::debug!("another reaper holds the lease"),
            Err(error) => tracing::warn!(error = %error_chain(&error), "cannot take the reaper's lease"),
        }
    }
}

/// One pass of the reaper.
pub async fn reap(
    store: &dyn Store,
    bus: &JobBus,
    queues: &QueueWatch,
    settings: &ReaperSettings,
) -> Result<Resumed, JobStoreError> {
    let now = now_ms();
    let pending_after = settings.pending_after_seconds.saturating_mul(1_000);
    let stalled_after = settings.stalled_after_seconds.saturating_mul(1_000);
    let oldest_worth_a_look = now.saturating_sub(pending_after.min(stalled_after));
    let snapshot = queues.get();
    let mut done = Resumed::default();
    for job in store.unfinished(oldest_worth_a_look, BATCH).await? {
        let idle = now.saturating_sub(job.updated_at_ms);
        let due = match job.admission {
            // Its gateway died after the row and before the publish.
            Admission::Pending => now.saturating_sub(job.created_at_ms) >= pending_after,
            // No progress for long, and nothing waiting in its stage's queue
            // that could be its message.
            _ => {
                idle >= stalled_after
                    && job.resume_stage.is_some_and(|stage| {
                        snapshot
                            .stages
                            .iter()
                            .find(|(s, _)| *s == stage)
                            .is_some_and(|(_, depth)| depth.messages == 0)
                    })
            }
        };
        if due {
            put_back(store, bus, &job, settings.max_resumes, &mut done).await;
        }
    }
    Ok(done)
}

/// Puts one job back into its resume stage, or fails it with the reason.
async fn put_back(store: &dyn Store, bus: &JobBus, job: &JobRecord, max_resumes: u32, done: &mut Resumed) {
    let (Some(state), Some(stage)) = (&job.state, job.resume_stage) else {
        fail(
            bus,
            job,
            "the job was interrupted and has no checkpoint to resume from; submit it again",
        )
        .await;
        done.failed += 1;
        return;
    };
    if job.resumes >= max_resumes {
        let reason = format!(
            "the job made no progress after being put back {} times; see the service logs",
            job.resumes
        );
        fail(bus, job, &reason).await;
        done.failed += 1;
        return;
    }
    match bus.resume(stage, state, None).await {
        Ok(()) => {
            if let Err(error) = store.mark_resumed(job.id).await {
                tracing::warn!(job = %job.id, error = %error_chain(&error), "could not count a resumption");
            }
            tracing::info!(job = %job.id, stage = stage.as_str(), "job resumed from its checkpoint");
            done.requeued += 1;
        }
        Err(error) => tracing::warn!(job = %job.id, error = %error_chain(&error), "could not resume a job"),
    }
}

/// Fails a job through the bus, so waiting gateways hear of it too.
async fn fail(bus: &JobBus, job: &JobRecord, reason: &str) {
    let event = JobEvent::new(job.id, EventKind::Failed, WORKER).failure(JobFailure::stage(reason));
    if let Err(error) = bus.emit(&event).await {
        tracing::warn!(job = %job.id, error = %error_chain(&error), "could not fail a stuck job");
    }
}
