//! A token-bucket rate limiter (GCRA form): callers wait until the configured
//! per-minute rate admits them, with `burst` starts allowed back to back.
//!
//! Written on tokio's clock, so tests measure it with `tokio::time::pause`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Seconds in the unit the settings give rates in.
const MINUTE: Duration = Duration::from_secs(60);

/// Spaces request starts to at most `per_minute`, after an initial `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time one token takes to refill.
    interval: Duration,
    /// How far ahead of the steady schedule a caller may start (the burst).
    tolerance: Duration,
    /// Theoretical arrival time of the next request on the steady schedule.
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter admitting `per_minute` starts per minute, `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let interval = MINUTE / per_minute.max(1);
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            next: Mutex::new(None),
        }
    }

    /// Waits for a token. Each caller reserves its slot under the lock and then
    /// sleeps outside it, so concurrent callers queue in arrival order.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let start_at = {
            let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let scheduled = next.map_or(now, |n| n.max(now));
            *next = Some(scheduled + self.interval);
            scheduled.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        if start_at > now {
            tokio::time::sleep_until(start_at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Start times of `callers` concurrent acquirers, relative to the first call.
    async fn start_offsets(limiter: Arc<RateLimiter>, callers: usize) -> Vec<Duration> {
        let origin = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    limiter.acquire().await;
                    Instant::now() - origin
                })
            })
            .collect();
        let mut offsets = Vec::new();
        for task in tasks {
            offsets.push(task.await.expect("task"));
        }
        offsets.sort();
        offsets
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_are_held_to_the_rate_after_the_burst() {
        // 600 per minute = one every 100 ms, 3 at once.
        let limiter = Arc::new(RateLimiter::new(600, 3));
        let offsets = start_offsets(limiter, 8).await;
        let ms: Vec<u128> = offsets.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![0, 0, 0, 100, 200, 300, 400, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rested_limiter_allows_a_new_burst() {
        let limiter = Arc::new(RateLimiter::new(60, 2));
        let first = start_offsets(Arc::clone(&limiter), 3).await;
        assert_eq!(first.last().map(Duration::as_secs), Some(1));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let second = start_offsets(limiter, 2).await;
        assert!(second.iter().all(|d| d.is_zero()), "{second:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_minute_admits_the_configured_count() {
        let limiter = Arc::new(RateLimiter::new(120, 1));
        let offsets = start_offsets(limiter, 121).await;
        let within_a_minute = offsets.iter().filter(|d| **d < MINUTE).count();
        assert_eq!(within_a_minute, 120);
    }
}
