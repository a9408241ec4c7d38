//! The one error type of this crate: why a message from the wire was refused.
//!
//! Every variant but [`ProtoError::Decode`] names the offending field by its
//! protobuf path (`state.spec.request.input_images[0].view`), so a worker can
//! dead-letter the message with a reason an operator can act on.

use thiserror::Error;

/// A message that could not be decoded or does not describe a valid core value.
/// All are permanent: redelivering the same bytes fails the same way.
#[derive(Debug, Error)]
pub enum ProtoError {
    /// The bytes are not a protobuf encoding of the expected message.
    #[error("malformed {message} message")]
    Decode {
        message: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    /// Written by a producer with a schema this build does not know.
    #[error("{field}: schema version {found} is not supported (this build reads version 1)")]
    SchemaVersion { field: String, found: i32 },
    /// A field the core type cannot do without was absent.
    #[error("{field}: required field is missing")]
    Missing { field: String },
    /// An enum left at its `*_UNSPECIFIED` zero value.
    #[error("{field}: enum value is unspecified")]
    Unspecified { field: String },
    /// An enum value this build does not know (a newer producer?).
    #[error("{field}: unknown enum value {value}")]
    UnknownEnum { field: String, value: i32 },
    /// A job id that is not a UUID.
    #[error("{field}: `{value}` is not a job id")]
    JobId {
        field: String,
        value: String,
        #[source]
        source: uuid::Error,
    },
    /// A number wider on the wire than the core field holds.
    #[error("{field}: {value} is out of range (at most {max})")]
    OutOfRange { field: String, value: u64, max: u64 },
    /// A repeated field with the wrong number of entries.
    #[error("{field}: expected {expected} entries, got {found}")]
    Length {
        field: String,
        expected: usize,
        found: usize,
    },
}

impl ProtoError {
    /// The protobuf path of the offending field, or `None` when the bytes
    /// themselves were malformed.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Decode { .. } => None,
            Self::SchemaVersion { field, .. }
            | Self::Missing { field }
            | Self::Unspecified { field }
            | Self::UnknownEnum { field, .. }
            | Self::JobId { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Length { field, .. } => Some(field),
        }
    }

    /// Prefixes the field path with the enclosing field, so errors raised deep
    /// inside a message name their full path without allocating on success.
    pub(crate) fn within(mut self, prefix: &str) -> Self {
        if let Some(field) = self.field_mut() {
            *field = format!("{prefix}.{field}");
        }
        self
    }

    /// Like [`Self::within`] for an entry of a repeated field.
    pub(crate) fn at(self, list: &str, index: usize) -> Self {
        self.within(&format!("{list}[{index}]"))
    }

    fn field_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::Decode { .. } => None,
            Self::SchemaVersion { field, .. }
            | Self::Missing { field }
            | Self::Unspecified { field }
            | Self::UnknownEnum { field, .. }
            | Self::JobId { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Length { field, .. } => Some(field),
        }
    }

    pub(crate) fn missing(field: &str) -> Self {
        Self::Missing {
            field: field.to_owned(),
        }
    }

    pub(crate) fn unspecified(field: &str) -> Self {
        Self::Unspecified {
            field: field.to_owned(),
        }
    }

    pub(crate) fn unknown_enum(field: &str, value: i32) -> Self {
        Self::UnknownEnum {
            field: field.to_owned(),
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_outwards() {
        let err = ProtoError::unspecified("view")
            .at("input_images", 2)
            .within("request")
            .within("spec");
        assert_eq!(err.field(), Some("spec.request.input_images[2].view"));
        assert_eq!(
            err.to_string(),
            "spec.request.input_images[2].view: enum value is unspecified"
        );
    }
}
