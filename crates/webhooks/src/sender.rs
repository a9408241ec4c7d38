//! The sender: takes due deliveries from the job store and attempts them, off
//! any request path. Each claim leases the delivery (a sender that dies
//! mid-attempt leaves it due again once the lease ends), each endpoint has at
//! most `max_in_flight_per_endpoint` requests in flight (the rest are put back
//! without counting an attempt), and every attempt is recorded with the
//! endpoint's answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atelier_core::clock::now_ms;
use atelier_core::error::error_chain;
use atelier_core::settings::Settings;
use atelier_egress::AddressPolicy;
use atelier_jobs::{AttemptOutcome, Delivery, DeliveryAttempt, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::{Schedule, SigningSecret, WebhookError};

/// Bytes of an endpoint's answer kept with the attempt.
const RESPONSE_EXCERPT: usize = 512;
/// A claim outlasts the attempt's timeout by this much before another sender
/// may take the delivery.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How soon a delivery put back for a busy endpoint is due again.
const BUSY_ENDPOINT_PAUSE: Duration = Duration::from_millis(200);
/// How long a stopping sender waits for the attempts in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Who calls the endpoints.
const USER_AGENT: &str = concat!("atelier-webhooks/", env!("CARGO_PKG_VERSION"));

/// Attempts due deliveries until stopped. Cheap to clone; [`Sender::wake`]
/// makes it look at once (a delivery was just added).
#[derive(Debug, Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    policy: AddressPolicy,
    schedule: Schedule,
    default_secret: Option<SigningSecret>,
    attempt_timeout: Duration,
    per_endpoint: usize,
    poll: Duration,
    /// Requests in flight from this sender.
    slots: Arc<Semaphore>,
    /// Requests in flight per endpoint (scheme://host:port).
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    wake: Notify,
}

/// How one attempt went.
#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
}

impl Sender {
    /// A sender over `store` with `settings.webhooks`, holding endpoints to
    /// `settings.gateway.fetch`'s address rules.
    pub fn new(store: Arc<dyn Store>, settings: &Settings) -> Result<Self, WebhookError> {
        let hooks = &settings.webhooks;
        let fetch = &settings.gateway.fetch;
        let policy = AddressPolicy::new(fetch);
        let default_secret = if hooks.secret.is_empty() {
            None
        } else {
            Some(SigningSecret::parse(hooks.secret.expose())?)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                client: atelier_egress::poster(fetch, &policy, USER_AGENT)?,
                policy,
                store,
                schedule: Schedule::from_settings(hooks),
                default_secret,
                attempt_timeout: Duration::from_millis(hooks.attempt_timeout_ms),
                per_endpoint: hooks.max_in_flight_per_endpoint,
                poll: Duration::from_millis(hooks.poll_interval_ms),
                slots: Arc::new(Semaphore::new(hooks.max_in_flight)),
                endpoints: Mutex::default(),
                wake: Notify::new(),
            }),
        })
    }

    /// Look for due deliveries now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Sends until `shutdown`, then lets the attempts in flight finish (for a
    /// while; an unfinished one is due again when its lease ends).
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let lease = self.inner.attempt_timeout + LEASE_MARGIN;
        loop {
            let free = self.inner.slots.available_permits();
            if free > 0 {
                let limit = u32::try_from(free).unwrap_or(u32::MAX);
                match self
                    .inner
                    .store
                    .claim_deliveries(now_ms(), duration_ms(lease), limit)
                    .await
                {
                    Ok(claimed) => {
                        for delivery in claimed {
                            self.dispatch(delivery, &tasks).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %error_chain(&e), "cannot read due webhook deliveries"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(self.inner.poll) => {}
            }
        }
        tasks.close();
        let _ = tokio::time::timeout(STOP_GRACE, tasks.wait()).await;
    }

    /// Starts an attempt of a claimed delivery, or puts it back when its
    /// endpoint is at its limit.
    async fn dispatch(&self, delivery: Delivery, tasks: &TaskTracker) {
        let permits = (
            self.endpoint(&delivery.url).try_acquire_owned(),
            self.inner.slots.clone().try_acquire_owned(),
        );
        let (Ok(endpoint), Ok(slot)) = permits else {
            let again = now_ms().saturating_add(duration_ms(BUSY_ENDPOINT_PAUSE));
            if let Err(e) = self.inner.store.defer_delivery(&delivery.id, again).await {
                tracing::warn!(error = %error_chain(&e), delivery = %delivery.id, "cannot put a webhook delivery back; its lease frees it");
            }
            return;
        };
        let sender = self.clone();
        tasks.spawn(async move {
            sender.attempt(delivery, [endpoint, slot]).await;
        });
    }

    /// The in-flight limit of `url`'s endpoint.
    fn endpoint(&self, url: &str) -> Arc<Semaphore> {
        let key = Url::parse(url).map_or_else(
            |_| url.to_string(),
            |u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            },
        );
        let mut endpoints = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget endpoints nobody is sending to, so the map stays small.
        endpoints.retain(|_, s| s.available_permits() < self.inner.per_endpoint);
        endpoints
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.per_endpoint)))
            .clone()
    }

    /// One attempt, recorded with its outcome.
    async fn attempt(&self, delivery: Delivery, _permits: [OwnedSemaphorePermit; 2]) {
        let number = delivery.attempts.len() + 1;
        let at_ms = now_ms();
        let started = Instant::now();
        let answer = self.post(&delivery).await;
        let took_ms = duration_ms(started.elapsed());
        let outcome = match answer.status {
            Some(code) if (200..300).contains(&code) => AttemptOutcome::Delivered,
            // The endpoint says it is gone for good (Standard Webhooks).
            Some(410) => AttemptOutcome::GaveUp,
            _ => match self.inner.schedule.after(number) {
                Some(pause) => AttemptOutcome::RetryAt(now_ms().saturating_add(duration_ms(pause))),
                None => AttemptOutcome::GaveUp,
            },
        };
        tracing::info!(
            delivery = %delivery.id,
            job = %delivery.job,
            attempt = number,
            status = answer.status,
            error = answer.error.as_deref(),
            ?outcome,
            "webhook attempt"
        );
        let attempt = DeliveryAttempt {
            number: u32::try_from(number).unwrap_or(u32::MAX),
            at_ms,
            duration_ms: took_ms,
            status_code: answer.status,
            error: answer.error,
            response: answer.body,
        };
        if let Err(e) = self
            .inner
            .store
            .record_attempt(&delivery.id, &attempt, outcome)
            .await
        {
            tracing::warn!(error = %error_chain(&e), delivery = %delivery.id, "cannot record a webhook attempt; it is made again when its lease ends");
        }
    }

    /// Signs and posts the delivery; never fails, says what happened.
    async fn post(&self, delivery: &Delivery) -> Answer {
        let failed = |error: String| Answer {
            status: None,
            body: None,
            error: Some(error),
        };
        let url = match Url::parse(&delivery.url) {
            Ok(url) => url,
            Err(_) => return failed("the callback URL does not parse".into()),
        };
        if let Err(refusal) = self.inner.policy.check_url(&url) {
            return failed(format!("refused: {refusal}"));
        }
        let secret = match self.secret(delivery).await {
            Ok(secret) => secret,
            Err(error) => return failed(error),
        };
        let timestamp = now_ms() / 1_000;
        let signature = secret.sign(&delivery.id, timestamp, delivery.body.as_bytes());
        let request = self
            .inner
            .client
            .post(url)
            .timeout(self.inner.attempt_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("atelier-event", &delivery.event_type)
            .body(delivery.body.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return failed(describe(&e, self.inner.attempt_timeout)),
        };
        let status = response.status().as_u16();
        let mut excerpt = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_EXCERPT.saturating_sub(excerpt.len());
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if excerpt.len() >= RESPONSE_EXCERPT {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Answer {
                        status: Some(status),
                        body: None,
                        error: Some(describe(&e, self.inner.attempt_timeout)),
                    };
                }
            }
        }
        Answer {
            status: Some(status),
            body: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
            error: None,
        }
    }

    /// The secret that signs `delivery`: its API key's, or the configured default.
    async fn secret(&self, delivery: &Delivery) -> Result<SigningSecret, String> {
        let Some(name) = &delivery.key_name else {
            return self
                .inner
                .default_secret
                .clone()
                .ok_or_else(|| "no signing secret: set webhooks.secret".to_string());
        };
        let keys = self
            .inner
            .store
            .keys()
            .await
            .map_err(|e| format!("cannot read the API key's signing secret: {}", error_chain(&e)))?;
        let secret = keys
            .into_iter()
            .find(|k| &k.name == name)
            .and_then(|k| k.webhook_secret)
            .ok_or_else(|| format!("API key `{name}` has no webhook signing secret"))?;
        SigningSecret::parse(&secret).map_err(|e| e.to_string())
    }
}

/// What went wrong, without internals: a timeout, a refused address, no connection.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    let chain = error_chain(error);
    if error.is_timeout() {
        format!("no answer within {} ms", timeout.as_millis())
    } else if chain.contains("not a public address") || chain.contains("resolves to no public address") {
        "refused: the endpoint does not resolve to a public address".to_string()
    } else if error.is_connect() {
        "could not connect to the endpoint".to_string()
    } else {
        format!("the request failed: {chain}")
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
