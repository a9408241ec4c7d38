//! Signed webhooks, per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): a job's `callbackUrl` receives its
//! final event (and, when asked, its stage events) as the job resource of
//! `GET /api/v1/jobs/{id}`, with `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers.
//!
//! Deliveries live in the job store ([`atelier_jobs::WebhookStore`]): the
//! status service adds one when it records a wanted event ([`delivery_for`]),
//! and a [`Sender`] — in the status service of the stack, in-process in
//! `atelier serve` — attempts it off the request path, with backoff and
//! jitter over a schedule, a timeout per attempt, the input fetch policy (no
//! private addresses unless allowed) and a cap of requests per endpoint.

mod events;
mod schedule;
mod sender;
mod signature;

pub use events::{DEFAULT_EVENTS, EVENT_TYPES, delivery_for, event_type};
pub use schedule::Schedule;
pub use sender::Sender;
pub use signature::SigningSecret;

/// What can go wrong with webhooks.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A signing secret is not `whsec_` and base64.
    #[error("a webhook signing secret must be `whsec_` followed by base64")]
    BadSecret,
    /// The delivery body could not be encoded.
    #[error("cannot encode the delivery body")]
    Encode(#[from] serde_json::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    Client(#[from] reqwest::Error),
}
