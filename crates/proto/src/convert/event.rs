//! Job events for the events topic, and cancel notices for the control fanout.

use atelier_core::event::{EventKind, JobEvent, JobFailure};
use atelier_core::job::JobId;
use atelier_core::pipeline::{JobState, Stage};

use super::enums::WireEnum;
use super::wire::{SCHEMA_VERSION, check_schema, job_id, now_ms};
use crate::{ProtoError, v1};

impl From<&JobEvent> for v1::JobEvent {
    fn from(event: &JobEvent) -> Self {
        let failure = event.failure.as_ref();
        Self {
            schema_version: SCHEMA_VERSION.into(),
            job_id: event.job.to_string(),
            kind: v1::EventKind::from(event.kind).into(),
            stage: event.stage.map_or(v1::Stage::Unspecified, v1::Stage::from).into(),
            attempt: event.attempt,
            seconds: event.seconds,
            at_ms: event.at_ms,
            error: failure.map(|f| f.message.clone()),
            state: event.state.as_ref().map(Into::into),
            worker: event.worker.clone(),
            error_code: failure.map(|f| f.code.clone()),
            error_field: failure.and_then(|f| f.field.clone()),
            // Set by the bus when it publishes (trace context is transport
            // metadata, not part of the job's story).
            traceparent: None,
        }
    }
}

/// Validates an event whole (schema version, job id, kind, stage, the carried
/// state), naming the offending field.
impl TryFrom<&v1::JobEvent> for JobEvent {
    type Error = ProtoError;
    fn try_from(msg: &v1::JobEvent) -> Result<Self, ProtoError> {
        check_schema(msg.schema_version)?;
        let stage = if msg.stage == i32::from(v1::Stage::Unspecified) {
            None
        } else {
            Some(Stage::from_wire(msg.stage, "stage")?)
        };
        let failure = msg.error.as_ref().map(|message| JobFailure {
            code: msg
                .error_code
                .clone()
                .unwrap_or_else(|| JobFailure::STAGE_FAILED.to_string()),
            message: message.clone(),
            field: msg.error_field.clone(),
        });
        Ok(Self {
            job: job_id(&msg.job_id, "job_id")?,
            kind: EventKind::from_wire(msg.kind, "kind")?,
            stage,
            attempt: msg.attempt,
            seconds: msg.seconds,
            at_ms: msg.at_ms,
            failure,
            state: msg
                .state
                .as_ref()
                .map(|s| JobState::try_from(s).map_err(|e| e.within("state")))
                .transpose()?,
            worker: msg.worker.clone(),
        })
    }
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

impl TryFrom<&v1::CancelJob> for CancelNotice {
    type Error = ProtoError;
    fn try_from(msg: &v1::CancelJob) -> Result<Self, ProtoError> {
        check_schema(msg.schema_version)?;
        Ok(Self {
            job: job_id(&msg.job_id, "job_id")?,
            at_ms: msg.at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::convert::fixtures::{JOB_ID, full_state};

    fn id() -> JobId {
        JOB_ID.parse().expect("uuid")
    }

    fn started() -> v1::JobEvent {
        (&JobEvent::new(id(), EventKind::StageStarted, "w-1").in_stage(Stage::Generation, 2)).into()
    }

    fn round_trip(event: &JobEvent) -> JobEvent {
        let wire = v1::JobEvent::from(event);
        let decoded = v1::JobEvent::decode(wire.encode_to_vec().as_slice()).expect("decodes");
        JobEvent::try_from(&decoded).expect("valid")
    }

    #[test]
    fn events_round_trip_with_their_state_and_failure() {
        let done = JobEvent::new(id(), EventKind::Completed, "w-2")
            .seconds(42.5)
            .state(full_state());
        assert_eq!(round_trip(&done), done);

        let failed = JobEvent::new(id(), EventKind::Failed, "w-3")
            .in_stage(Stage::Upscaling, 3)
            .failure(JobFailure::new("invalid_image", "truncated").with_field("inputImages[0].url"));
        assert_eq!(round_trip(&failed), failed);

        // A failure from a producer that sent no code reads as a stage failure.
        let mut wire = v1::JobEvent::from(&failed);
        wire.error_code = None;
        wire.error_field = None;
        let back = JobEvent::try_from(&wire).expect("valid");
        assert_eq!(
            back.failure.map(|f| f.code),
            Some(JobFailure::STAGE_FAILED.to_string())
        );
    }

    #[test]
    fn invalid_events_are_refused_by_field() {
        let check = |edit: fn(&mut v1::JobEvent), field: &str| {
            let mut ev = started();
            edit(&mut ev);
            let err = JobEvent::try_from(&ev).unwrap_err();
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
    }

    #[test]
    fn cancel_validates() {
        let notice = CancelNotice::try_from(&cancel_job(id())).expect("valid");
        assert_eq!(notice.job, id());
        assert!(notice.at_ms > 1_700_000_000_000);
        let mut msg = cancel_job(id());
        msg.job_id = "nope".into();
        assert_eq!(CancelNotice::try_from(&msg).unwrap_err().field(), Some("job_id"));
        msg = cancel_job(id());
        msg.schema_version = 0;
        assert_eq!(
            CancelNotice::try_from(&msg).unwrap_err().field(),
            Some("schema_version")
        );
    }
}
