//! `GET /api/v1/jobs/{id}`, `DELETE /api/v1/jobs/{id}` and the job's
//! server-sent events.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use atelier_core::job::JobId;
use atelier_core::keys;
use atelier_core::pipeline::{JobState, Stage};
use atelier_proto::v1::{self, EventKind};
use atelier_storage::{JobEventRecord, JobRecord, JobStatus};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::submit::{accepted, store_down};
use crate::wait::response_body;
use crate::{ApiError, AppState};

/// Keep-alive comments on an idle event stream, so proxies don't cut it.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

fn parse_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no job {raw}")))
}

async fn load(app: &AppState, id: JobId) -> Result<JobRecord, ApiError> {
    app.jobs
        .get(id)
        .await
        .map_err(|e| store_down(app, e))?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))
}

/// The job as JSON: status, stage, timings, and the result or the error.
pub fn job_json(job: &JobRecord) -> Value {
    let mut body = json!({
        "request_id": job.id.to_string(),
        "status": job.status.as_str(),
        "current_stage": job.current_stage.map(|s| s.as_str()),
        "priority": job.priority,
        "created_at_ms": job.created_at_ms,
        "updated_at_ms": job.updated_at_ms,
        "processing_times": job.times,
    });
    if job.status == JobStatus::Completed
        && let Some(state) = job
            .result
            .as_ref()
            .and_then(|v| serde_json::from_value::<JobState>(v.clone()).ok())
    {
        body["result"] = json!(response_body(&state, &job.id));
    }
    if let Some(error) = &job.error {
        body["error"] = json!(error);
    }
    body
}

/// `GET /api/v1/jobs/{id}`.
pub async fn get_job(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let job = load(&app, parse_id(&id)?).await?;
    Ok(Json(job_json(&job)))
}

/// `DELETE /api/v1/jobs/{id}`: stages not yet started are skipped.
pub async fn cancel_job(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let job = load(&app, id).await?;
    if job.status.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "job {id} is already {}",
            job.status.as_str()
        )));
    }
    let unavailable = |message: String| ApiError::Unavailable {
        message,
        retry_after: app.retry_after(),
    };
    // The marker first: workers that miss the broadcast still find it.
    app.blobs
        .put(
            &format!("{}{}", keys::job_prefix(&id), keys::CANCELLED),
            bytes::Bytes::new(),
        )
        .await
        .map_err(|e| unavailable(format!("blob store unavailable: {e}")))?;
    app.broker
        .publish_control(&atelier_proto::encode_cancel(id))
        .await
        .map_err(|e| unavailable(format!("message broker unavailable: {e}")))?;
    let event = atelier_proto::event(id, EventKind::Cancelled, None, 0, 0.0, None, None, "gateway");
    app.broker
        .publish_event(
            &atelier_proto::event_routing_key(&event),
            &atelier_proto::encode_event(&event),
        )
        .await
        .map_err(|e| unavailable(format!("message broker unavailable: {e}")))?;
    metrics::counter!("atelier_gateway_jobs_cancelled_total").increment(1);
    Ok(accepted(id, JobStatus::Cancelled))
}

/// `GET /api/v1/jobs/{id}/events`: one event per stage transition, the history
/// first, ending with the final state.
pub async fn job_events(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    let mut live = app.events.subscribe();
    let job = load(&app, id).await?;
    let history = app.jobs.events(id).await.map_err(|e| store_down(&app, e))?;
    let wanted = id.to_string();
    let stream = async_stream(move |tx| async move {
        let mut seen = HashSet::new();
        for record in &history {
            seen.insert((
                record.kind.as_str(),
                record.stage.map(Stage::as_str),
                record.attempt,
            ));
            if tx.send(sse_of_record(record)).await.is_err() {
                return;
            }
        }
        if job.status.is_terminal() {
            let _ = tx.send(final_sse(&job)).await;
            return;
        }
        loop {
            match live.recv().await {
                Ok(event) if event.job_id == wanted => {
                    let (kind, stage) = names_of(&event);
                    if !seen.insert((kind, stage, event.attempt)) {
                        continue;
                    }
                    if tx.send(sse_of_event(&event)).await.is_err() || atelier_proto::is_final_event(&event) {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEPALIVE)))
}

/// The kind and stage names of a live event (the same names the store uses, so
/// history and live events dedupe against each other).
fn names_of(e: &v1::JobEvent) -> (&'static str, Option<&'static str>) {
    let kind = v1::EventKind::try_from(e.kind).map_or("unknown", atelier_proto::event_kind_name);
    let stage = atelier_proto::event_stage(e).ok().flatten().map(Stage::as_str);
    (kind, stage)
}

fn sse_of_record(r: &JobEventRecord) -> Event {
    let (kind, stage) = (r.kind.as_str(), r.stage.map(Stage::as_str));
    sse(kind, stage, r.attempt, r.seconds, r.at_ms, r.error.as_deref())
}

fn sse_of_event(e: &v1::JobEvent) -> Event {
    let (kind, stage) = names_of(e);
    sse(kind, stage, e.attempt, e.seconds, e.at_ms, e.error.as_deref())
}

fn sse(
    kind: &str,
    stage: Option<&str>,
    attempt: u32,
    seconds: f64,
    at_ms: u64,
    error: Option<&str>,
) -> Event {
    let data = json!({
        "kind": kind, "stage": stage, "attempt": attempt, "seconds": seconds, "at_ms": at_ms, "error": error,
    });
    Event::default().event(kind).data(data.to_string())
}

fn final_sse(job: &JobRecord) -> Event {
    Event::default().event("final").data(job_json(job).to_string())
}

/// A stream fed by a task through a small channel.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(32);
    tokio::spawn(f(tx));
    futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}
