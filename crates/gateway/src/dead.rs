//! `/api/v1/admin/dead-letters`: messages the pipeline gave up on (attempts
//! ran out, or undecodable), read from the bus's dead-letter queue, replayed
//! or purged. Admin keys only.
//!
//! Replaying a stage's letter first reopens its job (failed → running at that
//! stage, failure cleared, see `JobStore::reopen`), then puts the message back
//! into the stage with its attempts reset, so the job runs again from there and
//! its events count. If the broker refuses the message after the job was
//! reopened, the letter stays dead and the reaper resumes the job from its
//! checkpoint once it is stalled.

use std::collections::{BTreeMap, HashSet};

use atelier_bus::DeadJob;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Admin;
use crate::model::JobResource;
use crate::{ApiError, AppState};

/// Letters listed when the caller does not say.
const DEFAULT_LISTED: u32 = 100;
/// Most letters one call reads (a RabbitMQ scan fetches each one).
const MAX_LISTED: u32 = 1_000;

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterBody {
    /// Identifies the letter for `show`, replay and purge.
    pub id: String,
    /// The job it carried (`null` when its headers do not say).
    pub job_id: Option<String>,
    /// The stage that gave it up, or `events` (the status service's feed).
    pub stage: String,
    /// Why it was given up.
    pub reason: String,
    /// The attempt it was given up on.
    pub attempts: u32,
    /// When, ms since the Unix epoch (0 when unknown).
    pub dead_at_ms: u64,
}

impl From<&DeadJob> for DeadLetterBody {
    fn from(d: &DeadJob) -> Self {
        Self {
            id: d.id.clone(),
            job_id: d.job.map(|j| j.to_string()),
            stage: d.origin_name().to_string(),
            reason: d.reason.clone(),
            attempts: d.attempt,
            dead_at_ms: d.at_ms,
        }
    }
}

/// The dead letters, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetterBody>,
}

/// One dead letter with its job and headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub letter: DeadLetterBody,
    /// The job as `GET /api/v1/jobs/{id}` shows it (`null` when gone).
    pub job: Option<JobResource>,
    /// The message's headers as text (RabbitMQ's `x-death` included).
    pub headers: BTreeMap<String, String>,
}

/// How many to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many letters, 1 to 1000 (default 100).
    limit: Option<String>,
}

/// Which letters: `{"ids": [...]}` or `{"all": true}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub all: Option<bool>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub replayed: u32,
}

/// What a purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Purged {
    pub purged: u32,
}

/// The letters a selection names.
enum Chosen {
    Ids(Vec<String>),
    All,
}

impl Selection {
    fn chosen(self) -> Result<Chosen, ApiError> {
        match (self.ids, self.all) {
            (Some(_), Some(true)) => Err(ApiError::invalid("all", "give either `ids` or `all`, not both")),
            (Some(ids), _) if ids.is_empty() => {
                Err(ApiError::invalid("ids", "name at least one dead letter"))
            }
            (Some(ids), _) => Ok(Chosen::Ids(ids)),
            (None, Some(true)) => Ok(Chosen::All),
            (None, _) => Err(ApiError::invalid("ids", "give `ids` (a list) or `\"all\": true`")),
        }
    }
}

/// Lists dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters",
    operation_id = "listDeadLetters",
    tag = "admin",
    params(ListParams),
    responses(
        (status = 200, description = "The dead letters, oldest first", body = DeadLetterList),
        (status = 403, description = "Not an admin key", body = crate::error::ErrorBody),
        (status = 422, description = "`limit` is invalid", body = crate::error::ErrorBody),
        (status = 503, description = "The message broker is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn list_dead_letters(
    State(app): State<AppState>,
    _admin: Admin,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let limit = ApiError::parse_limit(params.limit.as_deref(), DEFAULT_LISTED, MAX_LISTED)?;
    let letters = app.bus.dead_letters(limit as usize).await?;
    Ok(Json(DeadLetterList {
        dead_letters: letters.iter().map(DeadLetterBody::from).collect(),
    }))
}

/// One dead letter, with its job and headers.
#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters/{id}",
    operation_id = "getDeadLetter",
    tag = "admin",
    params(("id" = String, Path, description = "The letter's id")),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterDetail),
        (status = 403, description = "Not an admin key", body = crate::error::ErrorBody),
        (status = 404, description = "No such dead letter", body = crate::error::ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn get_dead_letter(
    State(app): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterDetail>, ApiError> {
    let letter = app
        .bus
        .dead_letters(MAX_LISTED as usize)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    let job = match letter.job {
        Some(job) => app.jobs.get(job).await?.as_ref().map(JobResource::from),
        None => None,
    };
    Ok(Json(DeadLetterDetail {
        letter: DeadLetterBody::from(&letter),
        job,
        headers: letter.headers,
    }))
}

/// Replays dead letters: each job is put back to the stage that gave up and
/// runs again from there, attempts reset.
#[utoipa::path(
    post,
    path = "/api/v1/admin/dead-letters/replay",
    operation_id = "replayDeadLetters",
    tag = "admin",
    request_body = Selection,
    responses(
        (status = 200, description = "How many were replayed", body = Replayed),
        (status = 403, description = "Not an admin key", body = crate::error::ErrorBody),
        (status = 404, description = "An id names no dead letter (nothing was replayed)", body = crate::error::ErrorBody),
        (status = 422, description = "The body names no letters", body = crate::error::ErrorBody),
        (status = 503, description = "A dependency is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn replay_dead_letters(
    State(app): State<AppState>,
    _admin: Admin,
    body: Result<Json<Selection>, JsonRejection>,
) -> Result<Json<Replayed>, ApiError> {
    let letters = select(&app, body).await?;
    let mut replayed = 0;
    for letter in letters {
        if let (Some(job), Some(stage)) = (letter.job, letter.stage()) {
            app.jobs.reopen(job, stage).await?;
        }
        if app.bus.replay_dead_letter(Some(&letter.id)).await?.is_some() {
            tracing::info!(letter = %letter.id, job = ?letter.job, stage = letter.origin_name(), "dead letter replayed");
            replayed += 1;
        }
    }
    Ok(Json(Replayed { replayed }))
}

/// Deletes dead letters without replaying them (their jobs stay failed).
#[utoipa::path(
    delete,
    path = "/api/v1/admin/dead-letters",
    operation_id = "purgeDeadLetters",
    tag = "admin",
    request_body = Selection,
    responses(
        (status = 200, description = "How many were deleted", body = Purged),
        (status = 403, description = "Not an admin key", body = crate::error::ErrorBody),
        (status = 404, description = "An id names no dead letter (nothing was deleted)", body = crate::error::ErrorBody),
        (status = 422, description = "The body names no letters", body = crate::error::ErrorBody),
        (status = 503, description = "The message broker is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn purge_dead_letters(
    State(app): State<AppState>,
    _admin: Admin,
    body: Result<Json<Selection>, JsonRejection>,
) -> Result<Json<Purged>, ApiError> {
    let letters = select(&app, body).await?;
    let mut purged = 0;
    for letter in letters {
        if app.bus.discard_dead_letter(Some(&letter.id)).await?.is_some() {
            tracing::info!(letter = %letter.id, job = ?letter.job, "dead letter purged");
            purged += 1;
        }
    }
    Ok(Json(Purged { purged }))
}

/// The letters a body names, checked before any is touched: every id must be
/// a dead letter now. `all` means the letters there now (at most
/// [`MAX_LISTED`] per call), not ones that die again while replaying.
async fn select(
    app: &AppState,
    body: Result<Json<Selection>, JsonRejection>,
) -> Result<Vec<DeadJob>, ApiError> {
    let Json(selection) = body.map_err(|e| ApiError::MalformedJson(e.body_text()))?;
    let chosen = selection.chosen()?;
    let letters = app.bus.dead_letters(MAX_LISTED as usize).await?;
    match chosen {
        Chosen::All => Ok(letters),
        Chosen::Ids(ids) => {
            let mut seen = HashSet::new();
            ids.into_iter()
                .filter(|id| seen.insert(id.clone()))
                .map(|id| {
                    letters
                        .iter()
                        .find(|d| d.id == id)
                        .cloned()
                        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(selection: Selection) -> String {
        match selection.chosen() {
            Err(ApiError::InvalidField { field, .. }) => field,
            Err(other) => panic!("expected a 422, got {other:?}"),
            Ok(_) => panic!("expected a 422"),
        }
    }

    #[test]
    fn a_selection_names_ids_or_all() {
        let ids = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        assert!(matches!(
            Selection { ids: ids(&["a"]), all: None }.chosen(),
            Ok(Chosen::Ids(v)) if v == ["a"]
        ));
        assert!(matches!(
            Selection {
                ids: None,
                all: Some(true)
            }
            .chosen(),
            Ok(Chosen::All)
        ));
        assert_eq!(field_of(Selection::default()), "ids");
        assert_eq!(
            field_of(Selection {
                ids: None,
                all: Some(false)
            }),
            "ids"
        );
        assert_eq!(
            field_of(Selection {
                ids: ids(&[]),
                all: None
            }),
            "ids"
        );
        assert_eq!(
            field_of(Selection {
                ids: ids(&["a"]),
                all: Some(true)
            }),
            "all"
        );
    }
}
