//! The stack side of the benchmark: concurrent POSTs to the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::{Client, StatusCode};

use super::Plan;
use super::stats::{Outcome, Report};

/// Sends `plan.requests` copies of `body` to `url` from `plan.concurrency` clients.
pub fn run(plan: &Plan<'_>, url: &str, body: Vec<u8>) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = &plan.args.key {
            let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .context("--key is not a valid header value")?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        if !plan.args.reuse {
            headers.insert(
                reqwest::header::CACHE_CONTROL,
                reqwest::header::HeaderValue::from_static("no-cache"),
            );
        }
        let client = Client::builder()
            .timeout(plan.timeout)
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .context("building the HTTP client")?;
        preflight(&client, &plan.args.url).await?;
        let body: Arc<[u8]> = body.into();
        let next = Arc::new(AtomicU32::new(0));
        let started = Instant::now();
        let clients: Vec<_> = (0..plan.concurrency)
            .map(|_| {
                let (client, body, next, url) = (client.clone(), body.clone(), next.clone(), url.to_string());
                let total = plan.requests;
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let start = Instant::now();
                        let outcome = send(&client, &url, &body).await;
                        samples.push((start.elapsed(), outcome));
                    }
                    samples
                })
            })
            .collect();
        let mut samples = Vec::new();
        for client in clients {
            samples.extend(client.await.context("a client task panicked")?);
        }
        let label = format!("stack {url}");
        Ok(Report::new(&label, plan.concurrency, &samples, started.elapsed()))
    })
}

/// Fails early, with a hint, when the gateway does not answer at all.
async fn preflight(client: &Client, base: &str) -> anyhow::Result<()> {
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    client
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| {
            format!("the gateway does not answer at {url} (start it with scripts/stack.sh up)")
        })?;
    Ok(())
}

/// One job: the whole response is read, as a client would.
async fn send(client: &Client, url: &str, body: &[u8]) -> Outcome {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(classify(&e)),
    };
    let status = response.status();
    if let Err(e) = response.bytes().await {
        return Outcome::Failed(classify(&e));
    }
    match status {
        StatusCode::OK => Outcome::Ok,
        StatusCode::ACCEPTED => Outcome::Accepted,
        StatusCode::UNAUTHORIZED => {
            Outcome::Failed("HTTP 401 (pass an API key with --key or ATELIER_API_KEY)".into())
        }
        other => Outcome::Failed(format!("HTTP {}", other.as_u16())),
    }
}

fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused or reset".into()
    } else {
        "request error".into()
    }
}
