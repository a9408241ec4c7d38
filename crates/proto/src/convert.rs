//! Mapping between `atelier-core` types and the `atelier.v1` messages.
//!
//! Encoding is infallible: every core value has a message. Decoding validates
//! everything the wire allows but the core types do not (unspecified or unknown
//! enum values, malformed ids, numbers too wide, missing required messages, a
//! schema version this build does not read) and reports the offending field's
//! path in a [`ProtoError`], so a worker can refuse a message instead of acting
//! on a guess.

mod enums;
mod event;
mod outputs;
mod spec;
mod state;
mod wire;

#[cfg(test)]
mod fixtures;

pub use event::{CancelNotice, cancel_job};
pub use state::{job_state, stage_message};
