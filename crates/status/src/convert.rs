//! Between the wire's events and job states and the job store's records.

use atelier_core::job::JobId;
use atelier_core::pipeline::JobState;
use atelier_proto::v1;
use atelier_storage::{EventKind, JobEventRecord, JobRecord, JobStatus};

/// The store's view of a wire event; `None` when the event is unusable (logged).
pub fn record_of(event: &v1::JobEvent) -> Option<JobEventRecord> {
    let job_id: JobId = event.job_id.parse().ok()?;
    let kind = match v1::EventKind::try_from(event.kind).ok()? {
        v1::EventKind::Queued => EventKind::Queued,
        v1::EventKind::StageStarted => EventKind::StageStarted,
        v1::EventKind::StageFinished => EventKind::StageFinished,
        v1::EventKind::StageRetrying => EventKind::StageRetrying,
        v1::EventKind::Completed => EventKind::Completed,
        v1::EventKind::Failed => EventKind::Failed,
        v1::EventKind::Cancelled => EventKind::Cancelled,
        v1::EventKind::Unspecified => return None,
    };
    let stage = atelier_proto::event_stage(event).ok().flatten();
    let state = atelier_proto::event_state(event).ok().flatten();
    Some(JobEventRecord {
        job_id,
        kind,
        stage,
        attempt: event.attempt,
        seconds: event.seconds,
        at_ms: event.at_ms,
        error: event.error.clone(),
        times: state.as_ref().map(|s| s.times),
        result: state.and_then(|s| serde_json::to_value(s).ok()),
    })
}

/// The wire's view of a stored event (without the final state, which
/// `GetJob` serves).
pub fn event_of(record: &JobEventRecord) -> v1::JobEvent {
    let kind = match record.kind {
        EventKind::Queued => v1::EventKind::Queued,
        EventKind::StageStarted => v1::EventKind::StageStarted,
        EventKind::StageFinished => v1::EventKind::StageFinished,
        EventKind::StageRetrying => v1::EventKind::StageRetrying,
        EventKind::Completed => v1::EventKind::Completed,
        EventKind::Failed => v1::EventKind::Failed,
        EventKind::Cancelled => v1::EventKind::Cancelled,
    };
    let mut event = atelier_proto::event(
        record.job_id,
        kind,
        record.stage,
        record.attempt,
        record.seconds,
        record.error.clone(),
        None,
        "status",
    );
    event.at_ms = record.at_ms;
    event
}

/// A stored job as the wire's `JobStatus`.
pub fn status_of(job: &JobRecord) -> v1::JobStatus {
    let state = match job.status {
        JobStatus::Queued => v1::JobState::Queued,
        JobStatus::Running => v1::JobState::Running,
        JobStatus::Completed => v1::JobState::Completed,
        JobStatus::Failed => v1::JobState::Failed,
        JobStatus::Cancelled => v1::JobState::Cancelled,
    };
    let result = job
        .result
        .as_ref()
        .and_then(|v| serde_json::from_value::<JobState>(v.clone()).ok())
        .map(|s| v1::JobSnapshot::from(&s));
    v1::JobStatus {
        job_id: job.id.to_string(),
        state: state.into(),
        current_stage: job
            .current_stage
            .map_or(v1::Stage::Unspecified, v1::Stage::from)
            .into(),
        times: Some(v1::ProcessingTimes::from(job.times)),
        error: job.error.clone(),
        result,
        updated_at_ms: job.updated_at_ms,
    }
}
