//! When a failed delivery is tried again: the configured pauses, each drawn
//! within ±jitter of its value so endpoints that failed together are not all
//! retried in the same instant.

use std::time::Duration;

use atelier_core::settings::WebhookSettings;

/// The retry schedule of deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Schedule {
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Self {
        Self {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    pub fn from_settings(settings: &WebhookSettings) -> Self {
        Self::new(
            settings
                .retry_delays_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            settings.retry_jitter,
        )
    }

    /// Attempts in all: one more than there are pauses.
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The pause after the `made`-th failed attempt (1-based), or `None` when
    /// that was the last one.
    pub fn after(&self, made: usize) -> Option<Duration> {
        let base = *self.delays.get(made.checked_sub(1)?)?;
        let spread = self.jitter * (2.0 * rand::random::<f64>() - 1.0);
        Some(base.mul_f64(1.0 + spread))
    }

    /// The pauses without jitter, added up: how long a delivery may be retried.
    pub fn span(&self) -> Duration {
        self.delays.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_follow_the_schedule_within_the_jitter_then_stop() {
        let schedule = Schedule::new(vec![Duration::from_secs(5), Duration::from_secs(300)], 0.2);
        assert_eq!(schedule.attempts(), 3);
        assert_eq!(schedule.after(0), None);
        for _ in 0..100 {
            let first = schedule.after(1).expect("a pause");
            assert!((4.0..=6.0).contains(&first.as_secs_f64()), "{first:?}");
            let second = schedule.after(2).expect("a pause");
            assert!((240.0..=360.0).contains(&second.as_secs_f64()), "{second:?}");
        }
        assert_eq!(schedule.after(3), None, "three attempts, then no more");
        let exact = Schedule::new(vec![Duration::from_millis(100)], 0.0);
        assert_eq!(exact.after(1), Some(Duration::from_millis(100)));
    }

    #[test]
    fn the_default_schedule_lasts_about_a_day() {
        let schedule = Schedule::from_settings(&atelier_core::settings::Settings::defaults().webhooks);
        let hours = schedule.span().as_secs_f64() / 3_600.0;
        assert!((20.0..=30.0).contains(&hours), "{hours} h");
    }
}
