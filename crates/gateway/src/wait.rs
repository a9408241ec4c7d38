//! Waiting for a job's end, as the old API did: on the event feed, with the
//! job store as the source of truth (a job that ended before the wait began, on
//! another gateway, or while this gateway's feed was reconnecting is still found).

use std::time::Duration;

use atelier_core::event::JobStatus;
use atelier_core::job::JobId;
use atelier_jobs::JobRecord;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::auth::Caller;
use crate::model::{Accepted, result_body, status_url};
use crate::watch::{JobWatch, Wake, settle};
use crate::{ApiError, AppState};

/// How often a waiting request re-reads the job store even without news.
const RECHECK: Duration = Duration::from_secs(2);

/// Waits up to `limit` for job `id` to end and answers as the old API did: the
/// result (200), the failure, or — when the wait runs out — 202 with the job URL.
pub async fn wait_for_job(
    app: &AppState,
    caller: &Caller,
    id: JobId,
    mut watch: JobWatch,
    limit: Duration,
) -> Result<Response, ApiError> {
    let deadline = Instant::now() + limit;
    loop {
        let job = load_for(app, caller, id).await?;
        if job.status.is_terminal() {
            return final_answer(&job);
        }
        let next = tokio::select! {
            // Shutting down: the job goes on; the caller follows it elsewhere.
            () = app.drain.stop.cancelled() => return Ok(accepted(id, job.status)),
            next = watch.next((Instant::now() + RECHECK).min(deadline)) => next,
        };
        match next {
            Wake::Event(event) if event.is_final() => {
                let ended = settle(|| async {
                    let job = load_for(app, caller, id).await?;
                    Ok::<_, ApiError>(job.status.is_terminal().then_some(job))
                })
                .await?;
                if let Some(job) = ended {
                    return final_answer(&job);
                }
            }
            Wake::Event(_) | Wake::Missed => {}
            Wake::Timeout if Instant::now() >= deadline => return Ok(accepted(id, job.status)),
            Wake::Timeout => {}
        }
    }
}

/// Job `id` when it is `caller`'s; 404 otherwise (another tenant's job is as
/// unknown as a job that does not exist).
pub async fn load_for(app: &AppState, caller: &Caller, id: JobId) -> Result<JobRecord, ApiError> {
    app.jobs
        .get(id)
        .await?
        .filter(|job| job.tenant == caller.tenant)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))
}

/// The answer to a synchronous call about a finished job.
pub fn final_answer(job: &JobRecord) -> Result<Response, ApiError> {
    match job.status {
        JobStatus::Completed => {
            let state = job
                .result()
                .ok_or_else(|| ApiError::Internal(format!("job {} completed without a result", job.id)))?;
            Ok(Json(result_body(state)).into_response())
        }
        JobStatus::Failed => Err(ApiError::JobFailed {
            job: job.id.to_string(),
            failure: job
                .failure
                .clone()
                .unwrap_or_else(|| atelier_core::event::JobFailure::stage("failed without a reason")),
        }),
        _ => Err(ApiError::Conflict(format!("job {} was {}", job.id, job.status))),
    }
}

/// The asynchronous answer: 202, where to look, and `Location`.
pub fn accepted(id: JobId, status: JobStatus) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(Accepted::new(id, status))).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&status_url(&id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
