//! The bodies the gateway answers with, as types: what the handlers return is
//! what the OpenAPI document describes.

use atelier_core::event::{EventKind, JobFailure, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use atelier_jobs::StoredEvent;
pub use atelier_jobs::resource::{JobResource, file_url, result_body, status_url};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `202 Accepted`: the job was taken; follow `status_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub request_id: String,
    pub status: JobStatus,
    pub status_url: String,
}

impl Accepted {
    pub fn new(id: JobId, status: JobStatus) -> Self {
        Self {
            request_id: id.to_string(),
            status,
            status_url: status_url(&id),
        }
    }
}

/// The data of one server-sent event about a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobEventBody {
    pub kind: EventKind,
    pub stage: Option<Stage>,
    pub attempt: u32,
    pub seconds: f64,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
}

impl From<&StoredEvent> for JobEventBody {
    fn from(stored: &StoredEvent) -> Self {
        let e = &stored.event;
        Self {
            kind: e.kind,
            stage: e.stage,
            attempt: e.attempt,
            seconds: e.seconds,
            at_ms: e.at_ms,
            error: e.failure.clone(),
        }
    }
}

/// `GET /api/v1/status/queue`: the old service's keys, and `stages` beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueStatusBody {
    /// Always `success` (the old clients check it).
    pub status: String,
    pub queue_info: QueueInfo,
    /// Always `enabled` (the old clients read it).
    pub parallel_processing: String,
    pub stages: Vec<StageQueueBody>,
}

/// The whole pipeline's numbers, with the old keys' meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueInfo {
    /// Jobs waiting for their first stage.
    pub queue_size: u32,
    pub max_queue_size: u32,
    pub running_tasks: u32,
    /// Total concurrent capacity of the connected workers.
    pub max_workers: u32,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    pub is_running: bool,
}

/// One stage's queue, load and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageQueueBody {
    pub stage: Stage,
    pub queue: String,
    pub queue_size: u32,
    pub consumers: u32,
    pub running: u32,
    pub completed: u64,
    pub failed: u64,
    /// Seconds, over the status service's timing window.
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthBody {
    /// `ok` while the process serves.
    pub status: String,
}

/// `GET /readyz`: whether every dependency answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadyBody {
    /// `ready` or `not_ready`.
    pub status: String,
    pub checks: ReadyChecks,
}

/// One flag per dependency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadyChecks {
    pub broker: bool,
    pub job_store: bool,
    pub blob_store: bool,
}
