//! `GET /api/v1/status/queue`: the old keys for the whole pipeline, and `stages`
//! beside them, from the status service.

use std::time::Duration;

use atelier_proto::v1;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// The old endpoint, answered from `atelier-status` over gRPC.
pub async fn queue_status(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut client = app.status.clone();
    let limit = Duration::from_millis(app.settings.gateway.status_timeout_ms);
    let unavailable = |message: String| ApiError::Unavailable {
        message,
        retry_after: app.retry_after(),
    };
    let q = tokio::time::timeout(limit, client.get_queue_status(v1::GetQueueStatusRequest {}))
        .await
        .map_err(|_| unavailable("the status service did not answer in time".into()))?
        .map_err(|s| unavailable(format!("the status service is unavailable: {}", s.message())))?
        .into_inner();
    Ok(Json(queue_json(&q)))
}

/// The response body: the old shape plus `stages`.
pub fn queue_json(q: &v1::QueueStatus) -> Value {
    let stages: Vec<Value> = q
        .stages
        .iter()
        .map(|s| {
            let name = v1::Stage::try_from(s.stage)
                .ok()
                .and_then(|st| atelier_core::pipeline::Stage::try_from(st).ok())
                .map_or("unknown", |st| st.as_str());
            json!({
                "stage": name, "queue": s.queue, "queue_size": s.depth, "consumers": s.consumers,
                "running": s.running, "completed": s.completed, "failed": s.failed,
                "p50": s.p50_seconds, "p95": s.p95_seconds, "p99": s.p99_seconds,
            })
        })
        .collect();
    json!({
        "status": "success",
        "queue_info": {
            "queue_size": q.queue_size,
            "max_queue_size": q.max_queue_size,
            "running_tasks": q.running_tasks,
            "max_workers": q.max_workers,
            "completed_tasks": q.completed_tasks,
            "failed_tasks": q.failed_tasks,
            "is_running": q.is_running,
        },
        "parallel_processing": "enabled",
        "stages": stages,
    })
}
