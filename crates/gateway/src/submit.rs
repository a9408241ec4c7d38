//! `POST /api/v1/generate/image` and `POST /api/v1/generate`: validate, fetch the
//! photos, create the job, publish it (confirmed), then wait for its end or
//! answer 202 at once.

use std::time::Duration;

use atelier_broker::{BrokerError, MessageMeta};
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::keys;
use atelier_core::pipeline::{JobState, Stage};
use atelier_core::request::GenerateRequest;
use atelier_proto::v1::EventKind;
use atelier_storage::{JobStatus, NewJob};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::body::parse_request;
use crate::inputs::FetchedInput;
use crate::wait::wait_for_job;
use crate::{ApiError, AppState};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest input URL kept in the job spec (data: URIs are summarised).
const MAX_SOURCE_CHARS: usize = 512;

/// Query parameters of the generate endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct SubmitQuery {
    /// `?wait=false` asks for the asynchronous answer, like `Prefer: respond-async`.
    pub wait: Option<bool>,
}

/// `POST /api/v1/generate/image`: images only.
pub async fn generate_images(
    State(app): State<AppState>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (query, body) = read_parts(query, body)?;
    submit(app, JobKind::Images, query, &headers, &body).await
}

/// `POST /api/v1/generate`: images, video and report.
pub async fn generate_full(
    State(app): State<AppState>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (query, body) = read_parts(query, body)?;
    submit(app, JobKind::Full, query, &headers, &body).await
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
    body: &[u8],
) -> Result<Response, ApiError> {
    // A body with data: URIs can be tens of megabytes: parse it off the runtime.
    let request = {
        let body = Bytes::copy_from_slice(body);
        tokio::task::spawn_blocking(move || parse_request(&body))
            .await
            .map_err(|e| ApiError::Internal(format!("request parsing died: {e}")))??
    };
    let respond_async = wants_async(headers, &query);
    let idempotency_key = idempotency_key(headers)?;
    if let Some(key) = &idempotency_key
        && let Some(existing) = app
            .jobs
            .find_by_idempotency_key(key)
            .await
            .map_err(|e| store_down(&app, e))?
    {
        return answer_existing(&app, existing.id, respond_async).await;
    }
    let inputs = app.fetcher.fetch_all(&request).await?;
    let id = JobId::new();
    let created = app
        .jobs
        .create(NewJob {
            id,
            idempotency_key,
            kind,
            priority: request.effective_priority(),
            request: serde_json::to_value(&request).map_err(|e| ApiError::Internal(e.to_string()))?,
            submitted_at_ms: atelier_core::clock::now_ms(),
        })
        .await
        .map_err(|e| store_down(&app, e))?;
    if created.existing {
        // Another call with the same key won the race.
        return answer_existing(&app, created.job.id, respond_async).await;
    }
    let feed = app.events.subscribe();
    if let Err(error) = enqueue(&app, id, kind, request, inputs).await {
        // The job never entered the pipeline: forget it, so a retry with the
        // same Idempotency-Key starts afresh.
        if let Err(e) = app.jobs.delete(id).await {
            tracing::warn!(job = %id, error = %e, "could not remove a job that was refused");
        }
        return Err(error);
    }
    metrics::counter!("atelier_gateway_jobs_submitted_total", "kind" => kind.as_str()).increment(1);
    if respond_async {
        return Ok(accepted(id, JobStatus::Queued));
    }
    let wait = Duration::from_secs(app.settings.gateway.sync_wait_seconds);
    wait_for_job(&app, id, feed, wait).await
}

/// Stores the inputs, publishes the first stage's message and the queued event.
async fn enqueue(
    app: &AppState,
    id: JobId,
    kind: JobKind,
    request: GenerateRequest,
    inputs: Vec<FetchedInput>,
) -> Result<(), ApiError> {
    let blobs = app.blobs.scoped(keys::job_prefix(&id));
    let mut stored = Vec::with_capacity(inputs.len());
    for (n, (input, image)) in inputs.into_iter().zip(&request.input_images).enumerate() {
        let key = keys::input(n, input.format.extension());
        blobs
            .put(&key, input.bytes)
            .await
            .map_err(|e| ApiError::Unavailable {
                message: format!("blob store unavailable: {e}"),
                retry_after: app.retry_after(),
            })?;
        stored.push(StoredInput {
            key,
            source: summarise_source(&image.url),
        });
    }
    let priority = request.effective_priority();
    let spec = JobSpec {
        id,
        kind,
        request,
        inputs: stored,
        submitted_at_ms: atelier_core::clock::now_ms(),
    };
    let state = JobState::new(spec);
    let meta = MessageMeta {
        job_id: id.to_string(),
        attempt: 1,
        priority,
        traceparent: Some(atelier_broker::new_traceparent()),
        deadline_ms: None,
    };
    // The queued event first (confirmed), so it precedes the worker's events in
    // the job's history. If the job is then refused, its row and history go.
    let event = atelier_proto::event(id, EventKind::Queued, None, 1, 0.0, None, None, "gateway");
    app.broker
        .publish_event(
            &atelier_proto::event_routing_key(&event),
            &atelier_proto::encode_event(&event),
        )
        .await
        .map_err(|e| broker_error(app, e))?;
    let body = atelier_proto::encode_stage(Stage::Analysis, &state);
    app.broker
        .publish_stage(Stage::Analysis, &body, &meta)
        .await
        .map_err(|e| broker_error(app, e))?;
    Ok(())
}

async fn answer_existing(app: &AppState, id: JobId, respond_async: bool) -> Result<Response, ApiError> {
    if respond_async {
        let job = app.jobs.get(id).await.map_err(|e| store_down(app, e))?;
        let status = job.map_or(JobStatus::Queued, |j| j.status);
        return Ok(accepted(id, status));
    }
    let feed = app.events.subscribe();
    let wait = Duration::from_secs(app.settings.gateway.sync_wait_seconds);
    wait_for_job(app, id, feed, wait).await
}

/// The asynchronous answer: 202 and where to look.
pub fn accepted(id: JobId, status: JobStatus) -> Response {
    let url = format!("/api/v1/jobs/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "request_id": id.to_string(), "status": status.as_str(), "status_url": url })),
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
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

/// The job store failing is a 503, not a 500: the request can be retried.
pub fn store_down(app: &AppState, error: atelier_storage::StorageError) -> ApiError {
    ApiError::Unavailable {
        message: format!("job store unavailable: {error}"),
        retry_after: app.retry_after(),
    }
}

fn broker_error(app: &AppState, error: BrokerError) -> ApiError {
    match error {
        BrokerError::QueueFull => ApiError::QueueFull {
            retry_after: app.retry_after(),
        },
        other => ApiError::Unavailable {
            message: format!("message broker unavailable: {other}"),
            retry_after: app.retry_after(),
        },
    }
}
