//! Vendor quotas shared by every worker: the job store counts each vendor's
//! calls (GCRA, like the gateway's per-key limits), so a fleet of N workers
//! together respects one quota instead of N times it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use atelier_jobs::Store;
use atelier_providers::QuotaGate;
use atelier_providers::http::RateLimiter;

/// Longest single wait between two checks of the shared count.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// A [`QuotaGate`] counted in the job store. When the store does not answer,
/// the process falls back to counting alone (it may then exceed a share of the
/// quota, never stop working).
#[derive(Debug)]
pub struct SharedQuota {
    store: Arc<dyn Store>,
    /// Per vendor, for when the store does not answer.
    fallback: Mutex<HashMap<&'static str, Arc<RateLimiter>>>,
}

impl SharedQuota {
    /// A gate over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            fallback: Mutex::default(),
        }
    }

    fn fallback(&self, provider: &'static str, per_minute: u32, burst: u32) -> Arc<RateLimiter> {
        self.fallback
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(provider)
            .or_insert_with(|| Arc::new(RateLimiter::new(per_minute, burst)))
            .clone()
    }
}

#[async_trait]
impl QuotaGate for SharedQuota {
    async fn acquire(&self, provider: &'static str, per_minute: u32, burst: u32) {
        let bucket = format!("vendor:{provider}");
        loop {
            match self.store.check_rate(&bucket, per_minute, burst).await {
                Ok(decision) if decision.allowed => return,
                Ok(decision) => {
                    tokio::time::sleep(Duration::from_millis(decision.retry_after_ms.max(1)).min(MAX_WAIT))
                        .await;
                }
                Err(error) => {
                    tracing::warn!(
                        provider,
                        error = %atelier_core::error::error_chain(&error),
                        "shared quota unavailable; counting in this process"
                    );
                    self.fallback(provider, per_minute, burst).acquire().await;
                    return;
                }
            }
        }
    }
}
