//! `atelier-gateway`: the HTTP API of `docs/api.md` in front of the pipeline.
//!
//! It validates requests, fetches and sniffs the photos, creates the job row,
//! puts the job on the bus with publisher confirms, and answers synchronously
//! (waiting on the job's events, as the old service did) or with 202. It keeps
//! no job state of its own: every gateway reads the same job store and hears
//! the same events, so a job submitted to one can be read, awaited and
//! cancelled through any other. The same library serves the distributed stack
//! (`atelier-gateway`) and `atelier serve`.

mod auth;
mod body;
mod browser;
mod console;
mod dead;
mod error;
mod files;
mod inputs;
mod jobs;
mod list;
mod middleware;
pub mod model;
pub mod openapi;
mod ops;
mod queue;
mod ranges;
mod server;
mod service;
mod state;
mod stream;
mod submit;
mod uploads;
mod wait;
mod watch;
mod webhooks;

pub use atelier_egress::is_public;
pub use auth::{Admin, Caller};
pub use dead::{DeadLetterBody, DeadLetterDetail, DeadLetterList, Purged, Replayed, Selection};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use inputs::Fetcher;
pub use list::JobList;
pub use service::{GatewayError, bind, build_state, ops_router, router, run, run_main, serve};
pub use state::AppState;
pub use watch::EventFeed;
