//! What every HTTP provider shares: one pooled client, a concurrency limit, a
//! rate limit, bounded retries with backoff, a tracing span and metrics per call.

mod limiter;
mod quota;
mod retry;

pub use limiter::RateLimiter;
pub use quota::{LocalQuota, QuotaGate};
pub use retry::{RetryPolicy, proto_duration, retry_after_header};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use atelier_core::settings::HttpSettings;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{Instrument, field};

use crate::{ProviderError, RemoteKind};

/// Idle pooled connections are kept this long, so bursts reuse warm TLS sessions.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on pooled connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Metric: call latency in seconds, retries included.
pub use atelier_telemetry::metrics::PROVIDER_CALL_DURATION as METRIC_SECONDS;
/// Metric: calls by provider, operation and outcome (`ok` or an error label).
pub use atelier_telemetry::metrics::PROVIDER_CALLS as METRIC_CALLS;
/// Metric: remote failures answered by a fallback (local result kept).
pub use atelier_telemetry::metrics::PROVIDER_FALLBACKS as METRIC_FALLBACKS;
/// Metric: retries by provider and operation.
pub use atelier_telemetry::metrics::PROVIDER_RETRIES as METRIC_RETRIES;

/// One logical call: names for the span and the metrics, and whether it spends a
/// rate-limit token (Replicate limits creations, not polls).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub op: &'static str,
    pub model: &'a str,
    pub rate_limited: bool,
}

/// A provider's HTTP client. Cheap to clone; clones share the pool and limits.
#[derive(Debug, Clone)]
pub struct HttpClient {
    provider: &'static str,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    quota: Arc<dyn QuotaGate>,
    /// The vendor quota: calls per minute and burst.
    rate: (u32, u32),
    retry: RetryPolicy,
}

impl HttpClient {
    /// A client with connect and total timeouts, keep-alive and the limits of
    /// `s`, its quota counted in this process.
    pub fn new(provider: &'static str, s: &HttpSettings) -> Result<Self, ProviderError> {
        Self::with_quota(provider, s, Arc::new(LocalQuota::new(s.per_minute, s.burst)))
    }

    /// The same, with the vendor quota counted by `quota` (shared by a fleet).
    pub fn with_quota(
        provider: &'static str,
        s: &HttpSettings,
        quota: Arc<dyn QuotaGate>,
    ) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(s.connect_timeout_ms))
            .timeout(Duration::from_millis(s.timeout_ms))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_keepalive(TCP_KEEPALIVE)
            .user_agent(concat!("atelier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Config {
                provider,
                message: format!("HTTP client: {e}"),
            })?;
        Ok(Self {
            provider,
            client,
            permits: Arc::new(Semaphore::new(s.max_concurrency)),
            quota,
            rate: (s.per_minute, s.burst),
            retry: RetryPolicy::from_settings(s),
        })
    }

    /// The provider's name (`gemini`, `replicate`).
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Sends the request `build` makes and turns the answer into `T` with `parse`,
    /// retrying retryable failures with backoff. `parse` sees every answer,
    /// successful or not, because only the provider knows its error shapes.
    pub async fn execute<T, B, P, Fut>(&self, call: Call<'_>, build: B, parse: P) -> Result<T, ProviderError>
    where
        B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        P: Fn(reqwest::Response) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        // A client span in the job's trace; each attempt carries its context
        // to the vendor in a `traceparent` header.
        let span = tracing::info_span!(
            "provider_call",
            otel.name = %format!("{} {}", self.provider, call.op),
            otel.kind = "client",
            otel.status_code = field::Empty,
            provider = self.provider,
            model = call.model,
            op = call.op,
            status = field::Empty,
            latency_ms = field::Empty,
            retries = field::Empty,
        );
        let started = Instant::now();
        let provider = self.provider;
        async move {
            let mut retries = 0;
            let result = loop {
                let (status, result) = self.attempt(call, &build, &parse).await;
                if let Some(status) = status {
                    tracing::Span::current().record("status", status);
                }
                let error = match result {
                    Ok(value) => break Ok(value),
                    Err(error) => error,
                };
                let retryable = error.remote_kind().is_some_and(RemoteKind::is_retryable);
                let hint = match &error {
                    ProviderError::Remote { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let delay = (retryable && retries < self.retry.max_retries)
                    .then(|| self.retry.delay(retries, hint))
                    .flatten();
                let Some(delay) = delay else { break Err(error) };
                retries += 1;
                metrics::counter!(METRIC_RETRIES, "provider" => provider, "op" => call.op).increment(1);
                tracing::warn!(%error, retry = retries, delay_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(delay).await;
            };
            let elapsed = started.elapsed();
            let span = tracing::Span::current();
            span.record("latency_ms", elapsed.as_millis() as u64);
            span.record("retries", retries);
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.label(),
            };
            metrics::counter!(METRIC_CALLS, "provider" => provider, "op" => call.op, "outcome" => outcome)
                .increment(1);
            metrics::histogram!(METRIC_SECONDS, "provider" => provider, "op" => call.op)
                .record(elapsed.as_secs_f64());
            match &result {
                Ok(_) => tracing::debug!("call finished"),
                Err(error) => {
                    span.record("otel.status_code", "ERROR");
                    tracing::warn!(%error, "call failed");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    /// One attempt: a concurrency permit, a rate token if the call spends one,
    /// then the request and the parse.
    async fn attempt<T, B, P, Fut>(
        &self,
        call: Call<'_>,
        build: &B,
        parse: &P,
    ) -> (Option<u16>, Result<T, ProviderError>)
    where
        B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        P: Fn(reqwest::Response) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let Ok(_permit) = self.permits.acquire().await else {
            return (None, Err(self.closed()));
        };
        if call.rate_limited {
            self.quota.acquire(self.provider, self.rate.0, self.rate.1).await;
        }
        let mut request = build(&self.client);
        if let Some(traceparent) = atelier_telemetry::current_traceparent() {
            request = request.header(atelier_telemetry::trace::TRACEPARENT, traceparent);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), parse(response).await)
            }
            Err(error) => (None, Err(self.transport(call.op, &error))),
        }
    }

    /// A request that could not complete: timeout or transport failure.
    pub fn transport(&self, op: &str, error: &reqwest::Error) -> ProviderError {
        let kind = if error.is_timeout() {
            RemoteKind::Timeout
        } else if error.is_decode() {
            RemoteKind::InvalidResponse
        } else {
            RemoteKind::Transport
        };
        // reqwest's Display names the URL but never headers, so no key leaks.
        ProviderError::remote(self.provider, kind, None, format!("{op}: {}", error_chain(error)))
    }

    fn closed(&self) -> ProviderError {
        ProviderError::Task {
            provider: self.provider,
            message: "concurrency limiter closed".into(),
        }
    }
}

/// An error and its sources on one line (reqwest hides the useful part, such as
/// "operation timed out", in the source chain).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a body that must be JSON of type `T`, mapping failures to
/// [`RemoteKind::InvalidResponse`] or [`RemoteKind::Timeout`].
pub async fn json_body<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    what: &str,
    response: reqwest::Response,
) -> Result<T, ProviderError> {
    let status = response.status().as_u16();
    let bytes = body_bytes(provider, what, response).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ProviderError::remote(
            provider,
            RemoteKind::InvalidResponse,
            Some(status),
            format!("{what}: undocumented answer: {e}"),
        )
    })
}

/// Reads a whole body.
pub async fn body_bytes(
    provider: &'static str,
    what: &str,
    response: reqwest::Response,
) -> Result<bytes::Bytes, ProviderError> {
    let status = response.status().as_u16();
    response.bytes().await.map_err(|e| {
        let kind = if e.is_timeout() {
            RemoteKind::Timeout
        } else {
            RemoteKind::Transport
        };
        ProviderError::remote(
            provider,
            kind,
            Some(status),
            format!("{what}: reading the body: {}", error_chain(&e)),
        )
    })
}
