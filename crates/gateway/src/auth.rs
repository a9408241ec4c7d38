//! Who may call: API keys on every `/api/v1/*` route (and `/metrics`), each
//! key a tenant's, with its rate limit counted in the shared store so every
//! gateway replica enforces the same budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use atelier_jobs::{ANONYMOUS_TENANT, ApiKey, RateDecision};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// Most key lookups a gateway keeps cached; the cache is cleared when full.
const KEY_CACHE_ENTRIES: usize = 10_000;
/// Name of the rate-limit policy in the `RateLimit` headers.
const POLICY: &str = "requests";
const SECONDS_PER_MINUTE: u64 = 60;

/// The caller of a request, as its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whose jobs this caller reads and writes.
    pub tenant: String,
    /// The key's name (`None`: anonymous, keys off).
    pub key: Option<String>,
    pub admin: bool,
    /// Unfinished jobs the tenant may have at once.
    pub max_in_flight: Option<u32>,
    /// Whether the key has a webhook signing secret (`false` when anonymous:
    /// `webhooks.secret` signs then).
    pub signs_webhooks: bool,
}

impl Caller {
    /// The one caller of a gateway whose keys are off. Not an admin: admin
    /// routes need a key even then.
    fn anonymous() -> Self {
        Self {
            tenant: ANONYMOUS_TENANT.to_string(),
            key: None,
            admin: false,
            max_in_flight: None,
            signs_webhooks: false,
        }
    }

    fn of(key: &ApiKey) -> Self {
        Self {
            tenant: key.tenant.clone(),
            key: Some(key.name.clone()),
            admin: key.admin,
            max_in_flight: key.max_in_flight,
            signs_webhooks: key.webhook_secret.is_some(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthorized("an API key is required".into()))
    }
}

/// A caller allowed on the operators' routes (dead letters, the console's
/// data): an admin key, or anyone when the gateway runs without API keys, like
/// the rest of such a gateway.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, app).await?;
        if caller.admin || (!app.settings.gateway.auth.required && caller.key.is_none()) {
            Ok(Self(caller))
        } else {
            Err(ApiError::Forbidden("this route needs an admin key".into()))
        }
    }
}

/// Key lookups, cached briefly so a busy gateway does not ask the store on
/// every request (a revocation takes at most `gateway.auth.cache_seconds`).
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Instant, Option<ApiKey>)>>,
}

impl KeyCache {
    async fn lookup(&self, app: &AppState, hash: &str) -> Result<Option<ApiKey>, ApiError> {
        let ttl = Duration::from_secs(app.settings.gateway.auth.cache_seconds);
        if let Some((at, key)) = self.lock().get(hash)
            && at.elapsed() < ttl
        {
            return Ok(key.clone());
        }
        let key = app.jobs.key_by_hash(hash).await?;
        let mut entries = self.lock();
        if entries.len() >= KEY_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(hash.to_string(), (Instant::now(), key.clone()));
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<ApiKey>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The secret a request carries: `Authorization: Bearer KEY` or `X-API-Key: KEY`.
fn secret(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|s| !s.is_empty())
}

/// Whether `path` is behind keys: the API, and the metrics on the public port.
fn guarded(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// Authenticates `/api/v1/*` and `/metrics`, counts the key's rate, and hands
/// the [`Caller`] to the handlers.
pub async fn authenticate(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if !guarded(&path) {
        return next.run(request).await;
    }
    let (caller, key) = match identify(&app, request.headers()).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    if path == "/metrics" && !caller.admin {
        return ApiError::Forbidden("metrics need an admin key".into()).into_response();
    }
    let rate = match key.as_ref().and_then(|k| k.rate_per_minute.map(|rate| (k, rate))) {
        Some((key, per_minute)) => {
            let burst = app.settings.gateway.auth.burst;
            let bucket = format!("key:{}", key.name);
            match app.jobs.check_rate(&bucket, per_minute, burst).await {
                Ok(decision) => Some((per_minute, decision)),
                Err(error) => return ApiError::from(error).into_response(),
            }
        }
        None => None,
    };
    if let Some((per_minute, decision)) = rate
        && !decision.allowed
    {
        let mut response = ApiError::RateLimited {
            retry_after: decision.retry_after_ms.div_ceil(1_000).max(1),
        }
        .into_response();
        rate_headers(response.headers_mut(), per_minute, &decision);
        return response;
    }
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if let Some((per_minute, decision)) = rate {
        rate_headers(response.headers_mut(), per_minute, &decision);
    }
    response
}

/// The caller a request's key names, and the key.
async fn identify(app: &AppState, headers: &HeaderMap) -> Result<(Caller, Option<ApiKey>), ApiError> {
    let Some(secret) = secret(headers) else {
        return if app.settings.gateway.auth.required {
            Err(ApiError::Unauthorized("an API key is required".into()))
        } else {
            Ok((Caller::anonymous(), None))
        };
    };
    let hash = atelier_jobs::hash_key(secret);
    match app.keys.lookup(app, &hash).await? {
        Some(key) if key.is_active() => Ok((Caller::of(&key), Some(key))),
        // A wrong key is refused even when keys are optional: never silently anonymous.
        _ => Err(ApiError::Unauthorized("the API key is unknown or revoked".into())),
    }
}

/// The IETF `RateLimit-Policy` and `RateLimit` headers.
fn rate_headers(headers: &mut HeaderMap, per_minute: u32, decision: &RateDecision) {
    let policy = format!("\"{POLICY}\";q={per_minute};w={SECONDS_PER_MINUTE}");
    let state = format!(
        "\"{POLICY}\";r={};t={}",
        decision.remaining,
        decision.reset_ms.div_ceil(1_000)
    );
    if let (Ok(policy), Ok(state)) = (HeaderValue::from_str(&policy), HeaderValue::from_str(&state)) {
        headers.insert("ratelimit-policy", policy);
        headers.insert("ratelimit", state);
    }
}

/// The cache, shared by the gateway's handlers.
pub type Keys = Arc<KeyCache>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(secret(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer atl_one"));
        assert_eq!(secret(&h), Some("atl_one"));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static(" atl_two "));
        assert_eq!(secret(&h), Some("atl_two"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert_eq!(secret(&h), None, "only bearer tokens");
    }

    #[test]
    fn the_api_and_metrics_are_guarded_health_is_not() {
        assert!(guarded("/api/v1/generate"));
        assert!(guarded("/api/v1/openapi.json"));
        assert!(guarded("/metrics"));
        assert!(!guarded("/healthz") && !guarded("/readyz"));
    }

    #[test]
    fn rate_headers_follow_the_draft() {
        let mut h = HeaderMap::new();
        let d = RateDecision {
            allowed: true,
            remaining: 7,
            reset_ms: 1_500,
            retry_after_ms: 0,
        };
        rate_headers(&mut h, 60, &d);
        assert_eq!(h["ratelimit-policy"], "\"requests\";q=60;w=60");
        assert_eq!(h["ratelimit"], "\"requests\";r=7;t=2");
    }
}
