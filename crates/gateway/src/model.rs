//! The bodies the gateway answers with, as types: what the handlers return is
//! what the OpenAPI document describes.

use atelier_core::event::{EventKind, JobFailure, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::{ProcessingTimes, Stage};
use atelier_core::response::GenerateResponse;
use atelier_jobs::{JobRecord, StoredEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The URL a client fetches a job's artefact `key` from.
pub fn file_url(id: &JobId, key: &str) -> String {
    format!("/api/v1/files/{id}/{key}")
}

/// Where a job's status can be read.
pub fn status_url(id: &JobId) -> String {
    format!("/api/v1/jobs/{id}")
}

/// The result body with the gateway's file URLs.
pub fn result_body(state: &atelier_core::pipeline::JobState) -> GenerateResponse {
    let id = state.spec.id;
    GenerateResponse::from_state(state, |key| file_url(&id, key))
}

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

/// One job: where it is, how long each part took, and its result or failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobResource {
    pub request_id: String,
    pub status: JobStatus,
    /// The furthest stage that started.
    pub current_stage: Option<Stage>,
    pub priority: u8,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub processing_times: ProcessingTimes,
    /// The generate endpoints' body, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<GenerateResponse>,
    /// Why it failed (or was cancelled, when a reason was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
}

impl From<&JobRecord> for JobResource {
    fn from(job: &JobRecord) -> Self {
        Self {
            request_id: job.id.to_string(),
            status: job.status,
            current_stage: job.current_stage,
            priority: job.priority,
            created_at_ms: job.created_at_ms,
            updated_at_ms: job.updated_at_ms,
            processing_times: job.times,
            result: job.result().map(result_body),
            error: job.failure.clone(),
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
