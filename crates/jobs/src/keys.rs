//! API keys and rate limits: the edge's shared state, kept in the job store so
//! every gateway replica (and every worker calling a vendor API) sees the same.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::JobStoreError;

/// An API key as stored: never the key itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Unique name, for `keys list` and `keys revoke`.
    pub name: String,
    /// Whose jobs the key reads and writes (several keys may share a tenant:
    /// rotation).
    pub tenant: String,
    /// May call the admin routes.
    pub admin: bool,
    /// Requests per minute; `None` = unlimited.
    pub rate_per_minute: Option<u32>,
    /// Unfinished jobs at once; `None` = unlimited.
    pub max_in_flight: Option<u32>,
    /// The key's first characters, to tell keys apart in listings.
    pub prefix: String,
    /// The Standard Webhooks signing secret (`whsec_…`) of this key's deliveries.
    pub webhook_secret: Option<String>,
    pub created_at_ms: u64,
    pub revoked_at_ms: Option<u64>,
}

impl ApiKey {
    /// Whether the key may still be used.
    pub fn is_active(&self) -> bool {
        self.revoked_at_ms.is_none()
    }
}

/// Stored API keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores `key` under the SHA-256 `hash` of its secret. `KeyNameTaken`
    /// when the name is used.
    async fn create_key(&self, key: &ApiKey, hash: &str) -> Result<(), JobStoreError>;

    /// Every key, oldest first.
    async fn keys(&self) -> Result<Vec<ApiKey>, JobStoreError>;

    /// Revokes the key named `name` at `at_ms`; `false` when there is none
    /// (or it was revoked already).
    async fn revoke_key(&self, name: &str, at_ms: u64) -> Result<bool, JobStoreError>;

    /// Replaces the webhook signing secret of key `name`; `false` when there is none.
    async fn set_webhook_secret(&self, name: &str, secret: &str) -> Result<bool, JobStoreError>;

    /// The key whose secret hashes to `hash` (revoked ones included).
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, JobStoreError>;
}

/// The answer of a rate check, with what the IETF `RateLimit` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Milliseconds until the full burst is available again.
    pub reset_ms: u64,
    /// When refused: milliseconds until one request is allowed.
    pub retry_after_ms: u64,
}

/// Shared rate limits (GCRA, one theoretical arrival time per bucket).
#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Counts one request against `bucket`, allowed at `per_minute` with
    /// `burst` back to back.
    async fn check_rate(
        &self,
        bucket: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<RateDecision, JobStoreError>;
}

/// The generic cell rate algorithm, in integer milliseconds. `tat` is the
/// bucket's theoretical arrival time (`None`: never used). Returns the new
/// `tat` when the request is allowed, and the decision.
pub(crate) fn gcra(
    tat: Option<u64>,
    now_ms: u64,
    per_minute: u32,
    burst: u32,
) -> (Option<u64>, RateDecision) {
    const MINUTE_MS: u64 = 60_000;
    let interval = (MINUTE_MS / u64::from(per_minute.max(1))).max(1);
    let tolerance = interval * u64::from(burst.max(1) - 1);
    let start = tat.unwrap_or(now_ms).max(now_ms);
    if start - now_ms > tolerance {
        let retry_after_ms = start - now_ms - tolerance;
        let decision = RateDecision {
            allowed: false,
            remaining: 0,
            reset_ms: start - now_ms,
            retry_after_ms,
        };
        return (None, decision);
    }
    let next = start + interval;
    let remaining = (now_ms + tolerance + interval).saturating_sub(next) / interval;
    let decision = RateDecision {
        allowed: true,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        reset_ms: next - now_ms,
        retry_after_ms: 0,
    };
    (Some(next), decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        // 60 per minute = one a second, with a burst of 3.
        let (mut tat, mut now) = (None, 1_000_000);
        let mut allowed = Vec::new();
        for _ in 0..5 {
            let (next, d) = gcra(tat, now, 60, 3);
            allowed.push((d.allowed, d.remaining));
            if let Some(next) = next {
                tat = Some(next);
            }
        }
        assert_eq!(allowed, [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]);
        let (_, refused) = gcra(tat, now, 60, 3);
        assert_eq!(refused.retry_after_ms, 1_000);
        now += 1_000;
        let (next, d) = gcra(tat, now, 60, 3);
        assert!(d.allowed && next.is_some(), "one more after a second");
    }

    #[test]
    fn exactly_the_rate_over_a_minute() {
        let mut tat = None;
        let mut allowed = 0;
        for ms in (0..60_000u64).step_by(10) {
            let (next, d) = gcra(tat, 5_000_000 + ms, 120, 1);
            if d.allowed {
                allowed += 1;
                tat = next;
            }
        }
        assert_eq!(allowed, 120);
    }
}

/// What every API key secret starts with, so one found in a log or a
/// repository is recognisable (and scannable).
pub const KEY_PREFIX: &str = "atl_";
/// Characters of a key kept in listings to tell keys apart.
const SHOWN_PREFIX_CHARS: usize = 8;
/// Random bytes in a key secret: 256 bits, so a plain hash is enough to store it.
const KEY_SECRET_BYTES: usize = 32;

/// A fresh API key secret (shown once), its stored hash and its display prefix.
pub fn new_key_secret() -> (String, String, String) {
    use base64::Engine;
    let bytes: [u8; KEY_SECRET_BYTES] = rand::random();
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_key(&secret);
    let prefix = secret.chars().take(SHOWN_PREFIX_CHARS).collect();
    (secret, hash, prefix)
}

/// The stored form of a key secret: hex SHA-256. Keys are 256 random bits, so
/// no salt or slow hash is needed (there is nothing to guess).
pub fn hash_key(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn secrets_are_long_distinct_and_hash_stably() {
        let (a, hash_a, prefix) = new_key_secret();
        let (b, hash_b, _) = new_key_secret();
        assert!(a.starts_with(KEY_PREFIX) && a.len() >= 40, "{a}");
        assert_ne!(a, b);
        assert_ne!(hash_a, hash_b);
        assert_eq!(hash_key(&a), hash_a);
        assert_eq!(hash_a.len(), 64);
        assert!(a.starts_with(&prefix) && prefix.len() == 8);
        assert!(!hash_a.contains(&a));
    }
}
