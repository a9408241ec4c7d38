//! The values the job store takes and gives back.

use atelier_core::event::{JobEvent, JobFailure, JobStatus};
use atelier_core::job::{JobId, JobKind};
use atelier_core::pipeline::{JobState, ProcessingTimes, Stage};
use serde::{Deserialize, Serialize};

/// A job as the gateway creates it: its initial state (spec, stored inputs) is
/// also its first checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub state: JobState,
    /// Client-supplied key: a second submission with the same key gets the first job.
    pub idempotency_key: Option<String>,
}

impl NewJob {
    /// A job for `state`, with an optional idempotency key.
    pub fn new(state: JobState, idempotency_key: Option<String>) -> Self {
        Self {
            state,
            idempotency_key,
        }
    }

    pub fn id(&self) -> JobId {
        self.state.spec.id
    }

    /// The first row of this job.
    pub(crate) fn into_record(self) -> JobRecord {
        let spec = &self.state.spec;
        JobRecord {
            id: spec.id,
            idempotency_key: self.idempotency_key,
            kind: spec.kind,
            status: JobStatus::Queued,
            current_stage: None,
            priority: spec.request.effective_priority(),
            created_at_ms: spec.submitted_at_ms,
            updated_at_ms: spec.submitted_at_ms,
            times: ProcessingTimes::default(),
            failure: None,
            resume_stage: Some(Stage::Analysis),
            state: Some(self.state),
        }
    }
}

/// A job and its progress so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub idempotency_key: Option<String>,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The furthest stage that started (kept after the job ends, so a failure
    /// names the stage it failed in).
    pub current_stage: Option<Stage>,
    pub priority: u8,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub times: ProcessingTimes,
    /// Why the job failed (or was cancelled, when a reason was given).
    pub failure: Option<JobFailure>,
    /// The stage to run to make progress from [`JobRecord::state`]; `None`
    /// once the job is over.
    pub resume_stage: Option<Stage>,
    /// The checkpoint: the job's state after its last finished stage (its
    /// initial state before any; its final state once completed). `None` only
    /// for rows written before checkpoints existed.
    pub state: Option<JobState>,
}

impl JobRecord {
    /// The final state, once the job completed.
    pub fn result(&self) -> Option<&JobState> {
        (self.status == JobStatus::Completed)
            .then_some(self.state.as_ref())
            .flatten()
    }
}

/// The outcome of [`crate::JobStore::create`].
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub job: JobRecord,
    /// True when the idempotency key was already taken and `job` is the earlier job.
    pub existing: bool,
}

/// A recorded event with its place in the job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Increases with every event the store records (across jobs), so a client
    /// can resume a stream after the last one it saw.
    pub seq: u64,
    /// The event as recorded (without the state it may have carried: that lives
    /// on the job row).
    pub event: JobEvent,
}

/// Number of jobs in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl JobCounts {
    /// Adds `n` jobs of `status`.
    pub fn add(&mut self, status: JobStatus, n: u64) {
        let slot = match status {
            JobStatus::Queued => &mut self.queued,
            JobStatus::Running => &mut self.running,
            JobStatus::Completed => &mut self.completed,
            JobStatus::Failed => &mut self.failed,
            JobStatus::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }
}

/// Load and timing of one stage, for monitoring and autoscaling decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub stage: Stage,
    /// Jobs running with this as their current stage.
    pub running: u64,
    /// Times this stage finished, all time (one per job and stage).
    pub completed: u64,
    /// Failed jobs whose current stage was this one.
    pub failed: u64,
    /// Finishes within the window; the percentiles and mean cover these.
    pub count_in_window: u64,
    /// Seconds, linear-interpolated percentiles (PostgreSQL `percentile_cont`);
    /// 0 when nothing finished in the window.
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
}

impl StageStats {
    /// A stage with nothing recorded yet.
    pub fn empty(stage: Stage) -> Self {
        Self {
            stage,
            running: 0,
            completed: 0,
            failed: 0,
            count_in_window: 0,
            p50: 0.0,
            p95: 0.0,
            p99: 0.0,
            mean: 0.0,
        }
    }
}
