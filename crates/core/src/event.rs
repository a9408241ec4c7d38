//! The vocabulary of a job's life: where it is ([`JobStatus`]), what happened to
//! it ([`EventKind`], [`JobEvent`]) and why it failed ([`JobFailure`]).
//!
//! Every service speaks these types: workers emit events, the status service
//! records them, the gateway streams them to clients and the job stores keep
//! them. Their names (`stage_started`, `running`, ...) are defined here once and
//! used as they are in routing keys, database rows and JSON.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::job::JobId;
use crate::pipeline::{JobState, Stage};

/// Where a job is in its life. The last three never change once reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

    /// Lowercase name, as stored and shown by the API.
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

/// What happened to a job.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
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

    /// Snake-case name: routing keys (`job.<id>.<kind>`), stored rows, SSE event names.
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

    /// Whether this event ends its job's story.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The status a job ends in after this event, for the final kinds.
    pub fn final_status(self) -> Option<JobStatus> {
        match self {
            Self::Completed => Some(JobStatus::Completed),
            Self::Failed => Some(JobStatus::Failed),
            Self::Cancelled => Some(JobStatus::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed, in the API's error vocabulary, so a failure found deep in
/// the pipeline (an input that does not decode) reaches a synchronous caller as
/// the same 4xx a failure found at intake would have been.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFailure {
    /// Stable machine-readable code (`invalid_image`, `unsuitable_photo`,
    /// `stage_failed`, ...).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault (`inputImages[0].url`), when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl JobFailure {
    /// Code of a failure that is the pipeline's own (a stage gave up).
    pub const STAGE_FAILED: &'static str = "stage_failed";
    /// Code of a job refused at intake because the first queue was full.
    pub const QUEUE_FULL: &'static str = "queue_full";
    /// Code of a job refused at intake because the bus was down.
    pub const UNAVAILABLE: &'static str = "unavailable";

    /// A failure with `code` and `message`, naming no field.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }

    /// A stage that gave up for a reason of its own.
    pub fn stage(message: impl Into<String>) -> Self {
        Self::new(Self::STAGE_FAILED, message)
    }

    /// The same failure blaming `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// True when the client's input, not the pipeline, is at fault.
    pub fn is_client_error(&self) -> bool {
        self.field.is_some()
    }
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// One thing that happened to a job. `(job, kind, stage, attempt)` identifies
/// it: the same identity seen twice is a redelivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job: JobId,
    pub kind: EventKind,
    /// The stage concerned (stage events, and failures within a stage).
    pub stage: Option<Stage>,
    /// Delivery attempt of the stage (1-based), 0 for job-level events.
    pub attempt: u32,
    /// Seconds the event reports: a finished stage's wall time, the job's total
    /// on completion, 0 otherwise.
    pub seconds: f64,
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Why, for `failed` and `stage_retrying` (and `cancelled` when given).
    pub failure: Option<JobFailure>,
    /// The job's state after a finished stage, and its final state on
    /// completion: the checkpoint a restart or the reaper resumes from.
    pub state: Option<JobState>,
    /// Which process emitted it (`analysis@host:pid`, `gateway`).
    pub worker: String,
}

impl JobEvent {
    /// An event of `kind` for `job`, stamped now, with nothing else set.
    pub fn new(job: JobId, kind: EventKind, worker: impl Into<String>) -> Self {
        Self {
            job,
            kind,
            stage: None,
            attempt: 0,
            seconds: 0.0,
            at_ms: crate::clock::now_ms(),
            failure: None,
            state: None,
            worker: worker.into(),
        }
    }

    /// The same event about `stage`, attempt `attempt`.
    pub fn in_stage(mut self, stage: Stage, attempt: u32) -> Self {
        self.stage = Some(stage);
        self.attempt = attempt;
        self
    }

    /// The same event reporting `seconds`.
    pub fn seconds(mut self, seconds: f64) -> Self {
        self.seconds = seconds;
        self
    }

    /// The same event with why it happened.
    pub fn failure(mut self, failure: JobFailure) -> Self {
        self.failure = Some(failure);
        self
    }

    /// The same event carrying the job's state.
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }

    /// Whether this event ends its job's story.
    pub fn is_final(&self) -> bool {
        self.kind.is_final()
    }

    /// The identity that makes a redelivered event a duplicate.
    pub fn identity(&self) -> (JobId, EventKind, Option<Stage>, u32) {
        (self.job, self.kind, self.stage, self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        }
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.is_final(), kind.final_status().is_some());
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn only_completed_failed_and_cancelled_are_final() {
        let finals: Vec<_> = EventKind::ALL.into_iter().filter(|k| k.is_final()).collect();
        assert_eq!(
            finals,
            [EventKind::Completed, EventKind::Failed, EventKind::Cancelled]
        );
    }

    #[test]
    fn builder_sets_what_it_says() {
        let id = JobId::new();
        let e = JobEvent::new(id, EventKind::StageFinished, "w")
            .in_stage(Stage::Upscaling, 2)
            .seconds(1.5);
        assert_eq!(
            e.identity(),
            (id, EventKind::StageFinished, Some(Stage::Upscaling), 2)
        );
        assert!(e.at_ms > 1_700_000_000_000);
        let f = JobFailure::new("invalid_image", "truncated").with_field("inputImages[0].url");
        assert!(f.is_client_error());
        assert_eq!(f.to_string(), "inputImages[0].url: truncated");
        assert!(!JobFailure::stage("boom").is_client_error());
    }
}
