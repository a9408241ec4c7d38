//! Which job events become deliveries, and what a delivery carries.

use atelier_core::event::{EventKind, JobEvent};
pub use atelier_core::request::{CALLBACK_EVENTS as EVENT_TYPES, DEFAULT_CALLBACK_EVENTS as DEFAULT_EVENTS};
use atelier_jobs::resource::JobResource;
use atelier_jobs::{JobRecord, NewDelivery, Webhook};

use crate::WebhookError;

/// The webhook event type of a job event (`None`: never delivered, `queued`).
pub fn event_type(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::Queued => None,
        EventKind::Completed => Some("job.completed"),
        EventKind::Failed => Some("job.failed"),
        EventKind::Cancelled => Some("job.cancelled"),
        EventKind::StageStarted => Some("job.stage_started"),
        EventKind::StageFinished => Some("job.stage_finished"),
        EventKind::StageRetrying => Some("job.stage_retrying"),
    }
}

/// The delivery of `event` to `hook`, if the hook wants it: the body is
/// `job` (as the store has it after the event) exactly as `GET
/// /api/v1/jobs/{id}` shows it. Its topic makes an event recorded twice one
/// delivery.
pub fn delivery_for(
    hook: &Webhook,
    event: &JobEvent,
    job: &JobRecord,
    now_ms: u64,
) -> Result<Option<NewDelivery>, WebhookError> {
    let Some(kind) = event_type(event.kind) else {
        return Ok(None);
    };
    if !hook.events.iter().any(|wanted| wanted == kind) {
        return Ok(None);
    }
    // A job ends once: a late second ending (failed after completed) is not
    // announced, since the job did not end that way.
    if event.is_final() && job.status.as_str() != event.kind.as_str() {
        return Ok(None);
    }
    let topic = match event.stage {
        Some(stage) if kind.starts_with("job.stage_") => {
            format!("{kind}:{}:{}", stage.as_str(), event.attempt)
        }
        _ => kind.to_string(),
    };
    Ok(Some(NewDelivery {
        id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
        job: job.id,
        topic,
        event_type: kind.to_string(),
        url: hook.url.clone(),
        key_name: hook.key_name.clone(),
        body: serde_json::to_string(&JobResource::from(job))?,
        created_at_ms: now_ms,
    }))
}
