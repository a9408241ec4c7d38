//! `atelier-status`: the one writer of job progress and the source of the
//! pipeline's numbers.
//!
//! It consumes every job event through its own durable queue (so events wait
//! while it restarts), records them in the job store, keeps a fresh view of queue
//! depths and consumer counts from RabbitMQ, and serves `atelier.v1.StatusService`
//! over gRPC with health and reflection.

mod convert;
mod grpc;
mod hub;
mod queues;
mod recorder;
mod service;

pub use grpc::StatusApi;
pub use hub::EventHub;
pub use queues::QueueWatch;
pub use recorder::record_events;
pub use service::{StatusError, run_main, serve};
