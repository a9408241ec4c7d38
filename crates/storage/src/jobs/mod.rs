//! The job store: job rows created by the gateway and progress written by the
//! status service from pipeline events.
//!
//! Two implementations share one set of rules (the private `rules` module): PostgreSQL for the
//! services (several gateways and a status service share it) and memory for
//! `atelier process` and tests. Events arrive at least once and possibly late, so
//! applying them is idempotent and a finished job never changes state again.

mod memory;
mod postgres;
mod rules;

use std::fmt;

use async_trait::async_trait;
use atelier_core::job::{JobId, JobKind};
use atelier_core::pipeline::{ProcessingTimes, Stage};
use serde::{Deserialize, Serialize};

use crate::StorageError;

pub use memory::MemoryJobStore;
pub use postgres::PgJobStore;

/// Where a job is in its life. The last three never change once reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Lowercase name, as stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `s` (as produced by [`JobStatus::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// True once the job is over: no later event may change it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a job, as reported on the events exchange. Defined here (not
/// in `proto`) so storage depends on nothing but `core`; the status service maps
/// protobuf events onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Queued,
    StageStarted,
    StageFinished,
    StageRetrying,
    Completed,
    Failed,
    Cancelled,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        Self::Queued,
        Self::StageStarted,
        Self::StageFinished,
        Self::StageRetrying,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Snake-case name, as stored in `job_events.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::StageStarted => "stage_started",
            Self::StageFinished => "stage_finished",
            Self::StageRetrying => "stage_retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The kind named `s` (as produced by [`EventKind::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A job as the gateway creates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub id: JobId,
    /// Client-supplied key: a second submission with the same key gets the first job.
    pub idempotency_key: Option<String>,
    pub kind: JobKind,
    /// Message priority 0–9.
    pub priority: u8,
    /// The validated request as JSON, kept for status pages and reruns.
    pub request: serde_json::Value,
    /// Milliseconds since the Unix epoch; becomes `created_at_ms`.
    pub submitted_at_ms: u64,
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
    pub request: serde_json::Value,
    /// The final response body, once completed.
    pub result: Option<serde_json::Value>,
    /// Why the job failed (or was cancelled, when a reason was given).
    pub error: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub times: ProcessingTimes,
}

/// The outcome of [`JobStore::create`].
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub job: JobRecord,
    /// True when the idempotency key was already taken and `job` is the earlier job.
    pub existing: bool,
}

/// One pipeline event. `(job_id, kind, stage, attempt)` identifies it: the same
/// identity applied twice is a redelivery and is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEventRecord {
    pub job_id: JobId,
    pub kind: EventKind,
    /// The stage concerned (stage events, and failures within a stage).
    pub stage: Option<Stage>,
    /// Delivery attempt of the stage (1-based in the broker; any value is accepted).
    pub attempt: u32,
    /// Duration the event reports (a finished stage's seconds), 0 otherwise.
    pub seconds: f64,
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub error: Option<String>,
    /// The response body, on completion.
    pub result: Option<serde_json::Value>,
    /// The job's times as the worker saw them, on completion or failure.
    pub times: Option<ProcessingTimes>,
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

/// Job rows and their progress. The gateway creates and reads; the status
/// service is the only writer of progress, through [`JobStore::apply_event`].
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Inserts a queued job. When `idempotency_key` is already taken, returns that
    /// job with `existing = true` instead (safe under concurrent submissions).
    async fn create(&self, job: NewJob) -> Result<Created, StorageError>;

    /// The job `id`, if it exists.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StorageError>;

    /// The job created under `key`, so a repeated request skips fetching its
    /// inputs again.
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<JobRecord>, StorageError>;

    /// Forgets a job that never entered the pipeline (its first publish was
    /// refused), so a retry with the same idempotency key starts afresh.
    /// Returns whether a job was removed.
    async fn delete(&self, id: JobId) -> Result<bool, StorageError>;

    /// Readiness: the store answers.
    async fn ping(&self) -> Result<(), StorageError>;

    /// Records `event` and moves the job accordingly. Duplicates change nothing,
    /// a terminal status is never left, and an unknown job yields `Ok(None)` (its
    /// row may not be visible yet, or the event is stale). Otherwise returns the
    /// job after the event.
    async fn apply_event(&self, event: &JobEventRecord) -> Result<Option<JobRecord>, StorageError>;

    /// The job's recorded events in the order they were applied (for replaying
    /// progress to a late subscriber).
    async fn events(&self, id: JobId) -> Result<Vec<JobEventRecord>, StorageError>;

    /// Number of jobs in each status.
    async fn counts(&self) -> Result<JobCounts, StorageError>;

    /// One entry per stage in [`Stage::ALL`] order; timing figures cover stage
    /// finishes within the last `window_seconds`.
    async fn stage_stats(&self, window_seconds: u32) -> Result<Vec<StageStats>, StorageError>;
}
