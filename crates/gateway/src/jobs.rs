//! `GET /api/v1/jobs/{id}` and `DELETE /api/v1/jobs/{id}`.

use atelier_core::event::{EventKind, JobEvent, JobStatus};
use atelier_core::job::JobId;
use atelier_core::keys;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::auth::Caller;
use crate::model::JobResource;
use crate::wait::{accepted, load_for};
use crate::{ApiError, AppState};

/// A job id from the path; anything else is an unknown job.
pub fn parse_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no job {raw}")))
}

/// A job: status, stage, timings, and the result or the failure.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    operation_id = "getJob",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's request_id")),
    responses(
        (status = 200, description = "The job", body = JobResource),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody),
        (status = 503, description = "The job store is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobResource>, ApiError> {
    let job = load_for(&app, &caller, parse_id(&id)?).await?;
    Ok(Json(JobResource::from(&job)))
}

/// Cancels a job: stages not yet started are skipped.
#[utoipa::path(
    delete,
    path = "/api/v1/jobs/{id}",
    operation_id = "cancelJob",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's request_id")),
    responses(
        (status = 202, description = "Cancelled; its remaining stages are skipped", body = crate::model::Accepted),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody),
        (status = 409, description = "The job already ended", body = crate::error::ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn cancel_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let job = load_for(&app, &caller, id).await?;
    if job.status.is_terminal() {
        return Err(ApiError::Conflict(format!("job {id} is already {}", job.status)));
    }
    // The marker first: workers that miss the broadcast still find it.
    app.blobs
        .put(&keys::cancel_marker(&id), bytes::Bytes::new())
        .await?;
    app.bus.cancel(id).await?;
    app.bus
        .emit(&JobEvent::new(id, EventKind::Cancelled, "gateway"))
        .await?;
    metrics::counter!(atelier_telemetry::metrics::JOBS_CANCELLED).increment(1);
    Ok(accepted(id, JobStatus::Cancelled))
}
