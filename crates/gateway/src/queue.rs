//! `GET /api/v1/status/queue`: the old keys for the whole pipeline, and `stages`
//! beside them, from the status service.

use std::time::Duration;

use atelier_core::pipeline::Stage;
use atelier_proto::v1;
use axum::Json;
use axum::extract::State;

use crate::model::{QueueInfo, QueueStatusBody, StageQueueBody};
use crate::{ApiError, AppState};

/// The old service's queue endpoint, answered from the status service.
#[utoipa::path(
    get,
    path = "/api/v1/status/queue",
    operation_id = "getQueueStatus",
    tag = "status",
    responses(
        (status = 200, description = "Queue depth, load and timings", body = QueueStatusBody),
        (status = 503, description = "The status service is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn queue_status(State(app): State<AppState>) -> Result<Json<QueueStatusBody>, ApiError> {
    let mut client = app.status.clone();
    let limit = Duration::from_millis(app.settings.gateway.status_timeout_ms);
    let q = tokio::time::timeout(limit, client.get_queue_status(v1::GetQueueStatusRequest {}))
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("no answer in time"))??
        .into_inner();
    Ok(Json(queue_body(&q)))
}

/// The response body: the old shape plus `stages`.
pub fn queue_body(q: &v1::QueueStatus) -> QueueStatusBody {
    QueueStatusBody {
        status: "success".into(),
        queue_info: QueueInfo {
            queue_size: q.queue_size,
            max_queue_size: q.max_queue_size,
            running_tasks: q.running_tasks,
            max_workers: q.max_workers,
            completed_tasks: q.completed_tasks,
            failed_tasks: q.failed_tasks,
            is_running: q.is_running,
        },
        parallel_processing: "enabled".into(),
        stages: q
            .stages
            .iter()
            .filter_map(|s| {
                let stage = Stage::try_from(v1::Stage::try_from(s.stage).ok()?).ok()?;
                Some(StageQueueBody {
                    stage,
                    queue: s.queue.clone(),
                    queue_size: s.depth,
                    consumers: s.consumers,
                    running: s.running,
                    completed: s.completed,
                    failed: s.failed,
                    p50: s.p50_seconds,
                    p95: s.p95_seconds,
                    p99: s.p99_seconds,
                })
            })
            .collect(),
    }
}
