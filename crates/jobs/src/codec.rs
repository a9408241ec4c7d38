//! Rows to records and back, shared by the SQL stores: both select plain
//! columns (text, integers, JSON as text) into these structs, so parsing and
//! validation are written once.

use atelier_core::event::{EventKind, JobEvent, JobFailure, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::{JobState, ProcessingTimes, Stage};

use crate::rules;
use crate::{Admission, ApiKey, JobRecord, JobStoreError, StoredEvent};

/// Columns of `jobs` as both stores select them (see [`JOB_SELECT`]).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: String,
    pub tenant: String,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub admission: String,
    pub resumes: i64,
    pub kind: String,
    pub status: String,
    pub current_stage: Option<String>,
    pub priority: i64,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub error_field: Option<String>,
    pub times: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub state: Option<String>,
    pub resume_stage: Option<String>,
}

/// Columns of `job_events` as both stores select them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    pub seq: i64,
    pub job_id: String,
    pub kind: String,
    pub stage: Option<String>,
    pub attempt: i64,
    pub seconds: f64,
    pub at_ms: i64,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub error_field: Option<String>,
    pub worker: String,
}

impl JobRow {
    pub(crate) fn into_record(self) -> Result<JobRecord, JobStoreError> {
        let failure = failure(self.error, self.error_code, self.error_field);
        Ok(JobRecord {
            id: parse_id(&self.id)?,
            tenant: self.tenant,
            idempotency_key: self.idempotency_key,
            request_hash: self.request_hash,
            admission: Admission::parse(&self.admission)
                .ok_or_else(|| corrupt("admission", &self.admission))?,
            resumes: u32::try_from(self.resumes).unwrap_or(u32::MAX),
            kind: rules::parse_kind(&self.kind).ok_or_else(|| corrupt("kind", &self.kind))?,
            status: JobStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?,
            current_stage: optional_stage(self.current_stage)?,
            priority: u8::try_from(self.priority)
                .map_err(|_| corrupt("priority", &self.priority.to_string()))?,
            created_at_ms: to_u64(self.created_at_ms),
            updated_at_ms: to_u64(self.updated_at_ms),
            times: serde_json::from_str::<ProcessingTimes>(&self.times)
                .map_err(|e| corrupt("times", &e.to_string()))?,
            failure,
            resume_stage: optional_stage(self.resume_stage)?,
            state: self
                .state
                .map(|s| serde_json::from_str::<JobState>(&s).map_err(|e| corrupt("state", &e.to_string())))
                .transpose()?,
        })
    }
}

impl EventRow {
    pub(crate) fn into_stored(self) -> Result<StoredEvent, JobStoreError> {
        Ok(StoredEvent {
            seq: to_u64(self.seq),
            event: JobEvent {
                job: parse_id(&self.job_id)?,
                kind: EventKind::parse(&self.kind).ok_or_else(|| corrupt("event kind", &self.kind))?,
                stage: optional_stage(self.stage)?,
                attempt: u32::try_from(self.attempt)
                    .map_err(|_| corrupt("attempt", &self.attempt.to_string()))?,
                seconds: self.seconds,
                at_ms: to_u64(self.at_ms),
                failure: failure(self.error, self.error_code, self.error_field),
                state: None,
                worker: self.worker,
            },
        })
    }
}

/// Columns of `api_keys`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub name: String,
    pub tenant: String,
    pub key_prefix: String,
    pub admin: bool,
    pub rate_per_minute: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub webhook_secret: Option<String>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl From<KeyRow> for ApiKey {
    fn from(row: KeyRow) -> Self {
        let limit = |v: Option<i64>| v.and_then(|n| u32::try_from(n).ok());
        Self {
            name: row.name,
            tenant: row.tenant,
            admin: row.admin,
            rate_per_minute: limit(row.rate_per_minute),
            max_in_flight: limit(row.max_in_flight),
            prefix: row.key_prefix,
            webhook_secret: row.webhook_secret,
            created_at_ms: to_u64(row.created_at_ms),
            revoked_at_ms: row.revoked_at_ms.map(to_u64),
        }
    }
}

/// The text columns a record is written with.
pub(crate) struct JobText {
    pub times: String,
    pub state: Option<String>,
    pub request: String,
}

impl JobText {
    pub(crate) fn of(job: &JobRecord) -> Result<Self, JobStoreError> {
        let request = match &job.state {
            Some(state) => to_json("request", &state.spec.request)?,
            None => "{}".to_string(),
        };
        Ok(Self {
            times: to_json("times", &job.times)?,
            state: job.state.as_ref().map(|s| to_json("state", s)).transpose()?,
            request,
        })
    }
}

fn to_json<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, JobStoreError> {
    serde_json::to_string(value).map_err(|source| JobStoreError::Encode { what, source })
}

fn failure(message: Option<String>, code: Option<String>, field: Option<String>) -> Option<JobFailure> {
    message.map(|message| JobFailure {
        code: code.unwrap_or_else(|| JobFailure::STAGE_FAILED.to_string()),
        message,
        field,
    })
}

fn parse_id(s: &str) -> Result<JobId, JobStoreError> {
    s.parse().map_err(|_| corrupt("job id", s))
}

fn optional_stage(name: Option<String>) -> Result<Option<Stage>, JobStoreError> {
    name.map(|n| Stage::parse(&n).ok_or_else(|| corrupt("stage", &n)))
        .transpose()
}

pub(crate) fn corrupt(what: &str, value: &str) -> JobStoreError {
    JobStoreError::Corrupt(format!("unknown {what} `{value}`"))
}

/// Epoch milliseconds into `bigint`; saturates (year 292 million) rather than fail.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `bigint` counts and stamps back; they are never negative.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
