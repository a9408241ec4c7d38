//! `atelier-status`: the one writer of job progress and the source of the
//! pipeline's numbers.
//!
//! It consumes every job event through its own durable feed (so events wait
//! while it restarts), records them in the job store, keeps a fresh view of queue
//! depths and consumer counts from the bus, and serves `atelier.v1.StatusService`
//! over gRPC with health and reflection.

mod convert;
mod grpc;
mod hub;
mod queues;
mod reaper;
mod recorder;
mod retention;
mod service;

pub use grpc::StatusApi;
pub use hub::EventHub;
pub use queues::QueueWatch;
pub use reaper::{Resumed, reap, resume_unfinished, run_reaper};
pub use recorder::record_events;
pub use retention::{RetentionPolicy, Sweep, SweepError, Swept, run_sweeper, sweep};
pub use service::{StatusError, bind, run, run_main, serve};
