//! `GET /api/v1/admin/console/events`: the console's one live feed. A
//! `snapshot` event (queues, timings, throughput) on connect and every
//! `console.refresh_ms`, a `job` event for every job event this gateway hears,
//! `reconnect` when the gateway drains.

use std::convert::Infallible;
use std::time::Duration;

use atelier_core::clock::now_ms;
use atelier_core::event::{EventKind, JobFailure};
use atelier_core::pipeline::Stage;
use atelier_proto::v1;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::model::QueueStatusBody;
use crate::watch::News;
use crate::{ApiError, AppState};

/// Keep-alive comments on an idle stream, so proxies don't cut it.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);
/// Events buffered for a slow console.
const BUFFER: usize = 64;
const SECONDS_PER_MINUTE: f64 = 60.0;

/// The pipeline's numbers at one moment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsoleSnapshot {
    pub at_ms: u64,
    /// `GET /api/v1/status/queue`'s body; `None` when the status service
    /// does not answer (then `error` says why).
    pub queue: Option<QueueStatusBody>,
    /// Finished stage runs per minute over `throughput_window_seconds`.
    pub throughput: Vec<StageThroughput>,
    pub throughput_window_seconds: u32,
    /// Messages in the dead-letter queue.
    pub dead_letters: u32,
    /// Jobs each stage's consumers run at once (consumers × worker concurrency).
    pub capacity: Vec<StageCapacity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageThroughput {
    pub stage: Stage,
    pub per_minute: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageCapacity {
    pub stage: Stage,
    pub capacity: u32,
}

/// One job event, as the console's `job` events carry it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsoleJobEvent {
    pub job_id: String,
    pub kind: EventKind,
    pub stage: Option<Stage>,
    pub attempt: u32,
    pub seconds: f64,
    pub at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
}

/// Live snapshots and every job's events.
#[utoipa::path(
    get,
    path = "/api/v1/admin/console/events",
    operation_id = "consoleEvents",
    tag = "console",
    responses(
        (status = 200, description = "text/event-stream: `event: snapshot` with a ConsoleSnapshot on connect and every \
                                      console.refresh_ms, `event: job` with a ConsoleJobEvent per job event, \
                                      `event: reconnect` when the gateway drains",
         content_type = "text/event-stream", body = ConsoleSnapshot),
        (status = 401, description = "No key while keys are required", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin key", body = crate::error::ErrorBody),
    )
)]
pub async fn console_events(
    State(app): State<AppState>,
    _operator: Admin,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let news = app.events.subscribe_all();
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(feed(app, news, tx));
    let stream = futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEPALIVE)))
}

async fn feed(app: AppState, mut news: broadcast::Receiver<News>, tx: mpsc::Sender<Event>) {
    let every = Duration::from_millis(app.settings.console.refresh_ms.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            () = app.drain.stop.cancelled() => {
                let _ = tx.send(Event::default().event("reconnect").data("{}")).await;
                return;
            }
            () = tx.closed() => return,
            _ = tick.tick() => json_event("snapshot", &snapshot(&app).await),
            received = news.recv() => match received {
                Ok(News::Event(event)) => json_event("job", &ConsoleJobEvent {
                    job_id: event.job.to_string(),
                    kind: event.kind,
                    stage: event.stage,
                    attempt: event.attempt,
                    seconds: event.seconds,
                    at_ms: event.at_ms,
                    error: event.failure.clone(),
                }),
                // The page re-reads its lists when it missed some.
                Ok(News::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    Event::default().event("missed").data("{}")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

fn json_event(name: &str, body: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(body).unwrap_or_default())
}

/// Queue status and short-window timings from the status service.
async fn snapshot(app: &AppState) -> ConsoleSnapshot {
    let window = app.settings.console.throughput_window_seconds;
    let limit = Duration::from_millis(app.settings.gateway.status_timeout_ms);
    let mut client = app.status.clone();
    let asked = tokio::time::timeout(limit, async {
        let queue = client.get_queue_status(v1::GetQueueStatusRequest {}).await?;
        let timings = client
            .get_stage_timings(v1::GetStageTimingsRequest {
                window_seconds: window,
            })
            .await?;
        Ok::<_, tonic::Status>((queue.into_inner(), timings.into_inner()))
    })
    .await;
    let mut out = ConsoleSnapshot {
        at_ms: now_ms(),
        queue: None,
        throughput: Vec::new(),
        throughput_window_seconds: window,
        dead_letters: 0,
        capacity: Vec::new(),
        error: None,
    };
    match asked {
        Ok(Ok((queue, timings))) => {
            let minutes = f64::from(timings.window_seconds.max(1)) / SECONDS_PER_MINUTE;
            out.throughput = timings
                .stages
                .iter()
                .filter_map(|t| {
                    Some(StageThroughput {
                        stage: stage_of(t.stage)?,
                        per_minute: t.count as f64 / minutes,
                    })
                })
                .collect();
            out.capacity = queue
                .stages
                .iter()
                .filter_map(|s| {
                    Some(StageCapacity {
                        stage: stage_of(s.stage)?,
                        capacity: s.capacity,
                    })
                })
                .collect();
            out.dead_letters = queue.dead_letters;
            out.queue = Some(crate::queue::queue_body(&queue));
        }
        Ok(Err(status)) => out.error = Some(format!("the status service answered {}", status.message())),
        Err(_) => out.error = Some("the status service did not answer in time".into()),
    }
    out
}

fn stage_of(raw: i32) -> Option<Stage> {
    Stage::try_from(v1::Stage::try_from(raw).ok()?).ok()
}
