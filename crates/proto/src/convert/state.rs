//! A job's accumulated state, and the stage messages that carry it between workers.

use super::{
    enums::WireEnum,
    wire::{SCHEMA_VERSION, check_schema},
};
use crate::{ProtoError, v1};
use atelier_core::{
    cache::{CacheCounts, CacheUse},
    job::JobSpec,
    pipeline::{AnalysisOutput, JobState, PostOutput, Stage, Upscaled, Variation},
};

/// Builds the body of a stage queue's message: run `stage` on the job as it
/// stands in `state`.
pub fn stage_message(stage: Stage, state: &JobState) -> v1::StageMessage {
    v1::StageMessage {
        schema_version: SCHEMA_VERSION.into(),
        stage: v1::Stage::from(stage).into(),
        state: Some(state.into()),
    }
}

/// Reads a stage message back into the stage to run and the job's state,
/// refusing anything a worker should not act on (other schema versions,
/// unspecified enums, bad ids, missing spec).
pub fn job_state(msg: &v1::StageMessage) -> Result<(Stage, JobState), ProtoError> {
    check_schema(msg.schema_version)?;
    let stage = Stage::from_wire(msg.stage, "stage")?;
    let state = msg.state.as_ref().ok_or_else(|| ProtoError::missing("state"))?;
    let state = JobState::try_from(state).map_err(|e| e.within("state"))?;
    Ok((stage, state))
}

impl From<&JobState> for v1::JobSnapshot {
    fn from(state: &JobState) -> Self {
        Self {
            spec: Some((&state.spec).into()),
            analyses: state.analyses.iter().map(Into::into).collect(),
            variations: state.variations.iter().map(Into::into).collect(),
            upscaled: state.upscaled.iter().map(Into::into).collect(),
            video: state.post.video.as_ref().map(Into::into),
            report_key: state.post.report_key.clone(),
            times: Some(state.times.into()),
            cache: Some(state.cache.into()),
        }
    }
}

/// Absent `times` decode as all zero (nothing measured yet), as proto3 readers
/// would assume; an absent `spec` is an error, a job without one is meaningless.
impl TryFrom<&v1::JobSnapshot> for JobState {
    type Error = ProtoError;
    fn try_from(msg: &v1::JobSnapshot) -> Result<Self, ProtoError> {
        let spec = msg.spec.as_ref().ok_or_else(|| ProtoError::missing("spec"))?;
        Ok(Self {
            spec: JobSpec::try_from(spec).map_err(|e| e.within("spec"))?,
            analyses: each(&msg.analyses, "analyses", AnalysisOutput::try_from)?,
            variations: each(&msg.variations, "variations", Variation::try_from)?,
            upscaled: each(&msg.upscaled, "upscaled", Upscaled::try_from)?,
            post: PostOutput {
                video: msg.video.as_ref().map(Into::into),
                report_key: msg.report_key.clone(),
            },
            times: msg.times.map(Into::into).unwrap_or_default(),
            cache: msg.cache.map(Into::into).unwrap_or_default(),
        })
    }
}

impl From<CacheCounts> for v1::CacheCounts {
    fn from(c: CacheCounts) -> Self {
        Self {
            hits: c.hits,
            misses: c.misses,
        }
    }
}

impl From<v1::CacheCounts> for CacheCounts {
    fn from(c: v1::CacheCounts) -> Self {
        Self {
            hits: c.hits,
            misses: c.misses,
        }
    }
}

impl From<CacheUse> for v1::CacheUse {
    fn from(c: CacheUse) -> Self {
        Self {
            bypassed: c.bypassed,
            analysis: Some(c.analysis.into()),
            generation: Some(c.generation.into()),
            upscaling: Some(c.upscaling.into()),
            post_processing: Some(c.post_processing.into()),
        }
    }
}

/// Absent counts (a sender that left them out) read as zero.
impl From<v1::CacheUse> for CacheUse {
    fn from(c: v1::CacheUse) -> Self {
        let counts = |c: Option<v1::CacheCounts>| c.map(Into::into).unwrap_or_default();
        Self {
            bypassed: c.bypassed,
            analysis: counts(c.analysis),
            generation: counts(c.generation),
            upscaling: counts(c.upscaling),
            post_processing: counts(c.post_processing),
        }
    }
}

/// Decodes every entry of a repeated field, naming the index of the first bad one.
fn each<'a, M, T>(
    list: &'a [M],
    field: &str,
    decode: impl Fn(&'a M) -> Result<T, ProtoError>,
) -> Result<Vec<T>, ProtoError> {
    list.iter()
        .enumerate()
        .map(|(i, m)| decode(m).map_err(|e| e.at(field, i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use atelier_core::pipeline::ProcessingTimes;
    use prost::Message;

    use super::*;
    use crate::convert::fixtures::{self, full_state};

    fn encode_stage(stage: Stage, state: &JobState) -> Vec<u8> {
        stage_message(stage, state).encode_to_vec()
    }

    fn decode_stage(bytes: &[u8]) -> Result<(Stage, JobState), ProtoError> {
        let msg = v1::StageMessage::decode(bytes).map_err(|source| ProtoError::Decode {
            message: "StageMessage",
            source,
        })?;
        job_state(&msg)
    }

    #[test]
    fn every_populated_state_round_trips_exactly() {
        let states = fixtures::variants();
        assert!(states.len() > 10);
        for state in states {
            for stage in Stage::ALL {
                let bytes = encode_stage(stage, &state);
                let (got_stage, got) = decode_stage(&bytes).expect("decodes");
                assert_eq!(got_stage, stage);
                assert_eq!(got, state);
            }
        }
    }

    #[test]
    fn ai_descriptions_round_trip_present_and_absent() {
        let state = full_state();
        let ai: Vec<bool> = state.analyses.iter().map(|a| a.analysis.ai.is_some()).collect();
        assert!(
            ai.contains(&true) && ai.contains(&false),
            "fixture covers both: {ai:?}"
        );
        let (_, got) = decode_stage(&encode_stage(Stage::Generation, &state)).expect("decodes");
        for (got, want) in got.analyses.iter().zip(&state.analyses) {
            assert_eq!(got.analysis.ai, want.analysis.ai);
        }
    }

    #[test]
    fn a_fresh_job_round_trips() {
        let state = JobState::new(full_state().spec);
        assert_eq!(
            decode_stage(&encode_stage(Stage::Analysis, &state))
                .expect("decodes")
                .1,
            state
        );
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_panic() {
        let good = encode_stage(Stage::Generation, &full_state());
        let inputs: [&[u8]; 4] = [
            &[0xff, 0xff, 0xff],
            &[0x0a, 0x80],           // length prefix running off the end
            &good[..good.len() / 2], // truncated
            b"\x1a\x05hello",        // state = a malformed JobSnapshot
        ];
        for bytes in inputs {
            let err = decode_stage(bytes).unwrap_err();
            assert!(matches!(err, ProtoError::Decode { .. }), "{bytes:?}: {err}");
            assert_eq!(err.field(), None);
        }
        // Empty bytes decode as an all-default message, refused on its schema version.
        assert_eq!(decode_stage(&[]).unwrap_err().field(), Some("schema_version"));
    }

    fn refusal(edit: impl FnOnce(&mut v1::StageMessage)) -> ProtoError {
        let mut msg = stage_message(Stage::Upscaling, &full_state());
        edit(&mut msg);
        decode_stage(&msg.encode_to_vec()).unwrap_err()
    }

    fn snapshot(msg: &mut v1::StageMessage) -> &mut v1::JobSnapshot {
        msg.state.as_mut().expect("state")
    }

    #[test]
    fn invalid_fields_are_named() {
        let err = refusal(|m| m.schema_version = 2);
        assert!(matches!(err, ProtoError::SchemaVersion { found: 2, .. }), "{err}");
        assert_eq!(refusal(|m| m.schema_version = 0).field(), Some("schema_version"));

        let err = refusal(|m| m.stage = 0);
        assert!(matches!(err, ProtoError::Unspecified { .. }), "{err}");
        assert_eq!(err.field(), Some("stage"));
        assert_eq!(refusal(|m| m.stage = 9).field(), Some("stage"));

        assert_eq!(refusal(|m| m.state = None).field(), Some("state"));
        let err = refusal(|m| snapshot(m).spec = None);
        assert!(matches!(err, ProtoError::Missing { .. }), "{err}");
        assert_eq!(err.field(), Some("state.spec"));

        let err = refusal(|m| snapshot(m).spec.as_mut().expect("spec").job_id = "job-1".into());
        assert!(matches!(err, ProtoError::JobId { .. }), "{err}");
        assert_eq!(err.field(), Some("state.spec.job_id"));

        let err = refusal(|m| {
            let req = snapshot(m)
                .spec
                .as_mut()
                .expect("spec")
                .request
                .as_mut()
                .expect("req");
            req.input_images[2].view = 0;
        });
        assert_eq!(err.field(), Some("state.spec.request.input_images[2].view"));

        let err = refusal(|m| snapshot(m).analyses[1].mask_source = 0);
        assert_eq!(err.field(), Some("state.analyses[1].mask_source"));
        let err = refusal(|m| snapshot(m).analyses[0].bounding_box = None);
        assert_eq!(err.field(), Some("state.analyses[0].bounding_box"));
        let err = refusal(|m| snapshot(m).variations[3].background = 17);
        assert!(matches!(err, ProtoError::UnknownEnum { value: 17, .. }), "{err}");
        assert_eq!(err.field(), Some("state.variations[3].background"));
        let err = refusal(|m| snapshot(m).variations[0].ordinal = 256);
        assert_eq!(err.field(), Some("state.variations[0].ordinal"));
    }

    #[test]
    fn missing_times_decode_as_zero() {
        let mut msg = stage_message(Stage::Analysis, &full_state());
        msg.state.as_mut().expect("state").times = None;
        let (_, state) = job_state(&msg).expect("decodes");
        assert_eq!(state.times, ProcessingTimes::default());
    }

    #[test]
    fn times_convert_both_ways() {
        let times = full_state().times;
        assert_eq!(ProcessingTimes::from(v1::ProcessingTimes::from(times)), times);
    }

    mod fuzz {
        //! Stage messages off the wire: arbitrary bytes and damaged real
        //! messages decode to an error or to a state that encodes back to an
        //! equal message; never a panic.

        use proptest::prelude::*;

        use super::*;

        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            if let Ok((stage, state)) = decode_stage(bytes) {
                let again = decode_stage(&encode_stage(stage, &state)).expect("a decoded state encodes");
                prop_assert_eq!(again, (stage, state));
            }
            Ok(())
        }

        proptest! {

            #[test]
            fn fuzz_arbitrary_stage_messages(bytes in prop::collection::vec(any::<u8>(), 0..2_048)) {
                check(&bytes)?;
            }

            #[test]
            fn fuzz_damaged_stage_messages(
                stage in 0_usize..4,
                flips in prop::collection::vec((any::<usize>(), 1_u8..), 1..6),
                cut in any::<usize>(),
            ) {
                let mut bytes = encode_stage(Stage::ALL[stage], &full_state());
                let n = bytes.len();
                for (at, xor) in flips {
                    bytes[at % n] ^= xor;
                }
                bytes.truncate(n - cut % (n / 4).max(1));
                check(&bytes)?;
            }
        }
    }
}
