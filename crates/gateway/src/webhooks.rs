//! Webhooks at the gateway: a request's `callbackUrl` checked at submission
//! (its address by the input fetch policy, a signing secret available), and
//! `GET /api/v1/jobs/{id}/deliveries` and `POST …/deliveries/{delivery}/retry`.
//! The deliveries themselves are added and sent by the status service.

use atelier_core::request::GenerateRequest;
use atelier_egress::{AddressPolicy, PublicResolver, shown};
use atelier_jobs::{Delivery, DeliveryAttempt, DeliveryStatus, Webhook};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use reqwest::dns::Resolve;
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::jobs::parse_id;
use crate::wait::load_for;
use crate::{ApiError, AppState};

const FIELD: &str = "callbackUrl";

/// Where a job about to be created sends its webhooks.
#[derive(Debug, Clone)]
pub struct Target {
    url: String,
    key_name: Option<String>,
    events: Vec<String>,
}

impl Target {
    /// The webhook of job `job`.
    pub fn of(self, job: atelier_core::job::JobId) -> Webhook {
        Webhook {
            job,
            url: self.url,
            key_name: self.key_name,
            events: self.events,
        }
    }
}

/// The webhook of a request, checked: `None` without `callbackUrl`. 422 when
/// the URL is refused by the fetch policy (a private address, credentials) or
/// nothing could sign the deliveries.
pub async fn target(
    app: &AppState,
    caller: &Caller,
    request: &GenerateRequest,
) -> Result<Option<Target>, ApiError> {
    let Some(raw) = &request.callback_url else {
        return Ok(None);
    };
    let url = Url::parse(raw).map_err(|_| ApiError::InvalidField {
        field: FIELD.into(),
        message: "is not a valid URL".into(),
    })?;
    let refused = |why: String| ApiError::Fetch {
        field: FIELD.into(),
        message: format!("{} cannot receive webhooks: {why}", shown(&url)),
    };
    let policy = AddressPolicy::new(&app.settings.gateway.fetch);
    policy.check_url(&url).map_err(|r| refused(r.to_string()))?;
    if let Some(url::Host::Domain(name)) = url.host()
        && let Ok(name) = name.parse()
    {
        // The sender checks again on every attempt (DNS may change); this
        // tells the client now.
        let _public = PublicResolver::new(policy)
            .resolve(name)
            .await
            .map_err(|_| refused("it does not resolve to a public address".into()))?;
    }
    let signs = match &caller.key {
        Some(_) => caller.signs_webhooks,
        None => !app.settings.webhooks.secret.is_empty(),
    };
    if !signs {
        return Err(ApiError::InvalidField {
            field: FIELD.into(),
            message: match &caller.key {
                Some(name) => format!(
                    "API key `{name}` has no webhook signing secret: make one with `atelier keys rotate-webhook-secret {name}`"
                ),
                None => "webhooks need a signing secret: set webhooks.secret".into(),
            },
        });
    }
    Ok(Some(Target {
        url: raw.clone(),
        key_name: caller.key.clone(),
        events: request.callback_event_types(),
    }))
}

/// A job's webhook deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveriesBody {
    pub deliveries: Vec<DeliveryBody>,
}

/// One delivery of an event to the job's `callbackUrl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryBody {
    /// The `webhook-id` header of every attempt (`msg_…`).
    pub id: String,
    /// `job.completed`, `job.failed`, `job.stage_finished`, …
    pub event_type: String,
    pub url: String,
    /// `pending`, `delivered` or `failed` (every attempt of the schedule failed).
    pub status: String,
    pub attempts: Vec<AttemptBody>,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<u64>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// One attempt and what the endpoint answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptBody {
    pub number: u32,
    pub at_ms: u64,
    pub duration_ms: u64,
    /// The endpoint's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why it failed without an answer (timeout, refused address, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the endpoint's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

impl From<&DeliveryAttempt> for AttemptBody {
    fn from(a: &DeliveryAttempt) -> Self {
        Self {
            number: a.number,
            at_ms: a.at_ms,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error.clone(),
            response: a.response.clone(),
        }
    }
}

impl From<&Delivery> for DeliveryBody {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.clone(),
            event_type: d.event_type.clone(),
            url: d.url.clone(),
            status: d.status.as_str().to_string(),
            attempts: d.attempts.iter().map(AttemptBody::from).collect(),
            next_attempt_at_ms: d
                .next_attempt_at_ms
                .filter(|_| d.status == DeliveryStatus::Pending),
            created_at_ms: d.created_at_ms,
            updated_at_ms: d.updated_at_ms,
        }
    }
}

/// The job's webhook deliveries, with every attempt and the endpoint's answers.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/deliveries",
    operation_id = "listDeliveries",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's request_id")),
    responses(
        (status = 200, description = "Its deliveries, oldest first", body = DeliveriesBody),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody),
        (status = 503, description = "The job store is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn list_deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeliveriesBody>, ApiError> {
    let job = load_for(&app, &caller, parse_id(&id)?).await?;
    let deliveries = app.jobs.deliveries(job.id).await?;
    Ok(Json(DeliveriesBody {
        deliveries: deliveries.iter().map(DeliveryBody::from).collect(),
    }))
}

/// Sends a delivery again now (also one that gave up); its attempts are kept.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{id}/deliveries/{delivery}/retry",
    operation_id = "retryDelivery",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's request_id"),
        ("delivery" = String, Path, description = "The delivery's id (its webhook-id)"),
    ),
    responses(
        (status = 202, description = "Due again now; the status service sends it", body = DeliveryBody),
        (status = 404, description = "Unknown job or delivery", body = crate::error::ErrorBody),
        (status = 503, description = "The job store is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn retry_delivery(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryBody>), ApiError> {
    let job = load_for(&app, &caller, parse_id(&id)?).await?;
    let retried = app
        .jobs
        .retry_delivery(job.id, &delivery, atelier_core::clock::now_ms())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery {delivery} for job {id}")))?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryBody::from(&retried))))
}
