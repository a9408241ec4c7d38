//! The four pipeline stages and the in-process runner.
//!
//! Each stage is a function from what earlier stages left in the job's state to
//! its own typed output, reading and writing pixels only through the blob store.
//! The worker services call them one at a time through the broker;
//! [`runner::run_job`] calls all four in one process (`atelier process`). Either
//! way the same code runs, with the same deterministic output keys.

pub mod analysis;
pub mod cache;
mod context;
mod error;
pub mod generation;
mod load;
pub mod postprocess;
mod progress;
pub mod runner;
pub mod upscaling;

pub use context::{StageContext, Timed};
pub use error::StageError;
pub use progress::{NoProgress, Progress};
pub use runner::{record, run_stage};
