//! [`MessageMeta`] in AMQP properties and headers, and back.

use std::collections::BTreeMap;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::meta::{MAX_PRIORITY, MessageMeta, is_valid_traceparent};

/// Header carrying the job id (also copied to `message_id`).
pub const HEADER_JOB_ID: &str = "x-job-id";
/// Header carrying the 1-based delivery attempt.
pub const HEADER_ATTEMPT: &str = "x-attempt";
/// Header carrying the W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Header carrying the job deadline, Unix epoch milliseconds.
pub const HEADER_DEADLINE_MS: &str = "x-deadline-ms";
/// Header set on dead letters: why the message was given up.
pub const HEADER_DEATH_REASON: &str = "x-death-reason";
/// Header set on dead letters: the stage that gave up.
pub const HEADER_STAGE: &str = "x-stage";

/// Header set on dead letters: where the message came from (`stage:analysis`, `events`).
pub const HEADER_ORIGIN: &str = "x-origin";

/// AMQP delivery mode for messages that survive a broker restart.
pub(crate) const PERSISTENT: u8 = 2;

impl MessageMeta {
    /// AMQP headers for this metadata.
    pub(crate) fn headers(&self) -> FieldTable {
        let mut h = FieldTable::default();
        h.insert(
            HEADER_JOB_ID.into(),
            AMQPValue::LongString(self.job_id.as_str().into()),
        );
        // Signed 64-bit ('l') because RabbitMQ and other clients disagree on the
        // unsigned table types; every client reads 'l' the same way.
        h.insert(
            HEADER_ATTEMPT.into(),
            AMQPValue::LongLongInt(i64::from(self.attempt.max(1))),
        );
        if let Some(tp) = &self.traceparent {
            h.insert(
                HEADER_TRACEPARENT.into(),
                AMQPValue::LongString(tp.as_str().into()),
            );
        }
        if let Some(deadline) = self.deadline_ms {
            h.insert(
                HEADER_DEADLINE_MS.into(),
                AMQPValue::LongLongInt(i64::try_from(deadline).unwrap_or(i64::MAX)),
            );
        }
        h
    }

    /// Full AMQP properties of a persistent message with this metadata.
    pub(crate) fn properties(&self) -> BasicProperties {
        self.properties_with(self.headers())
    }

    /// Properties with `headers` (this metadata's plus extras).
    pub(crate) fn properties_with(&self, headers: FieldTable) -> BasicProperties {
        BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_priority(self.priority.min(MAX_PRIORITY))
            .with_message_id(ShortString::from(self.job_id.as_str()))
            .with_content_type("application/x-protobuf".into())
            .with_headers(headers)
    }

    /// Reads metadata back, leniently: a message with missing or malformed
    /// headers is still processed (attempt 1, job id from `message_id`) rather
    /// than lost, because the body, not the headers, is the source of truth.
    pub fn from_properties(props: &BasicProperties) -> Self {
        let empty = FieldTable::default();
        let headers = props.headers().as_ref().unwrap_or(&empty);
        let job_id = headers
            .inner()
            .get(HEADER_JOB_ID)
            .and_then(value_as_string)
            .or_else(|| props.message_id().as_ref().map(|m| m.as_str().to_owned()))
            .unwrap_or_default();
        let attempt = headers
            .inner()
            .get(HEADER_ATTEMPT)
            .and_then(value_as_u64)
            .and_then(|a| u32::try_from(a).ok())
            .filter(|a| *a >= 1)
            .unwrap_or(1);
        let traceparent = headers
            .inner()
            .get(HEADER_TRACEPARENT)
            .and_then(value_as_string)
            .filter(|tp| is_valid_traceparent(tp));
        let deadline_ms = headers.inner().get(HEADER_DEADLINE_MS).and_then(value_as_u64);
        Self {
            job_id,
            attempt,
            priority: props.priority().unwrap_or(0).min(MAX_PRIORITY),
            traceparent,
            deadline_ms,
        }
    }
}

/// Any integer (or decimal string) header as `u64`; negative values are rejected.
pub(crate) fn value_as_u64(v: &AMQPValue) -> Option<u64> {
    match v {
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::Timestamp(n) => Some(*n),
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
            value_as_string(v).and_then(|s| s.trim().parse().ok())
        }
        _ => None,
    }
}

/// A string header as `String` (lossy for non-UTF-8 bytes).
pub(crate) fn value_as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Every header rendered as text, for tests and operators reading dead letters.
pub(crate) fn headers_to_strings(props: &BasicProperties) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(h) = props.headers() {
        for (k, v) in h.inner() {
            let text = value_as_string(v)
                .or_else(|| value_as_u64(v).map(|n| n.to_string()))
                .unwrap_or_else(|| format!("{v:?}"));
            out.insert(k.as_str().to_owned(), text);
        }
    }
    out
}

/// Adds a text header (dead-letter annotations).
pub(crate) fn insert_str(headers: &mut FieldTable, key: &str, value: &str) {
    headers.insert(
        ShortString::from(key),
        AMQPValue::LongString(LongString::from(value)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::new_traceparent;

    #[test]
    fn meta_roundtrip_and_defaults() {
        let meta = MessageMeta {
            job_id: "j1".into(),
            attempt: 3,
            priority: 7,
            traceparent: Some(new_traceparent()),
            deadline_ms: Some(1_700_000_000_000),
        };
        assert_eq!(MessageMeta::from_properties(&meta.properties()), meta);

        let bare = BasicProperties::default().with_message_id("j2".into());
        let m = MessageMeta::from_properties(&bare);
        assert_eq!(m.attempt, 1);
        assert_eq!(m.job_id, "j2");
        assert_eq!(m.priority, 0);

        let mut h = FieldTable::default();
        insert_str(&mut h, HEADER_ATTEMPT, "not a number");
        let m = MessageMeta::from_properties(&BasicProperties::default().with_headers(h));
        assert_eq!(m.attempt, 1);
    }
}
