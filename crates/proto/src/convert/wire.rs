//! Small checks shared by every decoder: schema version, ids, number widths.

use atelier_core::job::JobId;

use crate::{ProtoError, v1};

/// The schema version this build writes and the only one it reads.
pub(crate) const SCHEMA_VERSION: v1::SchemaVersion = v1::SchemaVersion::SchemaVersion1;

/// Refuses messages written for another schema, before any other field is trusted.
pub(crate) fn check_schema(raw: i32) -> Result<(), ProtoError> {
    if raw == i32::from(SCHEMA_VERSION) {
        Ok(())
    } else {
        Err(ProtoError::SchemaVersion {
            field: "schema_version".to_owned(),
            found: raw,
        })
    }
}

/// Parses a hyphenated UUID job id.
pub(crate) fn job_id(raw: &str, field: &str) -> Result<JobId, ProtoError> {
    raw.parse().map_err(|source| ProtoError::JobId {
        field: field.to_owned(),
        value: raw.to_owned(),
        source,
    })
}

/// Narrows a `uint32` to the `u8` core holds (counts, priorities, factors).
pub(crate) fn to_u8(value: u32, field: &str) -> Result<u8, ProtoError> {
    u8::try_from(value).map_err(|_| ProtoError::OutOfRange {
        field: field.to_owned(),
        value: value.into(),
        max: u8::MAX.into(),
    })
}

/// Narrows a `uint64` index to `usize` (only fails on 32-bit targets).
pub(crate) fn to_usize(value: u64, field: &str) -> Result<usize, ProtoError> {
    usize::try_from(value).map_err(|_| ProtoError::OutOfRange {
        field: field.to_owned(),
        value,
        max: u64::try_from(usize::MAX).unwrap_or(u64::MAX),
    })
}

/// Widens a core index for the wire: lossless, `usize` is at most 64 bits.
pub(crate) fn index(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

pub(crate) use atelier_core::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_names_the_field() {
        assert_eq!(to_u8(255, "x").expect("fits"), 255);
        let err = to_u8(256, "ordinal").unwrap_err();
        assert_eq!(err.field(), Some("ordinal"));
        assert!(err.to_string().contains("256"), "{err}");
    }

    #[test]
    fn schema_other_than_one_is_refused() {
        assert!(check_schema(1).is_ok());
        for raw in [0, 2, -1] {
            let err = check_schema(raw).unwrap_err();
            assert!(matches!(err, ProtoError::SchemaVersion { found, .. } if found == raw));
            assert_eq!(err.field(), Some("schema_version"));
        }
    }

    #[test]
    fn bad_job_id_is_refused() {
        let err = job_id("not-a-uuid", "job_id").unwrap_err();
        assert_eq!(err.field(), Some("job_id"));
        assert!(err.to_string().contains("not-a-uuid"), "{err}");
    }
}
