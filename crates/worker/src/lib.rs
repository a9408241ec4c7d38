//! The stage worker service: one binary per stage (`atelier-analysis`,
//! `atelier-generation`, `atelier-upscaling`, `atelier-postprocess`), each a thin
//! `main` over [`serve`].
//!
//! A worker consumes its stage's queue, runs the stage from `atelier-stages` on
//! the job state the message carries, writes artefacts to the blob store under
//! deterministic keys, forwards the job to the next stage and emits its events
//! (both confirmed) and only then lets the bus settle the message. Retries,
//! dead-lettering and reconnects are the bus's; this crate decides what a stage
//! failure means for the job.

mod cancel;
mod error;
mod handler;
mod quota;
mod service;

pub use cancel::CancelledJobs;
pub use error::WorkerError;
pub use handler::StageWorker;
pub use quota::SharedQuota;
pub use service::{build_providers, run_main, run_workers, serve};
