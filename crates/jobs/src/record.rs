//! The values the job store takes and gives back.

use atelier_core::event::{JobEvent, JobFailure, JobStatus};
use atelier_core::job::{JobId, JobKind};
use atelier_core::pipeline::{JobState, ProcessingTimes, Stage};
use serde::{Deserialize, Serialize};

/// The tenant of callers when API keys are off.
pub const ANONYMOUS_TENANT: &str = "anonymous";

/// A job as the gateway creates it: its initial state (spec, stored inputs) is
/// also its first checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub state: JobState,
    /// Whose job it is: every read, cancel and idempotency key is scoped to it.
    pub tenant: String,
    /// Client-supplied key: a second submission with the same key (and the same
    /// body) gets the first job while the key holds.
    pub idempotency_key: Option<String>,
    /// Fingerprint of the request body; the same key with another body is refused.
    pub request_hash: Option<String>,
    /// How long the idempotency key holds after creation.
    pub idempotency_ttl_ms: u64,
    /// Most unfinished jobs the tenant may have; `None` = no limit.
    pub max_in_flight: Option<u32>,
}

impl NewJob {
    /// A job for `state` of the anonymous tenant, with an optional idempotency key.
    pub fn new(state: JobState, idempotency_key: Option<String>) -> Self {
        Self {
            state,
            tenant: ANONYMOUS_TENANT.to_string(),
            idempotency_key,
            request_hash: None,
            idempotency_ttl_ms: u64::MAX,
            max_in_flight: None,
        }
    }

    /// The same job for `tenant`.
    pub fn for_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }

    pub fn id(&self) -> JobId {
        self.state.spec.id
    }

    /// When the idempotency key stops holding, ms since the Unix epoch.
    pub(crate) fn idempotency_expires_at_ms(&self) -> Option<u64> {
        self.idempotency_key.as_ref().map(|_| {
            self.state
                .spec
                .submitted_at_ms
                .saturating_add(self.idempotency_ttl_ms)
        })
    }

    /// The first row of this job.
    pub(crate) fn into_record(self) -> JobRecord {
        let spec = &self.state.spec;
        JobRecord {
            id: spec.id,
            tenant: self.tenant,
            idempotency_key: self.idempotency_key,
            request_hash: self.request_hash,
            admission: Admission::Pending,
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
            resumes: 0,
        }
    }
}

/// Whether an accepted job was handed to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// Its row exists; its first message is being published.
    Pending,
    /// It is in the pipeline.
    Admitted,
    /// The pipeline refused it (queue full, broker down): it failed at intake.
    Refused,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Admitted => "admitted",
            Self::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Admitted, Self::Refused]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A job and its progress so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub tenant: String,
    pub idempotency_key: Option<String>,
    /// Fingerprint of the body the idempotency key was used with.
    pub request_hash: Option<String>,
    pub admission: Admission,
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
    /// Times the reaper put the job back into the pipeline.
    pub resumes: u32,
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
pub enum Created {
    /// The job was inserted (pending admission).
    New(JobRecord),
    /// The idempotency key holds for an earlier job with the same body: that job.
    Existing(JobRecord),
    /// The idempotency key holds for an earlier job with another body.
    KeyReused { existing: JobId },
    /// The tenant already has this many unfinished jobs.
    TooManyInFlight { limit: u32 },
}

impl Created {
    /// The job, when the outcome has one.
    pub fn job(&self) -> Option<&JobRecord> {
        match self {
            Self::New(job) | Self::Existing(job) => Some(job),
            _ => None,
        }
    }
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
