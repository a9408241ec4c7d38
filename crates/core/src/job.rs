//! Job identity and the immutable description of a job.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::request::GenerateRequest;

/// Identifier of one request through the pipeline (UUIDv7, so ids sort by creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// A stable 64-bit seed for the `n`th thing made for this job, so reruns and
    /// redeliveries render the same pixels.
    pub fn seed(&self, n: u64) -> u64 {
        let (hi, lo) = self.0.as_u64_pair();
        // SplitMix64 finaliser over the id halves and n: cheap, well mixed, stable.
        let mut z = hi ^ lo.rotate_left(32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Which endpoint flavour a job was submitted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `POST /api/v1/generate/image`: variations (and upscales) only.
    Images,
    /// `POST /api/v1/generate`: also the video and the Excel report.
    Full,
}

impl JobKind {
    /// Snake-case name, as serialised and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Images => "images",
            Self::Full => "full",
        }
    }

    /// Whether post-processing makes a video and a report for this kind.
    pub fn wants_media(self) -> bool {
        matches!(self, Self::Full)
    }
}

/// An input photo once it sits in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInput {
    /// Blob key relative to the job's prefix.
    pub key: String,
    /// Where the client said it came from (URL or file name), for reports and errors.
    pub source: String,
}

/// Everything about a job that does not change while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: JobId,
    pub kind: JobKind,
    /// The validated request.
    pub request: GenerateRequest,
    /// One entry per `request.input_images`, same order.
    pub inputs: Vec<StoredInput>,
    /// Submission time, milliseconds since the Unix epoch (for queue-wait timing).
    pub submitted_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_distinct() {
        let id: JobId = "0190f5c4-7b2a-7cc0-9a51-3f4f0e2d9c11".parse().expect("uuid");
        assert_eq!(id.seed(0), id.seed(0));
        assert_ne!(id.seed(0), id.seed(1));
        let other: JobId = "0190f5c4-7b2a-7cc0-9a51-3f4f0e2d9c12".parse().expect("uuid");
        assert_ne!(id.seed(0), other.seed(0));
    }
}
