//! The stage worker service: one binary per stage (`atelier-analysis`,
//! `atelier-generation`, `atelier-upscaling`, `atelier-postprocess`), each a thin
//! `main` over [`serve`].
//!
//! A worker consumes its stage's queue, runs the stage from `atelier-stages` on
//! the job state the message carries, writes artefacts to the blob store under
//! deterministic keys, publishes the next stage's message and the job's events
//! (both confirmed) and only then lets the broker runtime ack. Retries,
//! dead-lettering and reconnects are the broker runtime's; this crate decides what
//! a stage failure means for the job.

mod cancel;
mod error;
mod handler;
mod service;

pub use cancel::CancelledJobs;
pub use error::WorkerError;
pub use handler::StageWorker;
pub use service::{run_main, serve};
