//! When a failed delivery is tried again, and when it is given up: the same
//! rule for every transport.

use atelier_core::settings::BrokerSettings;

use crate::BrokerError;

/// Attempts, delays and jitter of retries (from `[broker]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Deliveries of one message (the first included) before it is given up.
    pub max_attempts: u32,
    /// Waits before retry 1, 2, …; the last one repeats.
    pub delays_ms: Vec<u64>,
    /// Share of each wait taken off at random (0–1), so retries do not march in step.
    pub jitter: f64,
}

/// A scheduled retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Index into the delays (RabbitMQ keeps one delay queue per level).
    pub level: usize,
    /// How long to wait, jitter applied; never more than the level's delay.
    pub delay_ms: u64,
}

impl RetryPolicy {
    /// The policy of `settings`, checked.
    pub fn from_settings(settings: &BrokerSettings) -> Result<Self, BrokerError> {
        if settings.retry_delays_ms.is_empty() {
            return Err(BrokerError::Config("broker.retry_delays_ms is empty".into()));
        }
        if settings.max_attempts == 0 {
            return Err(BrokerError::Config("broker.max_attempts is 0".into()));
        }
        Ok(Self {
            max_attempts: settings.max_attempts,
            delays_ms: settings.retry_delays_ms.clone(),
            jitter: settings.retry_jitter,
        })
    }

    /// Whether a message on `attempt` may be tried once more.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt.saturating_add(1) <= self.max_attempts
    }

    /// The retry after a failure on `attempt` (1-based).
    pub fn retry_after(&self, attempt: u32) -> Retry {
        let levels = self.delays_ms.len().max(1);
        let level = usize::try_from(attempt.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(levels - 1);
        let delay = self.delays_ms.get(level).copied().unwrap_or_default();
        Retry {
            level,
            delay_ms: jittered_delay(delay, self.jitter),
        }
    }
}

/// The delay with up to `jitter` of it taken off at random. A RabbitMQ delay
/// queue's TTL (= `delay`) caps any per-message value above it, so jitter only
/// shortens: the spread is `[delay·(1 − jitter), delay]`.
fn jittered_delay(delay: u64, jitter: f64) -> u64 {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if jitter == 0.0 || delay == 0 {
        return delay;
    }
    let factor = 1.0 - jitter * rand::random_range(0.0..1.0);
    // Precision loss is irrelevant at millisecond delays.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let ms = (delay as f64 * factor).round() as u64;
    ms.min(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            delays_ms: vec![100, 1000],
            jitter: 0.2,
        }
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..1000 {
            let d = jittered_delay(1000, 0.2);
            assert!((800..=1000).contains(&d), "{d}");
        }
        assert_eq!(jittered_delay(1000, 0.0), 1000);
        assert_eq!(jittered_delay(1000, f64::NAN), 1000);
    }

    #[test]
    fn levels_follow_attempts_and_the_last_repeats() {
        let p = policy();
        assert_eq!(p.retry_after(1).level, 0);
        assert_eq!(p.retry_after(2).level, 1);
        assert_eq!(p.retry_after(7).level, 1);
        assert!(p.retry_after(1).delay_ms <= 100);
        assert!(p.may_retry(2));
        assert!(!p.may_retry(3));
    }
}
