//! Deterministic blob keys. A stage that runs twice (a redelivered message) writes
//! the same keys again, so retries overwrite instead of duplicating.
//!
//! Keys here are relative to a job's prefix (see [`job_prefix`]); `atelier process`
//! uses an empty prefix so its output folder holds `variations/0.jpg` directly.

use crate::job::JobId;

/// Prefix under which the services keep one job's blobs.
pub fn job_prefix(id: &JobId) -> String {
    format!("jobs/{id}/")
}

/// Full key of job `id`'s cancel marker.
pub fn cancel_marker(id: &JobId) -> String {
    format!("{}{CANCELLED}", job_prefix(id))
}

/// Stored input photo `n`, keeping the client's format as extension.
pub fn input(n: usize, ext: &str) -> String {
    format!("inputs/{n}.{ext}")
}

/// Foreground mask of input `n` (8-bit grey PNG at analysis resolution).
pub fn mask(n: usize) -> String {
    format!("masks/{n}.png")
}

/// Variation `n` of the job (global index over all inputs), with the
/// extension of its format (`jpg`, `png`, `webp`).
pub fn variation(n: usize, ext: &str) -> String {
    format!("variations/{n}.{ext}")
}

/// Upscaled copy of variation `n`, in the variation's format.
pub fn upscaled(n: usize, ext: &str) -> String {
    format!("upscaled/{n}.{ext}")
}

/// The job's slideshow video.
pub const VIDEO: &str = "video.mp4";
/// The job's Excel report.
pub const REPORT: &str = "report.xlsx";
/// Marker written by the gateway when a job is cancelled (job-relative; see
/// [`cancel_marker`]); workers skip the remaining stages of a job that has it.
pub const CANCELLED: &str = "cancelled";
/// The job's final response body.
pub const RESULT: &str = "result.json";

/// Content type to serve a key with, from its extension.
pub fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("mp4") => "video/mp4",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
