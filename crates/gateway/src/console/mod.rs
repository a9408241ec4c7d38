//! The web console at `/console`: live queues, timings, jobs and dead letters
//! for an operator, served from this binary (no separate web server, no
//! network fetches) and fed by one admin event stream.
//!
//! The page and its script are public (they hold no data); every data route is
//! under `/api/v1/admin/console/` and needs an admin key when API keys are on
//! (`gateway.auth.required`). With keys off the console is open, like the rest
//! of such a gateway. The script sends the key in a header (never in a URL, so
//! it stays out of access logs), which is why it reads the event stream with
//! `fetch` rather than `EventSource`.

mod assets;
pub(crate) mod data;
pub(crate) mod stream;

pub use assets::{config, page, script, style};
pub use data::console_file;

/// Where the console serves a job's files (any tenant's), as
/// [`crate::openapi::FILES_ROUTE`] does for the job's own tenant.
pub(crate) const FILES_ROUTE: &str = "/api/v1/admin/console/files/{id}/{*path}";
