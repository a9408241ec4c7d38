//! Webhooks in the job store: a job's endpoint (`callbackUrl`), and each
//! delivery of one of its events with every attempt made, so a restarted or
//! replicated sender carries on where another stopped and a client can read
//! what its endpoint answered.

use async_trait::async_trait;
use atelier_core::job::JobId;
use serde::{Deserialize, Serialize};

use crate::JobStoreError;

/// Where a job's events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub job: JobId,
    pub url: String,
    /// Whose signing secret signs the deliveries: the API key's name, or
    /// `None` for `webhooks.secret` (keys off).
    pub key_name: Option<String>,
    /// Event types wanted (`job.completed`, `job.failed`, `job.stage_finished`, …).
    pub events: Vec<String>,
}

/// One event to deliver, as the status service records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// `msg_…`: the `webhook-id` of every attempt.
    pub id: String,
    pub job: JobId,
    /// What makes the delivery unique within its job (`job.completed`,
    /// `job.stage_finished:analysis`), so an event seen twice is sent once.
    pub topic: String,
    pub event_type: String,
    pub url: String,
    pub key_name: Option<String>,
    /// The exact bytes every attempt sends (and signs).
    pub body: String,
    pub created_at_ms: u64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed (or the endpoint said 410 Gone).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One try at delivering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub number: u32,
    pub at_ms: u64,
    pub duration_ms: u64,
    /// The endpoint's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why it failed without an answer (timeout, refused address, …).
    pub error: Option<String>,
    /// The start of the endpoint's answer.
    pub response: Option<String>,
}

/// A delivery and its attempts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub job: JobId,
    pub topic: String,
    pub event_type: String,
    pub url: String,
    pub key_name: Option<String>,
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: Vec<DeliveryAttempt>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at_ms: Option<u64>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at this time.
    RetryAt(u64),
    /// No more tries.
    GaveUp,
}

impl AttemptOutcome {
    pub(crate) fn status(self) -> DeliveryStatus {
        match self {
            Self::Delivered => DeliveryStatus::Delivered,
            Self::RetryAt(_) => DeliveryStatus::Pending,
            Self::GaveUp => DeliveryStatus::Failed,
        }
    }

    pub(crate) fn next_at(self) -> Option<u64> {
        match self {
            Self::RetryAt(at) => Some(at),
            _ => None,
        }
    }
}

/// Webhook endpoints and deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Records job `webhook.job`'s endpoint (the gateway, before queueing the job).
    async fn set_webhook(&self, webhook: &Webhook) -> Result<(), JobStoreError>;

    /// Job `job`'s endpoint, if it has one.
    async fn webhook(&self, job: JobId) -> Result<Option<Webhook>, JobStoreError>;

    /// Adds a pending delivery, due at once; `false` when the job already has
    /// one of this topic (an event seen again).
    async fn add_delivery(&self, delivery: &NewDelivery) -> Result<bool, JobStoreError>;

    /// Takes up to `limit` due deliveries for one sender: each becomes due
    /// again only `lease_ms` from `now_ms` (another sender, or this one after
    /// a crash, picks it up then), oldest due first.
    async fn claim_deliveries(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: u32,
    ) -> Result<Vec<Delivery>, JobStoreError>;

    /// Puts a claimed delivery back, due at `at_ms`, without counting an
    /// attempt (its endpoint had as many requests in flight as it may).
    async fn defer_delivery(&self, id: &str, at_ms: u64) -> Result<(), JobStoreError>;

    /// Appends `attempt` to delivery `id` and moves it as `outcome` says.
    async fn record_attempt(
        &self,
        id: &str,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
    ) -> Result<(), JobStoreError>;

    /// Job `job`'s deliveries, oldest first.
    async fn deliveries(&self, job: JobId) -> Result<Vec<Delivery>, JobStoreError>;

    /// Makes delivery `id` of job `job` pending and due at `now_ms` (a manual
    /// retry; its attempts are kept). `None` when the job has no such delivery.
    async fn retry_delivery(
        &self,
        job: JobId,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Delivery>, JobStoreError>;
}

/// A delivery row as both SQL stores select it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub id: String,
    pub job_id: String,
    pub topic: String,
    pub event_type: String,
    pub url: String,
    pub key_name: Option<String>,
    pub body: String,
    pub status: String,
    pub attempts: String,
    pub next_attempt_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Columns of `webhook_deliveries` as [`DeliveryRow`] reads them (the job id
/// cast to text for PostgreSQL's uuid).
pub(crate) const DELIVERY_COLUMNS: [&str; 12] = [
    "id",
    "job_id",
    "topic",
    "event_type",
    "url",
    "key_name",
    "body",
    "status",
    "attempts",
    "next_attempt_at_ms",
    "created_at_ms",
    "updated_at_ms",
];

impl DeliveryRow {
    pub(crate) fn into_delivery(self) -> Result<Delivery, JobStoreError> {
        use crate::codec::{corrupt, to_u64};
        Ok(Delivery {
            job: self.job_id.parse().map_err(|_| corrupt("job id", &self.job_id))?,
            status: DeliveryStatus::parse(&self.status)
                .ok_or_else(|| corrupt("delivery status", &self.status))?,
            attempts: serde_json::from_str(&self.attempts)
                .map_err(|e| corrupt("attempts", &e.to_string()))?,
            next_attempt_at_ms: self.next_attempt_at_ms.map(to_u64),
            created_at_ms: to_u64(self.created_at_ms),
            updated_at_ms: to_u64(self.updated_at_ms),
            id: self.id,
            topic: self.topic,
            event_type: self.event_type,
            url: self.url,
            key_name: self.key_name,
            body: self.body,
        })
    }
}

/// `attempt` as the JSON text appended to a row's `attempts`.
pub(crate) fn attempt_json(attempt: &DeliveryAttempt) -> Result<String, JobStoreError> {
    serde_json::to_string(attempt).map_err(|source| JobStoreError::Encode {
        what: "a delivery attempt",
        source,
    })
}

/// `events` as stored.
pub(crate) fn events_json(events: &[String]) -> Result<String, JobStoreError> {
    serde_json::to_string(events).map_err(|source| JobStoreError::Encode {
        what: "webhook events",
        source,
    })
}
