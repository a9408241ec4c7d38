//! `GET /api/v1/jobs`: the caller's jobs (every tenant's for an admin key),
//! newest first, a page at a time behind an opaque cursor.

use atelier_core::event::JobStatus;
use atelier_core::pipeline::Stage;
use atelier_jobs::{DEFAULT_PAGE_SIZE, JobCursor, JobQuery, MAX_PAGE_SIZE};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::model::JobResource;
use crate::{ApiError, AppState};

/// The list's query parameters, as sent: each is checked here so a bad one is
/// a 422 naming it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only jobs in this status: queued, running, completed, failed or cancelled.
    status: Option<String>,
    /// Only jobs whose furthest started stage is this one: analysis,
    /// generation, upscaling or post_processing.
    stage: Option<String>,
    /// Only jobs created at or after this instant: RFC 3339
    /// (`2026-11-30T08:00:00Z`) or milliseconds since the Unix epoch.
    since: Option<String>,
    /// Jobs per page: 1 to 200 (default 50).
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// Newest first, each as `GET /api/v1/jobs/{id}` returns it.
    pub jobs: Vec<JobResource>,
    /// Pass it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Lists jobs, newest first: a normal key sees its own, an admin key everyone's.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    operation_id = "listJobs",
    tag = "jobs",
    params(ListParams),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 401, description = "No valid API key", body = crate::error::ErrorBody),
        (status = 422, description = "A parameter is invalid (named in `error.field`)", body = crate::error::ErrorBody),
        (status = 503, description = "The job store is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn list_jobs(
    State(app): State<AppState>,
    caller: Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let mut query = parse(&params)?;
    if !caller.admin {
        query.tenant = Some(caller.tenant.clone());
    }
    let page = app.jobs.list(&query).await?;
    Ok(Json(JobList {
        jobs: page.jobs.iter().map(JobResource::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// The store's query for `params` (tenant still unset).
fn parse(params: &ListParams) -> Result<JobQuery, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    "expected queued, running, completed, failed or cancelled",
                )
            })
        })
        .transpose()?;
    let stage = params
        .stage
        .as_deref()
        .map(|s| {
            Stage::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "stage",
                    "expected analysis, generation, upscaling or post_processing",
                )
            })
        })
        .transpose()?;
    let since_ms = params.since.as_deref().map(parse_since).transpose()?;
    let limit = ApiError::parse_limit(params.limit.as_deref(), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let after = params
        .cursor
        .as_deref()
        .map(|raw| {
            JobCursor::decode(raw).ok_or_else(|| {
                ApiError::invalid("cursor", "not a cursor this API returned; start again without it")
            })
        })
        .transpose()?;
    Ok(JobQuery {
        tenant: None,
        status,
        stage,
        since_ms,
        limit,
        after,
    })
}

/// `since`: milliseconds since the Unix epoch, or an RFC 3339 instant.
fn parse_since(raw: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = raw.parse::<u64>() {
        return Ok(ms);
    }
    let at =
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).map_err(|_| {
            ApiError::invalid(
                "since",
                "expected an RFC 3339 instant or milliseconds since the Unix epoch",
            )
        })?;
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| ApiError::invalid("since", "before the Unix epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut ListParams)) -> ListParams {
        let mut p = ListParams::default();
        f(&mut p);
        p
    }

    fn field_of(result: Result<JobQuery, ApiError>) -> String {
        match result {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_good_values() {
        let q = parse(&ListParams::default()).expect("defaults");
        assert_eq!(q.limit, DEFAULT_PAGE_SIZE);
        assert_eq!((q.status, q.stage, q.since_ms, q.after), (None, None, None, None));
        let q = parse(&params(|p| {
            p.status = Some("failed".into());
            p.stage = Some("post_processing".into());
            p.since = Some("2026-11-30T08:00:00.5Z".into());
            p.limit = Some("200".into());
        }))
        .expect("good");
        assert_eq!(q.status, Some(JobStatus::Failed));
        assert_eq!(q.stage, Some(Stage::PostProcessing));
        assert_eq!(q.since_ms, Some(1_796_025_600_500));
        assert_eq!(q.limit, MAX_PAGE_SIZE);
        let q = parse(&params(|p| p.since = Some("1796025600500".into()))).expect("ms");
        assert_eq!(q.since_ms, Some(1_796_025_600_500));
    }

    #[test]
    fn each_bad_value_names_its_parameter() {
        assert_eq!(
            field_of(parse(&params(|p| p.status = Some("done".into())))),
            "status"
        );
        assert_eq!(
            field_of(parse(&params(|p| p.stage = Some("video".into())))),
            "stage"
        );
        assert_eq!(
            field_of(parse(&params(|p| p.since = Some("yesterday".into())))),
            "since"
        );
        assert_eq!(field_of(parse(&params(|p| p.since = Some("-5".into())))), "since");
        for limit in ["0", "201", "ten", "-1"] {
            assert_eq!(
                field_of(parse(&params(|p| p.limit = Some(limit.into())))),
                "limit"
            );
        }
        assert_eq!(
            field_of(parse(&params(|p| p.cursor = Some("forged".into())))),
            "cursor"
        );
    }
}
