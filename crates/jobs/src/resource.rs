//! A job as the API shows it: `GET /api/v1/jobs/{id}` answers with it, and a
//! webhook delivery carries it as its body, so both are the same bytes.

use atelier_core::event::{JobFailure, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::{JobState, ProcessingTimes, Stage};
use atelier_core::response::GenerateResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::JobRecord;

/// The URL a client fetches a job's artefact `key` from.
pub fn file_url(id: &JobId, key: &str) -> String {
    format!("/api/v1/files/{id}/{key}")
}

/// Where a job's status can be read.
pub fn status_url(id: &JobId) -> String {
    format!("/api/v1/jobs/{id}")
}

/// The result body with the API's file URLs.
pub fn result_body(state: &JobState) -> GenerateResponse {
    let id = state.spec.id;
    GenerateResponse::from_state(state, |key| file_url(&id, key))
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
