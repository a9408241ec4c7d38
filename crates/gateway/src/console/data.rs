//! A job as the console shows it (any tenant's, with its events and inputs),
//! and its files.

use atelier_core::job::JobId;
use atelier_core::response::GenerateResponse;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::jobs::parse_id;
use crate::model::{JobEventBody, JobResource};
use crate::{ApiError, AppState};

/// One input photo of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsoleInput {
    /// The stored photo, under the console's files route.
    pub url: String,
    /// Where the client said it came from (URL or file name).
    pub source: String,
}

/// A job for the console: the API's job resource (its file URLs under the
/// console's files route), whose it is, its inputs and its events in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsoleJob {
    pub job: JobResource,
    pub tenant: String,
    /// `images` or `full`.
    pub kind: String,
    pub inputs: Vec<ConsoleInput>,
    pub events: Vec<JobEventBody>,
}

/// Where the console reads job `id`'s file `key`.
fn console_file_url(id: &JobId, key: &str) -> String {
    format!("/api/v1/admin/console/files/{id}/{key}")
}

/// Any tenant's job, with its inputs and events.
#[utoipa::path(
    get,
    path = "/api/v1/admin/console/jobs/{id}",
    operation_id = "consoleJob",
    tag = "console",
    params(("id" = String, Path, description = "The job's request_id")),
    responses(
        (status = 200, description = "The job, its inputs and its events", body = ConsoleJob),
        (status = 403, description = "Not an admin key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody),
    )
)]
pub async fn console_job(
    State(app): State<AppState>,
    _operator: Admin,
    Path(id): Path<String>,
) -> Result<Json<ConsoleJob>, ApiError> {
    let id = parse_id(&id)?;
    let record = app
        .jobs
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    let events = app.jobs.events(id).await?;
    let mut job = JobResource::from(&record);
    job.result = record
        .result()
        .map(|state| GenerateResponse::from_state(state, |key| console_file_url(&id, key)));
    let inputs = record
        .state
        .as_ref()
        .map(|state| {
            state
                .spec
                .inputs
                .iter()
                .map(|input| ConsoleInput {
                    url: console_file_url(&id, &input.key),
                    source: input.source.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(ConsoleJob {
        job,
        tenant: record.tenant.clone(),
        kind: record.kind.as_str().to_string(),
        inputs,
        events: events.iter().map(JobEventBody::from).collect(),
    }))
}

/// Any tenant's job file, for the console.
#[utoipa::path(
    get,
    path = "/api/v1/admin/console/files/{id}/{path}",
    operation_id = "consoleFile",
    tag = "console",
    params(
        ("id" = String, Path, description = "The job's request_id"),
        ("path" = String, Path, description = "The artefact's path, as the console job's URLs give it"),
    ),
    responses(
        (status = 200, description = "The file, with its content type", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "Not an admin key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown job or file", body = crate::error::ErrorBody),
    )
)]
pub async fn console_file(
    State(app): State<AppState>,
    _operator: Admin,
    Path((id, path)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let job: JobId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no file {path} for job {id}")))?;
    // Revalidated rather than immutable: the console does not look the job up.
    crate::files::serve_file(&app, job, &path, &headers, false).await
}
