//! `POST /api/v1/generate/image` and `POST /api/v1/generate`: validate, fetch the
//! photos, create the job, publish it (confirmed), then wait for its end or
//! answer 202 at once.

use std::collections::HashMap;
use std::time::Duration;

use atelier_bus::BrokerError;
use atelier_core::error::error_chain;
use atelier_core::event::{EventKind, JobEvent, JobFailure, JobStatus};
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::keys;
use atelier_core::pipeline::JobState;
use atelier_core::request::GenerateRequest;
use atelier_core::settings::CorsSettings;
use atelier_jobs::{Admission, Created, JobRecord, NewJob};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::body::{Parsed, Uploads, parse_and_take_inputs, read_body};
use crate::inputs::{Carried, FetchedInput, Inline, InputData, Uploaded};
use crate::uploads::Store;
use crate::wait::{accepted, load_for, wait_for_job};
use crate::watch::settle;
use crate::{ApiError, AppState};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
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
    /// `no-cache` (or `no-store`) computes every stage afresh instead of
    /// reusing earlier identical results; what it makes is still stored for
    /// later requests. `metadata.cache` reports what was reused.
    #[param(rename = "Cache-Control")]
    cache_control: Option<String>,
}

/// Images only: the garment on every requested background, upscaled on request.
#[utoipa::path(
    post,
    path = "/api/v1/generate/image",
    operation_id = "generateImages",
    tag = "generate",
    params(SubmitQuery, SubmitHeaders),
    request_body(
        description = "The request as JSON, or as multipart/form-data with its photos uploaded (a `request` part with the JSON, whose inputs may name file parts as `upload:NAME`)",
        content(
            (GenerateRequest = "application/json"),
            (crate::uploads::UploadForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The job's result (the call waited for it)", body = atelier_core::response::GenerateResponse),
        (status = 202, description = "Accepted; follow status_url", body = crate::model::Accepted),
        (status = 400, description = "Malformed JSON or multipart body", body = crate::error::ErrorBody),
        (status = 403, description = "A form posted from another site", body = crate::error::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = crate::error::ErrorBody),
        (status = 413, description = "Body, image or uploaded part too large, or too many parts (naming the part)", body = crate::error::ErrorBody),
        (status = 415, description = "Not an image, or an unsupported format", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid field, unreachable or unusable input; a missing, duplicate or unreferenced part (naming it)", body = crate::error::ErrorBody),
        (status = 500, description = "The job failed", body = crate::error::ErrorBody),
        (status = 503, description = "Queue full or a dependency unavailable (Retry-After)", body = crate::error::ErrorBody),
    )
)]
pub async fn generate_images(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    submit(app, caller, JobKind::Images, query, &headers, body).await
}

#[utoipa::path(
    post,
    path = "/api/v1/generate",
    operation_id = "generate",
    tag = "generate",
    params(SubmitQuery, SubmitHeaders),
    request_body(
        description = "The request as JSON, or as multipart/form-data with its photos uploaded (a `request` part with the JSON, whose inputs may name file parts as `upload:NAME`)",
        content(
            (GenerateRequest = "application/json"),
            (crate::uploads::UploadForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The job's result (the call waited for it)", body = atelier_core::response::GenerateResponse),
        (status = 202, description = "Accepted; follow status_url", body = crate::model::Accepted),
        (status = 400, description = "Malformed JSON or multipart body", body = crate::error::ErrorBody),
        (status = 403, description = "A form posted from another site", body = crate::error::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = crate::error::ErrorBody),
        (status = 413, description = "Body, image or uploaded part too large, or too many parts (naming the part)", body = crate::error::ErrorBody),
        (status = 415, description = "Not an image, or an unsupported format", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid field, unreachable or unusable input; a missing, duplicate or unreferenced part (naming it)", body = crate::error::ErrorBody),
        (status = 500, description = "The job failed", body = crate::error::ErrorBody),
        (status = 503, description = "Queue full or a dependency unavailable (Retry-After)", body = crate::error::ErrorBody),
    )
)]
pub async fn generate_full(
    State(app): State<AppState>,
    caller: Caller,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    submit(app, caller, JobKind::Full, query, &headers, body).await
}

async fn submit(
    app: AppState,
    caller: Caller,
    kind: JobKind,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidField {
        field: "wait".into(),
        message: e.body_text(),
    })?;
    let form = body_kind(headers, &app.settings.gateway.cors)?;
    let _slot = app
        .submissions
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy)?;
    let gateway = &app.settings.gateway;
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let respond_async = wants_async(headers, &query);
    // Chosen before the body is read: uploads stream under the job's prefix.
    let id = JobId::new();
    // Kept until the answer: uploads not moved into the job by then are deleted.
    let mut _staging = None;
    let (parsed, idempotency_key, existing, uploads) = match form {
        BodyKind::Json => {
            let body = read_body(
                body,
                content_length,
                gateway.max_body_bytes,
                Duration::from_secs(gateway.body_timeout_seconds),
            )
            .await?;
            // A body with data: URIs can be tens of megabytes: parse it off the runtime.
            let max_input = app.settings.limits.max_bytes;
            let parsed =
                tokio::task::spawn_blocking(move || parse_and_take_inputs(body, max_input, Uploads::Refused))
                    .await??;
            let idempotency_key = idempotency_key(headers)?;
            let existing = match &idempotency_key {
                Some(key) => app.jobs.find_by_idempotency_key(&caller.tenant, key).await?,
                None => None,
            };
            (parsed, idempotency_key, existing, HashMap::new())
        }
        BodyKind::Multipart { boundary } => {
            // Looked up first: a repeat is read to compare, not stored again.
            let idempotency_key = idempotency_key(headers)?;
            let existing = match &idempotency_key {
                Some(key) => app.jobs.find_by_idempotency_key(&caller.tenant, key).await?,
                None => None,
            };
            let store = if existing.is_some() {
                Store::Compare
            } else {
                Store::Stage
            };
            let form = crate::uploads::read_form(&app, id, boundary, body, content_length, store).await?;
            _staging = Some(form.staging);
            (form.parsed, idempotency_key, existing, form.files)
        }
    };
    let Parsed {
        mut request,
        inline,
        fingerprint,
    } = parsed;
    // The output's size against the configured bounds (the shape was checked
    // while parsing; the stages resolve the same request again).
    request.output_spec(&app.settings)?;
    if let Some(existing) = existing {
        return answer_existing(&app, &caller, existing, Some(&fingerprint), respond_async).await;
    }
    let webhook = crate::webhooks::target(&app, &caller, &request).await?;
    let carried = carried_inputs(&request, inline, uploads);
    let inputs = app.fetcher.fetch_all(&request, carried).await?;
    // From here on the request names its inputs by where they came from, never
    // by a data: URI or a URL's credentials and query.
    for (image, input) in request.input_images.iter_mut().zip(&inputs) {
        image.url.clone_from(&input.source);
    }
    let mut state = new_state(id, kind, request, &inputs);
    state.cache.bypassed = atelier_core::cache::bypass_requested(
        headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let new = NewJob {
        request_hash: Some(fingerprint),
        idempotency_ttl_ms: gateway.idempotency_ttl_seconds.saturating_mul(1_000),
        max_in_flight: caller.max_in_flight,
        ..NewJob::new(state.clone(), idempotency_key).for_tenant(&caller.tenant)
    };
    match app.jobs.create(new).await? {
        Created::New(_) => {}
        // Another call with the same key won the race: its outcome is ours.
        Created::Existing(job) => return answer_existing(&app, &caller, job, None, respond_async).await,
        Created::KeyReused { existing } => {
            return Err(ApiError::IdempotencyKeyReused {
                existing: existing.to_string(),
            });
        }
        Created::TooManyInFlight { limit } => return Err(ApiError::TooManyInFlight { limit }),
    }
    let watch = app.events.watch(id);
    let webhook = webhook.map(|target| target.of(id));
    if let Err(error) = enqueue(&app, &state, inputs, webhook.as_ref()).await {
        // The job never entered the pipeline: it fails at intake, its key is
        // freed, and any caller racing on that key sees this same refusal.
        let failure = refusal(&error);
        if let Err(e) = app
            .jobs
            .set_admission(id, Admission::Refused, Some(failure))
            .await
        {
            tracing::warn!(job = %id, error = %error_chain(&e), "could not record a refused job; the reaper will");
        }
        return Err(error);
    }
    if let Err(e) = app.jobs.set_admission(id, Admission::Admitted, None).await {
        tracing::warn!(job = %id, error = %error_chain(&e), "could not record an admitted job; the reaper will");
    }
    metrics::counter!(atelier_telemetry::metrics::JOBS_SUBMITTED, "kind" => kind.as_str()).increment(1);
    if respond_async {
        return Ok(accepted(id, JobStatus::Queued));
    }
    let wait = Duration::from_secs(gateway.sync_wait_seconds);
    wait_for_job(&app, &caller, id, watch, wait).await
}

/// How a generate request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyKind {
    Json,
    /// `multipart/form-data` with this boundary (direct uploads).
    Multipart {
        boundary: String,
    },
}

/// `415` unless the body is JSON or `multipart/form-data`. A browser cannot
/// post JSON cross-site without a preflight, but it can post a form: a form
/// from another site is refused (see `uploads::refuse_cross_site`).
fn body_kind(headers: &HeaderMap, cors: &CorsSettings) -> Result<BodyKind, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        return Ok(BodyKind::Json);
    }
    if media_type.eq_ignore_ascii_case("multipart/form-data") {
        crate::uploads::refuse_cross_site(headers, cors)?;
        let boundary = multer::parse_boundary(content_type).map_err(|e| {
            ApiError::MalformedMultipart(format!("the Content-Type has no usable boundary: {e}"))
        })?;
        return Ok(BodyKind::Multipart { boundary });
    }
    Err(ApiError::WrongContentType(
        "send the request as Content-Type: application/json, or as multipart/form-data with \
         uploaded files"
            .into(),
    ))
}

/// What the request carried itself, by input: its decoded `data:` URIs and
/// its uploaded files (by the `upload:NAME` each input names).
fn carried_inputs(
    request: &GenerateRequest,
    inline: Vec<Option<Inline>>,
    uploads: HashMap<String, Uploaded>,
) -> Vec<Option<Carried>> {
    request
        .input_images
        .iter()
        .zip(inline)
        .map(|(image, inline)| match inline {
            Some(inline) => Some(Carried::Inline(inline)),
            None => crate::uploads::upload_name(&image.url)
                .and_then(|name| uploads.get(name))
                .cloned()
                .map(Carried::Uploaded),
        })
        .collect()
}

/// How a job refused at intake fails, for whoever asks about it later.
fn refusal(error: &ApiError) -> JobFailure {
    match error {
        ApiError::QueueFull => JobFailure::new(
            JobFailure::QUEUE_FULL,
            "refused at intake: the pipeline is at capacity",
        ),
        ApiError::Unavailable { dependency, .. } => JobFailure::new(
            JobFailure::UNAVAILABLE,
            format!("refused at intake: {dependency} was unavailable"),
        ),
        other => JobFailure::stage(format!("refused at intake: {other}")),
    }
}

/// The job's initial state: its spec with the keys its inputs will be stored under.
fn new_state(id: JobId, kind: JobKind, request: GenerateRequest, inputs: &[FetchedInput]) -> JobState {
    let stored = inputs
        .iter()
        .enumerate()
        .map(|(n, input)| StoredInput {
            key: keys::input(n, input.format.extension()),
            source: input.source.clone(),
        })
        .collect();
    JobState::new(JobSpec {
        id,
        kind,
        request,
        inputs: stored,
        submitted_at_ms: atelier_core::clock::now_ms(),
    })
}

/// Stores the inputs and the webhook, publishes the queued event and the
/// first stage's message.
async fn enqueue(
    app: &AppState,
    state: &JobState,
    inputs: Vec<FetchedInput>,
    webhook: Option<&atelier_jobs::Webhook>,
) -> Result<(), ApiError> {
    let id = state.spec.id;
    // Before the job can end: its end finds where to go.
    if let Some(webhook) = webhook {
        app.jobs.set_webhook(webhook).await?;
    }
    let blobs = app.blobs.scoped(keys::job_prefix(&id));
    // An upload named by several inputs moves once and is copied from there.
    let mut moved: HashMap<String, String> = HashMap::new();
    for (input, stored) in inputs.into_iter().zip(&state.spec.inputs) {
        match input.data {
            InputData::Bytes(bytes) => blobs.put(&stored.key, bytes).await?,
            InputData::Staged(staged) => {
                let key = blobs.full_key(&stored.key);
                match moved.get(&staged) {
                    Some(first) => app.blobs.copy(first, &key).await?,
                    None => app.blobs.rename(&staged, &key).await?,
                }
                moved.entry(staged).or_insert(key);
            }
        }
    }
    // The queued event first (confirmed), so it precedes the worker's events in
    // the job's history.
    app.bus
        .emit(&JobEvent::new(id, EventKind::Queued, GATEWAY))
        .await?;
    app.bus.submit(state, None).await.map_err(|e| match e {
        BrokerError::QueueFull => ApiError::QueueFull,
        other => ApiError::from(other),
    })?;
    Ok(())
}

/// Answers for a job another call created with the same idempotency key: its
/// refusal, its 202 or its result, once its creator knows which.
async fn answer_existing(
    app: &AppState,
    caller: &Caller,
    job: JobRecord,
    fingerprint: Option<&str>,
    respond_async: bool,
) -> Result<Response, ApiError> {
    let id = job.id;
    if let Some(fingerprint) = fingerprint
        && job.request_hash.as_deref().is_some_and(|h| h != fingerprint)
    {
        return Err(ApiError::IdempotencyKeyReused {
            existing: id.to_string(),
        });
    }
    let watch = app.events.watch(id);
    let job = if job.admission == Admission::Pending {
        // Its creator is publishing it right now: wait for the outcome.
        settle(|| async {
            let job = load_for(app, caller, id).await?;
            Ok::<_, ApiError>((job.admission != Admission::Pending).then_some(job))
        })
        .await?
        .unwrap_or(job)
    } else {
        job
    };
    if job.admission == Admission::Refused {
        return crate::wait::final_answer(&job);
    }
    if respond_async {
        return Ok(accepted(id, job.status));
    }
    let wait = Duration::from_secs(app.settings.gateway.sync_wait_seconds);
    wait_for_job(app, caller, id, watch, wait).await
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
