//! The pipeline's message bus, generic over protobuf message types, with two
//! transports behind one [`Transport`] trait: RabbitMQ ([`Broker`]) for the
//! distributed stack and [`InProcess`] queues for `atelier serve`.
//!
//! Above the transport, written once: typed stage queues ([`Pipeline`]) whose
//! deliveries are acknowledged, retried with backoff or dead-lettered; the
//! consumer runtime ([`run_stage`]); typed event and control topics
//! ([`EventTopic`], [`ControlTopic`]). Every name (queues, exchanges, routing
//! keys, bindings) is derived in [`names`] from typed values. This crate knows
//! nothing of the messages themselves (`atelier-bus` gives them their types).

mod error;
mod memory;
mod meta;
pub mod names;
mod pipeline;
mod policy;
mod rabbit;
mod runtime;
mod topics;
mod transport;

pub use error::{BrokerError, HandlerError};
pub use memory::InProcess;
pub use meta::{MAX_PRIORITY, MessageMeta, child_traceparent, is_valid_traceparent, new_traceparent};
pub use names::{EventFilter, EventKey, Names, Origin};
pub use pipeline::{Deliveries, Delivery, Pipeline, Rejected, Retried, Ticket};
pub use policy::{Retry, RetryPolicy};
pub use rabbit::{
    Broker, HEADER_ATTEMPT, HEADER_DEADLINE_MS, HEADER_DEATH_REASON, HEADER_JOB_ID, HEADER_ORIGIN,
    HEADER_STAGE, HEADER_TRACEPARENT, declare_topology, delete_topology,
};
pub use runtime::{GaveUp, StageHandler, run_stage};
pub use topics::{Acked, ControlTopic, EventTopic, Received, StatusSubscription, Subscription};
pub use transport::{
    Admission, DeadLetter, QueueStats, RawConsumer, RawDelivery, RawSubscription, Settle, SubscriptionItem,
    Topic, Transport,
};

/// Re-exported so tests and tools can name lapin types without their own dependency.
pub use lapin;
