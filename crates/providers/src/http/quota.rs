//! Where a vendor's request quota is counted. In one process a token bucket
//! does; a fleet of workers needs one shared count (see `atelier-worker`'s
//! store-backed gate), so that N workers together respect one vendor quota.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::RateLimiter;

/// Admits calls to a vendor at its configured rate.
#[async_trait]
pub trait QuotaGate: Send + Sync + fmt::Debug {
    /// Waits until one call to `provider` may start, at `per_minute` with
    /// `burst` back to back.
    async fn acquire(&self, provider: &'static str, per_minute: u32, burst: u32);
}

/// The quota counted in this process alone.
#[derive(Debug)]
pub struct LocalQuota {
    limiter: Arc<RateLimiter>,
}

impl LocalQuota {
    /// A bucket at `per_minute` with `burst` (one per client: its own vendor).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::new(per_minute, burst)),
        }
    }
}

#[async_trait]
impl QuotaGate for LocalQuota {
    async fn acquire(&self, _provider: &'static str, _per_minute: u32, _burst: u32) {
        self.limiter.acquire().await;
    }
}
