//! Exponential backoff with jitter, and reading the server's own delay hints.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use atelier_core::settings::HttpSettings;

/// How often and how long a client waits before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base: Duration,
    /// Cap of our own backoff, and the longest server-requested delay we accept.
    pub max: Duration,
}

impl RetryPolicy {
    /// The policy of a provider section.
    pub fn from_settings(s: &HttpSettings) -> Self {
        Self {
            max_retries: s.max_retries,
            base: Duration::from_millis(s.retry_base_ms),
            max: Duration::from_millis(s.retry_max_ms),
        }
    }

    /// The wait before retry number `retry` (0-based): the server's hint when it
    /// gave one, else `base · 2^retry` capped at `max`, with "equal jitter" (half
    /// fixed, half random) so a crowd of clients does not retry in step. `None`
    /// when the server asks for longer than `max`: waiting less is pointless and
    /// waiting more would hold a job hostage, so the caller gives up.
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Option<Duration> {
        if let Some(hint) = hint {
            return (hint <= self.max).then_some(hint);
        }
        let exp = self.base.saturating_mul(2u32.saturating_pow(retry)).min(self.max);
        let half = exp / 2;
        Some(half + half.mul_f64(random_unit()))
    }
}

/// A uniformly random number in [0, 1), from the std hasher's random keys (no
/// RNG crate needed for jitter).
fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a `Retry-After` header given in seconds (the form Replicate sends).
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Parses a protobuf JSON duration such as `"23s"` or `"0.5s"` (Google's
/// `RetryInfo.retryDelay`).
pub fn proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = policy();
        for retry in 0..6 {
            let exp = Duration::from_millis(100 * 2u64.pow(retry)).min(Duration::from_secs(1));
            let d = p.delay(retry, None).expect("delay");
            assert!(d >= exp / 2 && d <= exp, "retry {retry}: {d:?} vs {exp:?}");
        }
    }

    #[test]
    fn server_hints_win_unless_too_long() {
        let p = policy();
        assert_eq!(
            p.delay(0, Some(Duration::from_millis(700))),
            Some(Duration::from_millis(700))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(proto_duration("23s"), Some(Duration::from_secs(23)));
        assert_eq!(proto_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(proto_duration("soon"), None);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(retry_after_header(&h), Some(Duration::from_secs(2)));
    }
}
