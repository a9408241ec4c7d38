//! Stored jobs as the wire's `JobStatus`.

use atelier_jobs::{JobRecord, JobStatus};
use atelier_proto::v1;

/// A stored job as the wire's `JobStatus`.
pub fn status_of(job: &JobRecord) -> v1::JobStatus {
    let state = match job.status {
        JobStatus::Queued => v1::JobState::Queued,
        JobStatus::Running => v1::JobState::Running,
        JobStatus::Completed => v1::JobState::Completed,
        JobStatus::Failed => v1::JobState::Failed,
        JobStatus::Cancelled => v1::JobState::Cancelled,
    };
    v1::JobStatus {
        job_id: job.id.to_string(),
        state: state.into(),
        current_stage: job
            .current_stage
            .map_or(v1::Stage::Unspecified, v1::Stage::from)
            .into(),
        times: Some(v1::ProcessingTimes::from(job.times)),
        error: job.failure.as_ref().map(|f| f.message.clone()),
        result: job.result().map(v1::JobSnapshot::from),
        updated_at_ms: job.updated_at_ms,
        error_code: job.failure.as_ref().map(|f| f.code.clone()),
        error_field: job.failure.as_ref().and_then(|f| f.field.clone()),
        tenant: job.tenant.clone(),
        created_at_ms: job.created_at_ms,
    }
}

/// The wire's job state as a status filter: `None` for unspecified (any).
pub fn status_filter(state: v1::JobState) -> Option<JobStatus> {
    match state {
        v1::JobState::Unspecified => None,
        v1::JobState::Queued => Some(JobStatus::Queued),
        v1::JobState::Running => Some(JobStatus::Running),
        v1::JobState::Completed => Some(JobStatus::Completed),
        v1::JobState::Failed => Some(JobStatus::Failed),
        v1::JobState::Cancelled => Some(JobStatus::Cancelled),
    }
}
