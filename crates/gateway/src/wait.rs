//! Waiting for a job's end: on the event feed, with the job store as the source
//! of truth (a job that ended before the wait began, on another gateway, or while
//! this gateway's feed was reconnecting is still found).

use std::sync::Arc;
use std::time::Duration;

use atelier_core::job::JobId;
use atelier_core::pipeline::JobState;
use atelier_core::response::GenerateResponse;
use atelier_proto::v1::{EventKind, JobEvent};
use atelier_storage::{JobRecord, JobStatus};
use axum::Json;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::submit::{accepted, store_down};
use crate::{ApiError, AppState};

/// How often a waiting request re-reads the job store even without events.
const RECHECK: Duration = Duration::from_secs(2);
/// Longest wait for the job store to show an end the event feed announced.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);
/// Poll interval of that wait.
const SETTLE_POLL: Duration = Duration::from_millis(5);

/// Waits up to `limit` for job `id` to end and answers as the old API did: the
/// result (200), the failure, or — when the wait runs out — 202 with the job URL.
pub async fn wait_for_job(
    app: &AppState,
    id: JobId,
    mut feed: broadcast::Receiver<Arc<JobEvent>>,
    limit: Duration,
) -> Result<Response, ApiError> {
    let deadline = Instant::now() + limit;
    let wanted = id.to_string();
    loop {
        let job = app
            .jobs
            .get(id)
            .await
            .map_err(|e| store_down(app, e))?
            .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
        if job.status.is_terminal() {
            return final_answer_from_record(&job);
        }
        let recheck = (Instant::now() + RECHECK).min(deadline);
        loop {
            match tokio::time::timeout_at(recheck, feed.recv()).await {
                Ok(Ok(event)) if event.job_id == wanted && atelier_proto::is_final_event(&event) => {
                    settle(app, id).await;
                    return final_answer_from_event(id, &event);
                }
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => break,
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
        if Instant::now() >= deadline {
            return Ok(accepted(id, job.status));
        }
    }
}

/// Gives the status service a moment to record the end the gateway just heard
/// of, so a client that reads the job right after our answer sees it finished.
/// Bounded: the answer never waits on a slow status service for long.
async fn settle(app: &AppState, id: JobId) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    while Instant::now() < deadline {
        match app.jobs.get(id).await {
            Ok(Some(job)) if !job.status.is_terminal() => tokio::time::sleep(SETTLE_POLL).await,
            _ => return,
        }
    }
}

fn final_answer_from_event(id: JobId, event: &JobEvent) -> Result<Response, ApiError> {
    match EventKind::try_from(event.kind) {
        Ok(EventKind::Completed) => {
            let state = atelier_proto::event_state(event)
                .ok()
                .flatten()
                .ok_or_else(|| ApiError::Internal(format!("job {id} completed without a result")))?;
            Ok(completed(&state))
        }
        Ok(EventKind::Failed) => Err(ApiError::JobFailed {
            job: id.to_string(),
            reason: event.error.clone().unwrap_or_else(|| "unknown reason".into()),
        }),
        _ => Err(ApiError::Conflict(format!("job {id} was cancelled"))),
    }
}

fn final_answer_from_record(job: &JobRecord) -> Result<Response, ApiError> {
    match job.status {
        JobStatus::Completed => {
            let state = job
                .result
                .as_ref()
                .and_then(|v| serde_json::from_value::<JobState>(v.clone()).ok())
                .ok_or_else(|| ApiError::Internal(format!("job {} completed without a result", job.id)))?;
            Ok(completed(&state))
        }
        JobStatus::Failed => Err(ApiError::JobFailed {
            job: job.id.to_string(),
            reason: job.error.clone().unwrap_or_else(|| "unknown reason".into()),
        }),
        _ => Err(ApiError::Conflict(format!("job {} was cancelled", job.id))),
    }
}

/// The old API's 200 body for a finished job.
pub fn completed(state: &JobState) -> Response {
    let id = state.spec.id;
    Json(response_body(state, &id)).into_response()
}

/// The result body with the gateway's file URLs.
pub fn response_body(state: &JobState, id: &JobId) -> GenerateResponse {
    GenerateResponse::from_state(state, |key| AppState::file_url(id, key))
}
