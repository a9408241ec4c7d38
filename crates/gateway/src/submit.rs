//! `POST /api/v1/generate/image` and `POST /api/v1/generate`: validate, fetch the
//! photos, create the job, publish it (confirmed), then wait for its end or
//! answer 202 at once.

use std::time::Duration;

use atelier_core::event::{EventKind, JobEvent, JobStatus};
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::keys;
use atelier_core::pipeline::JobState;
use atelier_core::request::GenerateRequest;
use atelier_jobs::NewJob;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::body::parse_request;
use crate::inputs::FetchedInput;
use crate::wait::{accepted, wait_for_job};
use crate::{ApiError, AppState};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest input URL kept in the job spec (data: URIs are summarised).
const MAX_SOURCE_CHARS: usize = 512;
/// Who publishes a job's `queued` event.
const GATEWAY: &str = "gateway";

/// Query parameters of the generate endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// `false` asks for the asynchronous answer, like `Prefer: respond-async`.
    pub wait: Option<bool>,
}

/// Headers the generate endpoints read.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(
    dead_code,
    reason = "documents the headers for OpenAPI; handlers read the HeaderMap"
)]
pub struct SubmitHeaders {
    /// `respond-async` answers 202 at once.
    #[param(rename = "Prefer")]
    prefer: Option<String>,
    /// A repeat with the same key returns the same job (1 to 255 visible ASCII characters).
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

/// Images only: the garment on every requested background, upscaled on request.
#[utoipa::path(
    post,
    path = "/api/v1/generate/image",
    operation_id = "generateImages",
    tag = "generate",
    params(SubmitQuery, SubmitHeaders),
    request_body(content = GenerateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The job's result (the call waited for it)", body = atelier_core::response::GenerateResponse),
        (status = 202, description = "Accepted; follow status_url", body = crate::model::Accepted),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 413, description = "Body or image too large", body = crate::error::ErrorBody),
        (status = 415, description = "Not an image, or an unsupported format", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid field, unreachable or unusable input", body = crate::error::ErrorBody),
        (status = 500, description = "The job failed", body = crate::error::ErrorBody),
        (status = 503, description = "Queue full or a dependency unavailable (Retry-After)", body = crate::error::ErrorBody),
    )
)]
pub async fn generate_images(
    State(app): State<AppState>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (query, body) = read_parts(query, body)?;
    submit(app, JobKind::Images, query, &headers, body).await
}

/// Images, video and Excel report.
#[utoipa::path(
    post,
    path = "/api/v1/generate",
    operation_id = "generate",
    tag = "generate",
    params(SubmitQuery, SubmitHeaders),
    request_body(content = GenerateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The job's result (the call waited for it)", body = atelier_core::response::GenerateResponse),
        (status = 202, description = "Accepted; follow status_url", body = crate::model::Accepted),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 413, description = "Body or image too large", body = crate::error::ErrorBody),
        (status = 415, description = "Not an image, or an unsupported format", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid field, unreachable or unusable input", body = crate::error::ErrorBody),
        (status = 500, description = "The job failed", body = crate::error::ErrorBody),
        (status = 503, description = "Queue full or a dependency unavailable (Retry-After)", body = crate::error::ErrorBody),
    )
)]
pub async fn generate_full(
    State(app): State<AppState>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (query, body) = read_parts(query, body)?;
    submit(app, JobKind::Full, query, &headers, body).await
}

/// Turns axum's rejections into the API's errors.
fn read_parts(
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(SubmitQuery, Bytes), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidField {
        field: "wait".into(),
        message: e.body_text(),
    })?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge {
                field: None,
                message: "the request body is over the gateway's limit".into(),
            }
        } else {
            ApiError::MalformedJson(e.body_text())
        }
    })?;
    Ok((query, body))
}

async fn submit(
    app: AppState,
    kind: JobKind,
    query: SubmitQuery,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A body with data: URIs can be tens of megabytes: parse it off the runtime.
    let request = tokio::task::spawn_blocking(move || parse_request(&body)).await??;
    let respond_async = wants_async(headers, &query);
    let idempotency_key = idempotency_key(headers)?;
    if let Some(key) = &idempotency_key
        && let Some(existing) = app.jobs.find_by_idempotency_key(key).await?
    {
        return answer_existing(&app, existing.id, respond_async).await;
    }
    let inputs = app.fetcher.fetch_all(&request).await?;
    let state = new_state(kind, request, &inputs);
    let id = state.spec.id;
    let created = app
        .jobs
        .create(NewJob::new(state.clone(), idempotency_key))
        .await?;
    if created.existing {
        // Another call with the same key won the race.
        return answer_existing(&app, created.job.id, respond_async).await;
    }
    let watch = app.events.watch(id);
    if let Err(error) = enqueue(&app, &state, inputs).await {
        // The job never entered the pipeline: forget it, so a retry with the
        // same Idempotency-Key starts afresh.
        if let Err(e) = app.jobs.delete(id).await {
            tracing::warn!(job = %id, error = %atelier_core::error::error_chain(&e), "could not remove a job that was refused");
        }
        return Err(error);
    }
    metrics::counter!("atelier_gateway_jobs_submitted_total", "kind" => kind.as_str()).increment(1);
    if respond_async {
        return Ok(accepted(id, JobStatus::Queued));
    }
    let wait = Duration::from_secs(app.settings.gateway.sync_wait_seconds);
    wait_for_job(&app, id, watch, wait).await
}

/// The job's initial state: its spec with the keys its inputs will be stored under.
fn new_state(kind: JobKind, request: GenerateRequest, inputs: &[FetchedInput]) -> JobState {
    let stored = inputs
        .iter()
        .zip(&request.input_images)
        .enumerate()
        .map(|(n, (input, image))| StoredInput {
            key: keys::input(n, input.format.extension()),
            source: summarise_source(&image.url),
        })
        .collect();
    JobState::new(JobSpec {
        id: JobId::new(),
        kind,
        request,
        inputs: stored,
        submitted_at_ms: atelier_core::clock::now_ms(),
    })
}

/// Stores the inputs, publishes the queued event and the first stage's message.
async fn enqueue(app: &AppState, state: &JobState, inputs: Vec<FetchedInput>) -> Result<(), ApiError> {
    let id = state.spec.id;
    let blobs = app.blobs.scoped(keys::job_prefix(&id));
    for (input, stored) in inputs.into_iter().zip(&state.spec.inputs) {
        blobs.put(&stored.key, input.bytes).await?;
    }
    // The queued event first (confirmed), so it precedes the worker's events in
    // the job's history. If the job is then refused, its row and history go.
    app.bus
        .emit(&JobEvent::new(id, EventKind::Queued, GATEWAY))
        .await?;
    app.bus.submit(state, None).await?;
    Ok(())
}

async fn answer_existing(app: &AppState, id: JobId, respond_async: bool) -> Result<Response, ApiError> {
    let watch = app.events.watch(id);
    if respond_async {
        let job = crate::wait::load(app, id).await?;
        return Ok(accepted(id, job.status));
    }
    let wait = Duration::from_secs(app.settings.gateway.sync_wait_seconds);
    wait_for_job(app, id, watch, wait).await
}

fn wants_async(headers: &HeaderMap, query: &SubmitQuery) -> bool {
    query.wait == Some(false)
        || headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || ApiError::InvalidField {
        field: "Idempotency-Key".into(),
        message: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_string()))
}

fn summarise_source(url: &str) -> String {
    if url.starts_with("data:") {
        let kind = url.split([';', ',']).next().unwrap_or("data:");
        return format!("{kind} URI ({} characters)", url.len());
    }
    url.chars().take(MAX_SOURCE_CHARS).collect()
}
