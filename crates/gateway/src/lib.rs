//! `atelier-gateway`: the HTTP API of API.md in front of the broker-based
//! pipeline.
//!
//! It validates requests, fetches and sniffs the photos, creates the job row,
//! publishes the first stage's message with publisher confirms, and answers
//! synchronously (waiting on the job's events, as the old service did) or with
//! 202. It keeps no job state of its own: every gateway reads the same job store
//! and hears the same events, so a job submitted to one can be read, awaited and
//! cancelled through any other.

mod body;
mod error;
mod events;
mod files;
mod inputs;
mod jobs;
pub mod openapi;
mod ops;
mod queue;
mod service;
mod state;
mod submit;
mod wait;

pub use error::ApiError;
pub use events::EventFeed;
pub use inputs::Fetcher;
pub use service::{GatewayError, build_state, router, run_main, serve};
pub use state::AppState;
