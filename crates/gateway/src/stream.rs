//! `GET /api/v1/jobs/{id}/events`: one server-sent event per stage transition,
//! each with the store's sequence number as its `id:`, so a client that
//! reconnects with `Last-Event-ID` resumes after the last one it saw; the
//! stream ends with the job's final state.

use std::convert::Infallible;
use std::time::Duration;

use atelier_core::job::JobId;
use atelier_jobs::StoredEvent;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::jobs::parse_id;
use crate::model::{JobEventBody, JobResource};
use crate::wait::load_for;
use crate::watch::{JobWatch, Wake, settle};
use crate::{ApiError, AppState};

/// Keep-alive comments on an idle stream, so proxies don't cut it.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);
/// How often the stream re-reads the store even without news.
const RECHECK: Duration = Duration::from_secs(2);
/// Events buffered for a slow client.
const BUFFER: usize = 32;

/// The job's events as they happen, ending with its final state.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}/events",
    operation_id = "streamJobEvents",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's request_id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event"),
    ),
    responses(
        (status = 200, description = "text/event-stream: `event: <kind>` with a JobEventBody, then `event: final` with the JobResource",
         content_type = "text/event-stream", body = JobEventBody),
        (status = 404, description = "Unknown job", body = crate::error::ErrorBody),
    )
)]
pub async fn job_events(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    let watch = app.events.watch(id);
    load_for(&app, &caller, id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(feed(app, caller, id, watch, after, tx));
    let stream = futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(SSE_KEEPALIVE)))
}

/// Sends the job's stored events after `after`, then each new one as the store
/// records it, until the final one (then the job itself) or the client leaves.
async fn feed(
    app: AppState,
    caller: Caller,
    id: JobId,
    mut watch: JobWatch,
    mut after: u64,
    tx: mpsc::Sender<Event>,
) {
    loop {
        let Ok(events) = app.jobs.events(id).await else {
            return;
        };
        let seen = after;
        for stored in events.iter().filter(|e| e.seq > seen) {
            after = stored.seq;
            if tx.send(sse(stored)).await.is_err() {
                return;
            }
            if stored.event.is_final() {
                send_final(&app, &caller, id, &tx).await;
                return;
            }
        }
        match load_for(&app, &caller, id).await {
            // Ended without a final event on record (an old row): say so and stop.
            Ok(job) if job.status.is_terminal() => {
                let _ = tx.send(final_event(&JobResource::from(&job))).await;
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        let next = tokio::select! {
            () = app.drain.stop.cancelled() => {
                // This gateway is going away: the client reconnects (with
                // Last-Event-ID) to another.
                let _ = tx.send(Event::default().event("reconnect").data("{}")).await;
                return;
            }
            next = watch.next(Instant::now() + RECHECK) => next,
        };
        match next {
            Wake::Event(event) => {
                // Give the status service a moment to record what the feed announced.
                let identity = event.identity();
                let _ = settle(|| async {
                    let events = app.jobs.events(id).await?;
                    Ok::<_, atelier_jobs::JobStoreError>(
                        events
                            .iter()
                            .any(|e| e.event.identity() == identity)
                            .then_some(()),
                    )
                })
                .await;
            }
            Wake::Missed | Wake::Timeout => {}
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// The `final` event after the store recorded the job's last one. The row
/// shows the end in the same write as the event, so the wait is only for a
/// store replica catching up; past it the job is sent as the store has it:
/// the stream always ends with `final`.
async fn send_final(app: &AppState, caller: &Caller, id: JobId, tx: &mpsc::Sender<Event>) {
    let ended = settle(|| async {
        let job = load_for(app, caller, id).await?;
        Ok::<_, ApiError>(job.status.is_terminal().then_some(job))
    })
    .await;
    let job = match ended {
        Ok(Some(job)) => Some(job),
        Ok(None) | Err(_) => load_for(app, caller, id).await.ok(),
    };
    if let Some(job) = job {
        let _ = tx.send(final_event(&JobResource::from(&job))).await;
    }
}

fn sse(stored: &StoredEvent) -> Event {
    let data = serde_json::to_string(&JobEventBody::from(stored)).unwrap_or_default();
    Event::default()
        .id(stored.seq.to_string())
        .event(stored.event.kind.as_str())
        .data(data)
}

fn final_event(job: &JobResource) -> Event {
    Event::default()
        .event("final")
        .data(serde_json::to_string(job).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use atelier_bus::JobBus;
    use atelier_core::event::{EventKind, JobEvent, JobFailure};
    use atelier_core::job::{JobKind, JobSpec, StoredInput};
    use atelier_core::pipeline::JobState;
    use atelier_core::settings::Settings;
    use atelier_jobs::{MemoryJobStore, NewJob, Store};
    use atelier_storage::BlobStore;
    use axum::body::Body;
    use axum::http::Request;
    use futures::StreamExt;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    use super::*;

    /// More events than the gateway's feed and the in-process bus buffer.
    const FLOOD: usize = 10_000;

    fn state(id: JobId) -> JobState {
        let request = serde_json::from_value(serde_json::json!({
            "inputImages": [{ "url": "https://shop.example/a.jpg", "backgrounds": [1, 0, 0] }]
        }))
        .expect("request");
        JobState::new(JobSpec {
            id,
            kind: JobKind::Images,
            request,
            inputs: vec![StoredInput {
                key: "inputs/0.jpg".into(),
                source: "https://shop.example/a.jpg".into(),
            }],
            submitted_at_ms: atelier_core::clock::now_ms(),
        })
    }

    /// Reads the stream until `until` is among its event names (or it ends).
    async fn read_until(body: &mut axum::body::BodyDataStream, seen: &mut String, until: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.lines().any(|l| l == format!("event: {until}")) {
            let chunk = tokio::time::timeout_at(deadline, body.next())
                .await
                .unwrap_or_else(|_| panic!("no `{until}` event in time: {seen}"));
            match chunk {
                Some(Ok(bytes)) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                _ => panic!("the stream ended before `{until}`: {seen}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stream_whose_feed_lags_past_the_final_event_still_ends_with_it_from_the_store() {
        let mut settings = Settings::defaults();
        settings.gateway.auth.required = false;
        let settings = Arc::new(settings);
        let bus = JobBus::in_process(&settings).expect("bus");
        let jobs: Arc<dyn Store> = Arc::new(MemoryJobStore::new());
        let shutdown = CancellationToken::new();
        let app = crate::build_state(
            settings,
            bus.clone(),
            jobs.clone(),
            BlobStore::memory(),
            None,
            &shutdown,
        )
        .await
        .expect("state");
        let id = JobId::new();
        jobs.create(NewJob::new(state(id), None)).await.expect("job");
        jobs.apply_event(&JobEvent::new(id, EventKind::Queued, "test"))
            .await
            .expect("queued");

        let response = crate::router(app)
            .oneshot(
                Request::get(format!("/api/v1/jobs/{id}/events"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
        let mut body = response.into_body().into_data_stream();
        let mut seen = String::new();
        read_until(&mut body, &mut seen, "queued").await;

        // The job fails; its event reaches the store, but this gateway's feed
        // is flooded with other jobs' news and drops it (it lags).
        let failed = JobEvent::new(id, EventKind::Failed, "test").failure(JobFailure::stage("boom"));
        jobs.apply_event(&failed).await.expect("failed");
        let other = JobId::new();
        for _ in 0..FLOOD {
            bus.emit(&JobEvent::new(other, EventKind::Queued, "flood"))
                .await
                .expect("emit");
        }
        read_until(&mut body, &mut seen, "final").await;
        assert!(seen.contains("event: failed"), "{seen}");
        let last = seen
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data");
        let job: JobResource = serde_json::from_str(last).expect("the final event carries the job");
        assert_eq!(job.status, atelier_core::event::JobStatus::Failed);
        // And the stream ends there.
        let rest = tokio::time::timeout(Duration::from_secs(10), body.next()).await;
        assert!(
            matches!(rest, Ok(None)),
            "the stream goes on after final: {rest:?}"
        );
        shutdown.cancel();
    }
}
