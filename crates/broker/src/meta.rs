//! Per-message metadata and W3C trace context helpers.
//!
//! The body is a protobuf message owned by other crates; everything a transport
//! needs to route, retry and trace a message travels beside it (AMQP headers in
//! RabbitMQ, a struct in process), so the runtime never has to decode a body to
//! settle it.

/// Highest priority; stage queues are declared with `x-max-priority` = this.
pub const MAX_PRIORITY: u8 = 9;

/// What travels with every stage message besides its body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageMeta {
    pub job_id: String,
    /// 1 for the first delivery; every retry and every crash redelivery adds one.
    pub attempt: u32,
    /// 0–9, higher first (clamped to 9 when published).
    pub priority: u8,
    pub traceparent: Option<String>,
    /// Unix epoch milliseconds after which the job is pointless.
    pub deadline_ms: Option<u64>,
}

impl MessageMeta {
    /// Metadata of a job's first message (attempt 1, fresh trace).
    pub fn new(job_id: impl Into<String>, priority: u8) -> Self {
        Self {
            job_id: job_id.into(),
            attempt: 1,
            priority: priority.min(MAX_PRIORITY),
            traceparent: Some(new_traceparent()),
            deadline_ms: None,
        }
    }

    /// The same message, one attempt later.
    pub fn next_attempt(&self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self.clone()
        }
    }
}

/// A new W3C `traceparent` (version 00, sampled) with random trace and span ids,
/// for messages that enter the pipeline without trace context.
pub fn new_traceparent() -> String {
    format!("00-{:032x}-{:016x}-01", nonzero_u128(), nonzero_u64())
}

/// A `traceparent` continuing `parent`'s trace with a new span id, so a stage's
/// outgoing messages stay in the job's trace; a missing or invalid parent starts
/// a new trace.
pub fn child_traceparent(parent: Option<&str>) -> String {
    match parent.filter(|p| is_valid_traceparent(p)) {
        Some(p) => format!("00-{}-{:016x}-{}", &p[3..35], nonzero_u64(), &p[53..55]),
        None => new_traceparent(),
    }
}

/// Whether `tp` is a well-formed version-00 `traceparent` with non-zero ids.
pub fn is_valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// W3C forbids all-zero ids.
fn nonzero_u128() -> u128 {
    loop {
        let v: u128 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_roundtrip() {
        let tp = new_traceparent();
        assert!(is_valid_traceparent(&tp), "{tp}");
        let child = child_traceparent(Some(&tp));
        assert!(is_valid_traceparent(&child));
        assert_eq!(&child[3..35], &tp[3..35]);
        assert_ne!(&child[36..52], &tp[36..52]);
        assert!(!is_valid_traceparent("00-0000-00-01"));
        assert!(is_valid_traceparent(&child_traceparent(Some("garbage"))));
    }
}
