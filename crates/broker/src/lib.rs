//! RabbitMQ for Atelier: the topology every service declares, a confirmed
//! publisher, the stage consumer runtime (retries through delay queues,
//! dead-lettering, crash-redelivery accounting) and reconnecting subscriptions.
//!
//! Everything hangs off one cheap, cloneable [`Broker`] that keeps a single
//! connection per process and re-establishes it when RabbitMQ goes away.
//! Message bodies are opaque bytes here; routing, retry and trace data travel in
//! AMQP headers ([`MessageMeta`]).

mod connection;
mod consumer;
mod error;
mod inspect;
mod meta;
mod publisher;
mod subscribe;
mod topology;

pub use connection::Broker;
pub use consumer::{Delivery, StageHandler};
pub use error::{BrokerError, HandlerError};
pub use inspect::{DeadLetter, QueueStats};
pub use meta::{
    HEADER_ATTEMPT, HEADER_DEADLINE_MS, HEADER_DEATH_REASON, HEADER_JOB_ID, HEADER_STAGE, HEADER_TRACEPARENT,
    MAX_PRIORITY, MessageMeta, child_traceparent, is_valid_traceparent, new_traceparent,
};
pub use subscribe::{Acker, Subscription};
pub use topology::{Names, STATUS_BINDING_KEY, declare_topology, delete_topology};

/// Re-exported so handlers and tests can name lapin types without their own dependency.
pub use lapin;
