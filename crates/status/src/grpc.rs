//! `atelier.v1.StatusService` over the job store, the queue view and the hub.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use atelier_broker::Names;
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use atelier_core::settings::Settings;
use atelier_jobs::{DEFAULT_PAGE_SIZE, JobCursor, JobQuery, JobStore, JobStoreError, MAX_PAGE_SIZE};
use atelier_proto::v1::{self, status_service_server::StatusService};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::convert::{status_filter, status_of};
use crate::{EventHub, QueueWatch};

/// Events a slow `WatchJob` client may lag behind before its stream ends.
const WATCH_BUFFER: usize = 64;
/// What a `WatchJob` stream ends with when the service drains.
pub const DRAINING: &str = "the status service is shutting down: watch again to reconnect";

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct StatusApi {
    store: Arc<dyn JobStore>,
    queues: QueueWatch,
    hub: EventHub,
    settings: Arc<Settings>,
    /// Cancelled when the service drains: open `WatchJob` streams end.
    streams_end: CancellationToken,
}

impl StatusApi {
    /// A service answering from `store`, `queues` and `hub`.
    pub fn new(store: Arc<dyn JobStore>, queues: QueueWatch, hub: EventHub, settings: Arc<Settings>) -> Self {
        Self {
            store,
            queues,
            hub,
            settings,
            streams_end: CancellationToken::new(),
        }
    }

    /// The same service, whose `WatchJob` streams end with UNAVAILABLE
    /// ([`DRAINING`]) once `streams_end` is cancelled.
    pub fn ending_streams_on(mut self, streams_end: CancellationToken) -> Self {
        self.streams_end = streams_end;
        self
    }
}

/// The one place job store errors become gRPC statuses: logged with their
/// cause, answered without it.
fn internal(error: JobStoreError) -> Status {
    tracing::warn!(error = %atelier_core::error::error_chain(&error), "job store failed");
    Status::unavailable("the job store is unavailable")
}

fn parse_id(raw: &str) -> Result<JobId, Status> {
    raw.parse()
        .map_err(|_| Status::invalid_argument(format!("job_id `{raw}` is not a UUID")))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::JobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl StatusService for StatusApi {
    async fn get_queue_status(
        &self,
        _request: Request<v1::GetQueueStatusRequest>,
    ) -> Result<Response<v1::QueueStatus>, Status> {
        let window = self.settings.status.timing_window_seconds;
        let counts = self.store.counts().await.map_err(internal)?;
        let stats = self.store.stage_stats(window).await.map_err(internal)?;
        let snapshot = self.queues.get();
        let per_worker = u32::from(self.settings.worker_concurrency());
        let mut max_workers = 0u32;
        let stages = snapshot
            .stages
            .iter()
            .map(|(stage, q)| {
                let capacity = q.consumers.saturating_mul(per_worker);
                max_workers = max_workers.saturating_add(capacity);
                let s = stats.iter().find(|s| s.stage == *stage);
                v1::StageQueue {
                    stage: v1::Stage::from(*stage).into(),
                    queue: Names::new(&self.settings.broker.prefix).stage_queue(*stage),
                    depth: q.messages,
                    consumers: q.consumers,
                    running: s.map_or(0, |s| to_u32(s.running)),
                    completed: s.map_or(0, |s| s.completed),
                    failed: s.map_or(0, |s| s.failed),
                    p50_seconds: s.map_or(0.0, |s| s.p50),
                    p95_seconds: s.map_or(0.0, |s| s.p95),
                    p99_seconds: s.map_or(0.0, |s| s.p99),
                    unacked: q.unacked,
                    capacity,
                }
            })
            .collect::<Vec<_>>();
        let first_consumers = snapshot.stages.first().map_or(0, |(_, q)| q.consumers);
        Ok(Response::new(v1::QueueStatus {
            queue_size: to_u32(counts.queued),
            max_queue_size: self.settings.pipeline.max_queue_size,
            running_tasks: to_u32(counts.running),
            max_workers,
            completed_tasks: counts.completed,
            failed_tasks: counts.failed,
            is_running: snapshot.connected && first_consumers > 0,
            stages,
            dead_letters: snapshot.dead_letters,
            broker_connected: snapshot.connected,
        }))
    }

    async fn get_job(&self, request: Request<v1::GetJobRequest>) -> Result<Response<v1::JobStatus>, Status> {
        let id = parse_id(&request.get_ref().job_id)?;
        match self.store.get(id).await.map_err(internal)? {
            Some(job) => Ok(Response::new(status_of(&job))),
            None => Err(Status::not_found(format!("no job {id}"))),
        }
    }

    type WatchJobStream = WatchStream;

    async fn watch_job(&self, request: Request<v1::GetJobRequest>) -> Result<Response<WatchStream>, Status> {
        let id = parse_id(&request.get_ref().job_id)?;
        // Subscribe before reading the history so nothing falls in between.
        let mut live = self.hub.subscribe();
        let Some(job) = self.store.get(id).await.map_err(internal)? else {
            return Err(Status::not_found(format!("no job {id}")));
        };
        let history = self.store.events(id).await.map_err(internal)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let streams_end = self.streams_end.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            for stored in &history {
                seen.insert(stored.event.identity());
                let done = stored.event.is_final();
                if tx.send(Ok(v1::JobEvent::from(&stored.event))).await.is_err() || done {
                    return;
                }
            }
            if job.status.is_terminal() {
                return;
            }
            loop {
                let received = tokio::select! {
                    () = streams_end.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable(DRAINING))).await;
                        return;
                    }
                    received = live.recv() => received,
                };
                match received {
                    Ok(event) if event.job == id => {
                        if !seen.insert(event.identity()) {
                            continue;
                        }
                        let done = event.is_final();
                        if tx.send(Ok(v1::JobEvent::from(&*event))).await.is_err() || done {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "watcher lagged by {n} events; watch again"
                            ))))
                            .await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type WatchJobsStream = WatchStream;

    async fn watch_jobs(
        &self,
        _request: Request<v1::WatchJobsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let mut live = self.hub.subscribe();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let streams_end = self.streams_end.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    () = streams_end.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable(DRAINING))).await;
                        return;
                    }
                    () = tx.closed() => return,
                    received = live.recv() => received,
                };
                let sent = match received {
                    Ok(event) => tx.send(Ok(v1::JobEvent::from(&*event))).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        // A monitor that falls behind skips ahead rather than
                        // ending: it shows the present, not a backlog.
                        tracing::debug!(missed = n, "a WatchJobs client lagged");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_stage_timings(
        &self,
        request: Request<v1::GetStageTimingsRequest>,
    ) -> Result<Response<v1::StageTimings>, Status> {
        let window = match request.get_ref().window_seconds {
            0 => self.settings.status.timing_window_seconds,
            w => w,
        };
        let stats = self.store.stage_stats(window).await.map_err(internal)?;
        Ok(Response::new(v1::StageTimings {
            window_seconds: window,
            stages: stats
                .iter()
                .map(|s| v1::StageTiming {
                    stage: v1::Stage::from(s.stage).into(),
                    count: s.count_in_window,
                    p50_seconds: s.p50,
                    p95_seconds: s.p95,
                    p99_seconds: s.p99,
                    mean_seconds: s.mean,
                })
                .collect(),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<v1::ListJobsRequest>,
    ) -> Result<Response<v1::ListJobsResponse>, Status> {
        let query = list_query(request.get_ref())?;
        let page = self.store.list(&query).await.map_err(internal)?;
        Ok(Response::new(v1::ListJobsResponse {
            jobs: page.jobs.iter().map(status_of).collect(),
            next_cursor: page.next.map(|c| c.encode()).unwrap_or_default(),
        }))
    }
}

/// The store's query for a `ListJobs` request; a bad field is INVALID_ARGUMENT naming it.
fn list_query(request: &v1::ListJobsRequest) -> Result<JobQuery, Status> {
    let status = v1::JobState::try_from(request.status)
        .map_err(|_| Status::invalid_argument(format!("status: unknown job state {}", request.status)))?;
    let stage = match v1::Stage::try_from(request.stage) {
        Ok(v1::Stage::Unspecified) => None,
        Ok(stage) => Some(
            Stage::try_from(stage).map_err(|_| Status::invalid_argument("stage: not a pipeline stage"))?,
        ),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "stage: unknown stage {}",
                request.stage
            )));
        }
    };
    let limit = match request.limit {
        0 => DEFAULT_PAGE_SIZE,
        n if n <= MAX_PAGE_SIZE => n,
        n => {
            return Err(Status::invalid_argument(format!(
                "limit: {n} is over {MAX_PAGE_SIZE}"
            )));
        }
    };
    let after = match request.cursor.as_str() {
        "" => None,
        raw => Some(
            JobCursor::decode(raw)
                .ok_or_else(|| Status::invalid_argument("cursor: not a cursor this service returned"))?,
        ),
    };
    Ok(JobQuery {
        tenant: (!request.tenant.is_empty()).then(|| request.tenant.clone()),
        status: status_filter(status),
        stage,
        since_ms: (request.since_ms > 0).then_some(request.since_ms),
        limit,
        after,
    })
}

fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
