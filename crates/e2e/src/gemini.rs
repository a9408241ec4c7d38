//! A stand-in for Gemini's `generateContent` (the one third-party API the
//! analysis stage calls) that holds every call until the test opens its gate:
//! a stage that lasts exactly as long as a test needs, on any target.

use std::sync::Arc;

use axum::routing::post;
use serde_json::json;
use tokio::sync::Semaphore;

/// The fake; calls wait for permits from [`GatedGemini::release`].
#[derive(Debug, Clone)]
pub struct GatedGemini {
    pub url: String,
    gate: Arc<Semaphore>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
    /// Calls still to answer 503 (a vendor outage), once let through.
    failures: Arc<std::sync::atomic::AtomicUsize>,
    /// The `traceparent` header of every call, in arrival order ("" when absent).
    traceparents: Arc<std::sync::Mutex<Vec<String>>>,
}

impl GatedGemini {
    /// Starts the fake on a local port.
    pub async fn start() -> Self {
        let gate = Arc::new(Semaphore::new(0));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let traceparents = Arc::new(std::sync::Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = {
            let (gate, calls, failures, traceparents) = (
                gate.clone(),
                calls.clone(),
                failures.clone(),
                traceparents.clone(),
            );
            axum::Router::new().route(
                "/v1beta/models/{call}",
                post(move |headers: axum::http::HeaderMap| {
                    let (gate, calls, failures) = (gate.clone(), calls.clone(), failures.clone());
                    let traceparent = headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    traceparents.lock().expect("lock").push(traceparent);
                    async move {
                        use axum::response::IntoResponse;
                        use std::sync::atomic::Ordering::SeqCst;
                        calls.fetch_add(1, SeqCst);
                        if let Ok(permit) = gate.acquire().await {
                            permit.forget();
                        }
                        let fail = failures
                            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if fail {
                            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "overloaded").into_response()
                        } else {
                            axum::Json(answer()).into_response()
                        }
                    }
                }),
            )
        };
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self {
            url,
            gate,
            calls,
            failures,
            traceparents,
        }
    }

    /// The next `n` calls let through answer 503, as an overloaded vendor does.
    pub fn fail_next(&self, n: usize) {
        self.failures.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The outage is over: calls let through answer normally again.
    pub fn heal(&self) {
        self.failures.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets `n` held (or future) calls answer.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Lets every call answer from now on.
    pub fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// Calls received so far (answered or held).
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The `traceparent` header of every call so far ("" when a call had none).
    pub fn traceparents(&self) -> Vec<String> {
        self.traceparents.lock().expect("lock").clone()
    }

    /// Settings that send the analysis stage's Gemini calls here, one job at a time.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("ATELIER__PROVIDERS__ANALYZER", "gemini"),
            ("ATELIER__PROVIDERS__GEMINI__BASE_URL", self.url.as_str()),
            ("ATELIER__PROVIDERS__GEMINI__API_KEY", "test-key"),
            ("ATELIER__PROVIDERS__GEMINI__TIMEOUT_MS", "600000"),
            ("ATELIER__PROVIDERS__GEMINI__MAX_RETRIES", "0"),
            ("ATELIER__WORKER__CONCURRENCY", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

fn answer() -> serde_json::Value {
    let description = json!({
        "category": "t-shirt",
        "colors": ["navy"],
        "material": "cotton",
        "pattern": "solid",
        "style": "casual",
        "fit": "regular",
        "gender": "unisex",
        "description": "A navy cotton t-shirt.",
        "generation_prompt": "navy cotton crew-neck t-shirt"
    });
    json!({
        "candidates": [{
            "content": { "role": "model", "parts": [{ "text": description.to_string() }] },
            "finishReason": "STOP"
        }]
    })
}
