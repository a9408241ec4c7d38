//! The shared HTTP client holds concurrent callers to the configured rate and
//! concurrency (the limiter's exact schedule is unit-tested on a paused clock).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atelier_core::settings::HttpSettings;
use atelier_providers::http::{Call, HttpClient};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Records when each request arrived.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Instant>>>, Option<Duration>);

impl Respond for Arrivals {
    fn respond(&self, _req: &Request) -> ResponseTemplate {
        self.0.lock().expect("lock").push(Instant::now());
        let reply = ResponseTemplate::new(200);
        match self.1 {
            Some(delay) => reply.set_delay(delay),
            None => reply,
        }
    }
}

fn settings(per_minute: u32, burst: u32, max_concurrency: usize) -> HttpSettings {
    HttpSettings {
        connect_timeout_ms: 1_000,
        timeout_ms: 5_000,
        max_concurrency,
        max_retries: 0,
        retry_base_ms: 1,
        retry_max_ms: 10,
        burst,
        per_minute,
    }
}

async fn calls(client: &HttpClient, url: &str, n: usize, rate_limited: bool) {
    let call = Call {
        op: "test",
        model: "m",
        rate_limited,
    };
    let all = (0..n).map(|_| {
        client.execute(
            call,
            |c| c.get(url),
            |r| async move {
                assert!(r.status().is_success());
                Ok(())
            },
        )
    });
    for result in futures::future::join_all(all).await {
        result.expect("call");
    }
}

#[tokio::test]
async fn concurrent_callers_are_spaced_to_the_rate() {
    let server = MockServer::start().await;
    let arrivals = Arrivals::default();
    Mock::given(any())
        .respond_with(arrivals.clone())
        .mount(&server)
        .await;
    // 600 a minute = one every 100 ms after a burst of 2.
    let client = HttpClient::new("test", &settings(600, 2, 8)).expect("client");
    calls(&client, &server.uri(), 6, true).await;
    let mut times = arrivals.0.lock().expect("lock").clone();
    times.sort();
    let first = times[0];
    let offsets: Vec<u128> = times.iter().map(|t| (*t - first).as_millis()).collect();
    // Slots: 0, 0, 100, 200, 300, 400 ms (scheduling jitter allowed below, never above).
    for (i, offset) in offsets.iter().enumerate().skip(2) {
        let slot = (i as u128 - 1) * 100;
        assert!(
            *offset + 15 >= slot,
            "request {i} at {offset} ms, before its {slot} ms slot: {offsets:?}"
        );
    }
}

#[tokio::test]
async fn polls_do_not_spend_rate_tokens_but_respect_concurrency() {
    let server = MockServer::start().await;
    let arrivals = Arrivals(Arc::default(), Some(Duration::from_millis(200)));
    Mock::given(any())
        .respond_with(arrivals.clone())
        .mount(&server)
        .await;
    // One request a minute would stall a rate-limited call; these are not.
    let client = HttpClient::new("test", &settings(1, 1, 2)).expect("client");
    let started = Instant::now();
    calls(&client, &server.uri(), 4, false).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "2 at a time: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}
