//! Job events for the `atelier.events` topic exchange, and cancel notices for
//! the control fanout.

use atelier_core::{
    job::JobId,
    pipeline::{JobState, Stage},
};
use prost::Message;

use super::{
    enums::WireEnum,
    wire::{SCHEMA_VERSION, check_schema, job_id, now_ms},
};
use crate::{ProtoError, v1};

/// Builds an event stamped with the current time. `stage` is `None` for
/// job-level kinds (queued, completed, ...); `state` is the final state that
/// COMPLETED carries so the status service can answer without the blob store.
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the JobEvent message field for field; a builder would add nothing"
)]
pub fn event(
    job: JobId,
    kind: v1::EventKind,
    stage: Option<Stage>,
    attempt: u32,
    seconds: f64,
    error: Option<String>,
    state: Option<&JobState>,
    worker: &str,
) -> v1::JobEvent {
    v1::JobEvent {
        schema_version: SCHEMA_VERSION.into(),
        job_id: job.to_string(),
        kind: kind.into(),
        stage: stage.map_or(v1::Stage::Unspecified, v1::Stage::from).into(),
        attempt,
        seconds,
        at_ms: now_ms(),
        error,
        state: state.map(Into::into),
        worker: worker.to_owned(),
    }
}

/// The bytes to publish on the events exchange.
pub fn encode_event(event: &v1::JobEvent) -> Vec<u8> {
    event.encode_to_vec()
}

/// Decodes an event and validates it whole (schema version, job id, kind,
/// stage, and the carried state), so a consumer can then use the accessors
/// below knowing they succeed.
pub fn decode_event(bytes: &[u8]) -> Result<v1::JobEvent, ProtoError> {
    let event = v1::JobEvent::decode(bytes).map_err(|source| ProtoError::Decode {
        message: "JobEvent",
        source,
    })?;
    check_schema(event.schema_version)?;
    event_job_id(&event)?;
    match v1::EventKind::try_from(event.kind) {
        Ok(v1::EventKind::Unspecified) => return Err(ProtoError::unspecified("kind")),
        Ok(_) => {}
        Err(_) => return Err(ProtoError::unknown_enum("kind", event.kind)),
    }
    event_stage(&event)?;
    event_state(&event)?;
    Ok(event)
}

/// The event's job.
pub fn event_job_id(event: &v1::JobEvent) -> Result<JobId, ProtoError> {
    job_id(&event.job_id, "job_id")
}

/// The event's stage; `None` when unspecified (a job-level event).
pub fn event_stage(event: &v1::JobEvent) -> Result<Option<Stage>, ProtoError> {
    if event.stage == i32::from(v1::Stage::Unspecified) {
        return Ok(None);
    }
    Stage::from_wire(event.stage, "stage").map(Some)
}

/// The job state an event carries (COMPLETED's final state), decoded and checked.
pub fn event_state(event: &v1::JobEvent) -> Result<Option<JobState>, ProtoError> {
    event
        .state
        .as_ref()
        .map(|s| JobState::try_from(s).map_err(|e| e.within("state")))
        .transpose()
}

/// Whether `event` ends its job's story (completed, failed or cancelled).
pub fn is_final_event(event: &v1::JobEvent) -> bool {
    matches!(
        v1::EventKind::try_from(event.kind),
        Ok(v1::EventKind::Completed | v1::EventKind::Failed | v1::EventKind::Cancelled)
    )
}

/// Lower-case name of an event kind, as used in routing keys and logs.
pub fn event_kind_name(kind: v1::EventKind) -> &'static str {
    match kind {
        v1::EventKind::Unspecified => "unspecified",
        v1::EventKind::Queued => "queued",
        v1::EventKind::StageStarted => "stage_started",
        v1::EventKind::StageFinished => "stage_finished",
        v1::EventKind::StageRetrying => "stage_retrying",
        v1::EventKind::Completed => "completed",
        v1::EventKind::Failed => "failed",
        v1::EventKind::Cancelled => "cancelled",
    }
}

/// Routing key on the events topic exchange, `job.<id>.<kind>`, so a consumer
/// can bind to one job (`job.<id>.#`) or one kind (`job.*.failed`). An unknown
/// kind routes as `unspecified`.
pub fn event_routing_key(event: &v1::JobEvent) -> String {
    format!("job.{}.{}", event.job_id, event_kind_name(event.kind()))
}

/// A cancel request as a worker needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelNotice {
    pub job: JobId,
    /// When the gateway asked, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A cancel notice for `job`, stamped now, for the control fanout.
pub fn cancel_job(job: JobId) -> v1::CancelJob {
    v1::CancelJob {
        schema_version: SCHEMA_VERSION.into(),
        job_id: job.to_string(),
        at_ms: now_ms(),
    }
}

/// The bytes to broadcast on the control fanout to cancel `job`.
pub fn encode_cancel(job: JobId) -> Vec<u8> {
    cancel_job(job).encode_to_vec()
}

/// Decodes and validates a cancel notice from the control fanout.
pub fn decode_cancel(bytes: &[u8]) -> Result<CancelNotice, ProtoError> {
    let msg = v1::CancelJob::decode(bytes).map_err(|source| ProtoError::Decode {
        message: "CancelJob",
        source,
    })?;
    check_schema(msg.schema_version)?;
    Ok(CancelNotice {
        job: job_id(&msg.job_id, "job_id")?,
        at_ms: msg.at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::fixtures::{JOB_ID, full_state};

    fn id() -> JobId {
        JOB_ID.parse().expect("uuid")
    }

    fn started() -> v1::JobEvent {
        event(
            id(),
            v1::EventKind::StageStarted,
            Some(Stage::Generation),
            2,
            0.0,
            None,
            None,
            "w-1",
        )
    }

    #[test]
    fn events_round_trip_with_their_state() {
        let state = full_state();
        let done = event(
            id(),
            v1::EventKind::Completed,
            None,
            1,
            42.5,
            None,
            Some(&state),
            "w-2",
        );
        assert!(done.at_ms > 1_700_000_000_000, "stamped now");
        let back = decode_event(&encode_event(&done)).expect("decodes");
        assert_eq!(back, done);
        assert_eq!(event_job_id(&back).expect("id"), id());
        assert_eq!(event_stage(&back).expect("stage"), None);
        assert_eq!(event_state(&back).expect("state"), Some(state));

        let failed = event(
            id(),
            v1::EventKind::Failed,
            Some(Stage::Upscaling),
            3,
            1.25,
            Some("model timed out".into()),
            None,
            "w-3",
        );
        let back = decode_event(&encode_event(&failed)).expect("decodes");
        assert_eq!(back.error.as_deref(), Some("model timed out"));
        assert_eq!(event_stage(&back).expect("stage"), Some(Stage::Upscaling));
        assert_eq!(event_state(&back).expect("state"), None);
    }

    #[test]
    fn only_completed_failed_and_cancelled_end_a_job() {
        let finals: Vec<v1::EventKind> = [
            v1::EventKind::Queued,
            v1::EventKind::StageStarted,
            v1::EventKind::StageFinished,
            v1::EventKind::StageRetrying,
            v1::EventKind::Completed,
            v1::EventKind::Failed,
            v1::EventKind::Cancelled,
        ]
        .into_iter()
        .filter(|kind| is_final_event(&event(id(), *kind, None, 0, 0.0, None, None, "w")))
        .collect();
        assert_eq!(
            finals,
            [
                v1::EventKind::Completed,
                v1::EventKind::Failed,
                v1::EventKind::Cancelled
            ]
        );
    }

    #[test]
    fn routing_keys_name_job_and_kind() {
        let cases = [
            (v1::EventKind::Queued, "queued"),
            (v1::EventKind::StageStarted, "stage_started"),
            (v1::EventKind::StageFinished, "stage_finished"),
            (v1::EventKind::StageRetrying, "stage_retrying"),
            (v1::EventKind::Completed, "completed"),
            (v1::EventKind::Failed, "failed"),
            (v1::EventKind::Cancelled, "cancelled"),
        ];
        for (kind, name) in cases {
            let ev = event(id(), kind, None, 0, 0.0, None, None, "w");
            assert_eq!(event_routing_key(&ev), format!("job.{JOB_ID}.{name}"));
        }
        let mut ev = started();
        ev.kind = 99;
        assert_eq!(event_routing_key(&ev), format!("job.{JOB_ID}.unspecified"));
    }

    #[test]
    fn invalid_events_are_refused_by_field() {
        let check = |edit: fn(&mut v1::JobEvent), field: &str| {
            let mut ev = started();
            edit(&mut ev);
            let err = decode_event(&encode_event(&ev)).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
        };
        check(|e| e.schema_version = 7, "schema_version");
        check(|e| e.job_id = "x".into(), "job_id");
        check(|e| e.kind = 0, "kind");
        check(|e| e.kind = 12, "kind");
        check(|e| e.stage = 5, "stage");
        check(
            |e| {
                let mut snap = v1::JobSnapshot::from(&full_state());
                snap.variations[2].view = 0;
                e.state = Some(snap);
            },
            "state.variations[2].view",
        );
        assert!(matches!(decode_event(b"\xff"), Err(ProtoError::Decode { .. })));
    }

    #[test]
    fn cancel_round_trips_and_validates() {
        let notice = decode_cancel(&encode_cancel(id())).expect("decodes");
        assert_eq!(notice.job, id());
        assert!(notice.at_ms > 1_700_000_000_000);

        let mut msg = cancel_job(id());
        msg.job_id = "nope".into();
        assert_eq!(
            decode_cancel(&msg.encode_to_vec()).unwrap_err().field(),
            Some("job_id")
        );
        msg = cancel_job(id());
        msg.schema_version = 0;
        assert_eq!(
            decode_cancel(&msg.encode_to_vec()).unwrap_err().field(),
            Some("schema_version")
        );
        assert!(matches!(
            decode_cancel(b"\x12\x09"),
            Err(ProtoError::Decode { .. })
        ));
    }
}
