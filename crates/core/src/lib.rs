//! Atelier's domain: what a request is, what each pipeline stage produces, where
//! artefacts live, and how the service is configured.
//!
//! Every other crate speaks these types, so they carry no I/O (apart from reading
//! configuration files) and no async: the worker services, the gateway and
//! `atelier process` all agree on one definition of a job.

pub mod analysis;
pub mod cache;
pub mod clock;
pub mod error;
pub mod event;
pub mod job;
pub mod keys;
pub mod output;
pub mod pipeline;
pub mod request;
pub mod response;
pub mod settings;

pub use error::{CoreError, ValidationError};
