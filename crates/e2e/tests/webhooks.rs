//! Signed webhooks end to end, on both targets: a local receiver takes the
//! deliveries, and every signature is checked by a verifier written here from
//! the Standard Webhooks specification (not the sending code): HMAC-SHA256,
//! keyed by the base64-decoded part of `whsec_…`, over
//! `{webhook-id}.{webhook-timestamp}.{body}`, sent as `v1,<base64>` in a
//! space-separated `webhook-signature` list.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atelier_e2e::{Options, System, Target, data_uri, on_both_targets, photo, request};
use atelier_fixtures::GarmentShape;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

on_both_targets!(
    deliveries_are_signed_retried_with_one_id_and_resendable,
    a_receiver_that_never_answers_is_timed_out_and_given_up,
    callbacks_to_private_addresses_are_refused,
);

const IMAGE: &str = "/api/v1/generate/image";
/// Largest clock difference a receiver accepts (the specification's tolerance).
const TIMESTAMP_TOLERANCE_SECONDS: u64 = 300;

/// Fast retries, short attempts, a quick poll: the same code paths.
fn webhook_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("ATELIER__WEBHOOKS__RETRY_DELAYS_MS", "100,200"),
        ("ATELIER__WEBHOOKS__ATTEMPT_TIMEOUT_MS", "1000"),
        ("ATELIER__WEBHOOKS__POLL_INTERVAL_MS", "100"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Standard Webhooks verification, from the specification.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|s| STANDARD.decode(s).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let fresh = timestamp
        .parse::<u64>()
        .is_ok_and(|t| t.abs_diff(now) <= TIMESTAMP_TOLERANCE_SECONDS);
    fresh
        && !id.is_empty()
        && signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .any(|s| s == expected)
}

/// What the receiver does with each request.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Answers 500 this many times, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: bytes::Bytes,
}

/// A local webhook receiver; returns its URL and what it received.
async fn receiver(behaviour: Behaviour) -> (String, Arc<Mutex<Vec<Received>>>) {
    use axum::routing::post;
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: bytes::Bytes| {
            let log = log.clone();
            async move {
                let n = {
                    let mut log = log.lock().expect("log");
                    log.push(Received { headers, body });
                    log.len()
                };
                match behaviour {
                    Behaviour::FailFirst(failures) if n <= failures => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "not now")
                    }
                    Behaviour::FailFirst(_) => (StatusCode::OK, "thanks"),
                    Behaviour::Hang => futures::future::pending().await,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://127.0.0.1:{}/hook", addr.port()), seen)
}

/// Polls `check` every 50 ms until it returns a value, failing after `limit`.
async fn until<T>(sys: &System, limit: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out: {what}\n{}", sys.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let resp = client.get(url).send().await.expect("answer");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// A key of its own, and its webhook signing secret (rotated, so this test
/// sees it: `keys create` shows it once, on stderr).
fn key_and_secret(sys: &System, name: &str) -> (reqwest::Client, String) {
    let key = sys.create_key(&["--name", name, "--rate-per-minute", "0", "--max-in-flight", "0"]);
    let secret = sys
        .cli(&["keys", "rotate-webhook-secret", name])
        .trim()
        .to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (System::client_with_key(Some(key.trim())), secret)
}

async fn deliveries_are_signed_retried_with_one_id_and_resendable(target: Target) {
    let sys = System::start(
        target,
        Options {
            env: webhook_env(&[]),
            ..Options::default()
        },
    )
    .await;
    let (client, secret) = key_and_secret(&sys, "hooks");
    let (hook, seen) = receiver(Behaviour::FailFirst(2)).await;
    let mut body = request(&data_uri(&photo(GarmentShape::TShirt, 21)), [1, 0, 0], false);
    body["callbackUrl"] = json!(hook);
    let resp = client
        .post(format!("{}{IMAGE}", sys.url(0)))
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 200, "{}", sys.logs());
    let done: Value = resp.json().await.expect("json");
    let id = done["request_id"].as_str().expect("id").to_string();

    // Two failures, then success: three attempts of one message.
    let got = until(&sys, Duration::from_secs(30), "three attempts", async || {
        let seen = seen.lock().expect("log").clone();
        (seen.len() >= 3).then_some(seen)
    })
    .await;
    assert_eq!(got.len(), 3, "no attempt after the success");
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().expect("id"))
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id for every attempt: {ids:?}"
    );
    for r in &got {
        assert!(
            verify(&secret, &r.headers, &r.body),
            "signature must verify: {r:?}"
        );
        assert!(!verify(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &r.headers,
            &r.body
        ));
        let mut tampered = r.body.to_vec();
        tampered[0] ^= 1;
        assert!(
            !verify(&secret, &r.headers, &tampered),
            "a changed body must not verify"
        );
    }
    // The body is the job resource, as GET /api/v1/jobs/{id} shows it.
    let delivered: Value = serde_json::from_slice(&got[2].body).expect("json body");
    let (code, job) = get(&client, format!("{}/api/v1/jobs/{id}", sys.url(0))).await;
    assert_eq!(code, 200);
    assert_eq!(delivered, job);
    assert_eq!(delivered["status"], "completed");
    assert_eq!(got[2].headers["content-type"], "application/json");

    // The deliveries say what happened.
    let deliveries_url = format!("{}/api/v1/jobs/{id}/deliveries", sys.url(0));
    let delivery = until(&sys, Duration::from_secs(10), "delivered", async || {
        let (_, list) = get(&client, deliveries_url.clone()).await;
        let d = list["deliveries"].get(0).cloned()?;
        (d["status"] == "delivered").then_some(d)
    })
    .await;
    assert_eq!(delivery["id"], ids[0]);
    assert_eq!(delivery["event_type"], "job.completed");
    let codes: Vec<u64> = delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["status_code"].as_u64())
        .collect();
    assert_eq!(codes, [500, 500, 200], "{delivery}");
    assert_eq!(delivery["attempts"][0]["response"], "not now");

    // A retry sends it again, with the same id, signed afresh.
    let resp = client
        .post(format!("{deliveries_url}/{}/retry", ids[0]))
        .send()
        .await
        .expect("retry");
    assert_eq!(resp.status().as_u16(), 202);
    let again = until(&sys, Duration::from_secs(10), "a fourth attempt", async || {
        let seen = seen.lock().expect("log").clone();
        (seen.len() >= 4).then(|| seen[3].clone())
    })
    .await;
    assert_eq!(again.headers["webhook-id"], ids[0]);
    assert!(verify(&secret, &again.headers, &again.body));
    let unknown = client
        .post(format!("{deliveries_url}/msg_unknown/retry"))
        .send()
        .await
        .expect("404");
    assert_eq!(unknown.status().as_u16(), 404);
    // Another tenant sees none of it.
    let (stranger, _) = key_and_secret(&sys, "stranger");
    let (code, _) = get(&stranger, deliveries_url.clone()).await;
    assert_eq!(code, 404);

    // Stage events when asked: one delivery per finished stage, each its own id.
    let (stages_hook, stages_seen) = receiver(Behaviour::FailFirst(0)).await;
    let mut body = request(&data_uri(&photo(GarmentShape::Dress, 22)), [1, 0, 0], false);
    body["callbackUrl"] = json!(stages_hook);
    body["callbackEvents"] = json!(["job.stage_finished", "job.completed"]);
    let resp = client
        .post(format!("{}{IMAGE}", sys.url(0)))
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 200);
    let done: Value = resp.json().await.expect("json");
    let stage_id = done["request_id"].as_str().expect("id").to_string();
    let list = until(&sys, Duration::from_secs(30), "stage deliveries", async || {
        let (_, list) = get(
            &client,
            format!("{}/api/v1/jobs/{stage_id}/deliveries", sys.url(0)),
        )
        .await;
        let all = list["deliveries"].as_array().cloned().unwrap_or_default();
        let finished = all.iter().filter(|d| d["status"] == "delivered").count();
        (finished >= 2 && finished == all.len() && all.iter().any(|d| d["event_type"] == "job.completed"))
            .then_some(all)
    })
    .await;
    let stages = list
        .iter()
        .filter(|d| d["event_type"] == "job.stage_finished")
        .count();
    assert!(stages >= 1, "{list:?}");
    let received = stages_seen.lock().expect("log").clone();
    let mut ids: Vec<String> = received
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), list.len(), "one id per delivery");
    assert!(received.iter().all(|r| verify(&secret, &r.headers, &r.body)));
}

async fn a_receiver_that_never_answers_is_timed_out_and_given_up(target: Target) {
    let sys = System::start(
        target,
        Options {
            env: webhook_env(&[("ATELIER__WEBHOOKS__RETRY_DELAYS_MS", "100")]),
            ..Options::default()
        },
    )
    .await;
    let (client, secret) = key_and_secret(&sys, "hooks");
    let (hook, seen) = receiver(Behaviour::Hang).await;
    let mut body = request(&data_uri(&photo(GarmentShape::TShirt, 23)), [1, 0, 0], false);
    body["callbackUrl"] = json!(hook);
    let resp = client
        .post(format!("{}{IMAGE}", sys.url(0)))
        .header("Prefer", "respond-async")
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 202);
    let accepted: Value = resp.json().await.expect("json");
    let id = accepted["request_id"].as_str().expect("id").to_string();
    // Two attempts (one pause in the schedule), each cut at the timeout.
    let delivery = until(
        &sys,
        Duration::from_secs(60),
        "the delivery to give up",
        async || {
            let (_, list) = get(&client, format!("{}/api/v1/jobs/{id}/deliveries", sys.url(0))).await;
            let d = list["deliveries"].get(0).cloned()?;
            (d["status"] == "failed").then_some(d)
        },
    )
    .await;
    let attempts = delivery["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{delivery}");
    for a in attempts {
        assert!(a["status_code"].is_null(), "{a}");
        assert!(
            a["error"]
                .as_str()
                .is_some_and(|e| e.contains("no answer within 1000 ms")),
            "{a}"
        );
        let took = a["duration_ms"].as_u64().expect("duration");
        assert!((900..10_000).contains(&took), "cut at the timeout: {took} ms");
    }
    let got = seen.lock().expect("log").clone();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| verify(&secret, &r.headers, &r.body)));
    assert!(delivery.get("next_attempt_at_ms").is_none(), "{delivery}");
}

async fn callbacks_to_private_addresses_are_refused(target: Target) {
    let sys = System::start(
        target,
        Options {
            env: webhook_env(&[("ATELIER__GATEWAY__FETCH__ALLOW_PRIVATE_NETWORKS", "false")]),
            ..Options::default()
        },
    )
    .await;
    let (client, _) = key_and_secret(&sys, "hooks");
    let (hook, seen) = receiver(Behaviour::FailFirst(0)).await;
    let port = hook
        .rsplit(':')
        .next()
        .expect("port")
        .trim_end_matches("/hook")
        .to_string();
    let uri = data_uri(&photo(GarmentShape::TShirt, 24));
    for (callback, field, code) in [
        (hook.clone(), "callbackUrl", "input_unreachable"),
        (
            format!("http://localhost:{port}/hook"),
            "callbackUrl",
            "input_unreachable",
        ),
        (
            "http://[::1]/hook".to_string(),
            "callbackUrl",
            "input_unreachable",
        ),
        (
            "http://169.254.169.254/latest".to_string(),
            "callbackUrl",
            "input_unreachable",
        ),
        (
            "ftp://hooks.example/x".to_string(),
            "callbackUrl",
            "invalid_field",
        ),
    ] {
        let mut body = request(&uri, [1, 0, 0], false);
        body["callbackUrl"] = json!(callback);
        let resp = client
            .post(format!("{}{IMAGE}", sys.url(0)))
            .json(&body)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status().as_u16(), 422, "{callback}");
        let error: Value = resp.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{error}");
        assert_eq!(error["error"]["code"], code, "{error}");
        assert!(
            !error["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&port),
            "no port in the message: {error}"
        );
    }
    let mut body = request(&uri, [1, 0, 0], false);
    body["callbackUrl"] = json!("https://hooks.example/x");
    body["callbackEvents"] = json!(["job.completed", "job.exploded"]);
    let resp = client
        .post(format!("{}{IMAGE}", sys.url(0)))
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 422);
    let error: Value = resp.json().await.expect("json");
    assert_eq!(error["error"]["field"], "callbackEvents[1]", "{error}");
    assert!(
        seen.lock().expect("log").is_empty(),
        "nothing reached the private receiver"
    );
}
