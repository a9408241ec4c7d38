//! Every attack of the "safe to expose" review, against the real services:
//! SSRF, tenancy, shared rate limits, slow and flooding clients, the lost-job
//! races, poison input. Each runs on both targets (the stack: real binaries on
//! RabbitMQ and PostgreSQL; `atelier serve`) unless only one can show it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atelier_e2e::{GatedGemini, Options, System, Target, data_uri, on_both_targets, photo, request};
use atelier_fixtures::GarmentShape;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IMAGE: &str = "/api/v1/generate/image";
/// Longest a connection the server should cut may stay open past its timeout.
const CUT_SLACK: Duration = Duration::from_secs(8);

on_both_targets!(
    private_addresses_are_never_fetched,
    keys_and_tenants_isolate_jobs,
    rate_limits_are_shared_by_every_gateway,
    slow_and_silent_clients_are_cut_off,
    a_connection_flood_leaves_health_answering,
    racing_idempotent_callers_never_get_a_ghost_202,
    a_retry_due_while_the_queue_is_full_is_not_lost,
    poison_input_is_refused_with_the_field_named,
);

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn start(target: Target, gateways: usize, pairs: &[(&str, &str)]) -> System {
    System::start(
        target,
        Options {
            gateways,
            env: env(pairs),
            ..Options::default()
        },
    )
    .await
}

/// POSTs `body` to the image endpoint of gateway `n` with `client`.
async fn post_with(
    sys: &System,
    client: &reqwest::Client,
    n: usize,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client.post(format!("{}{IMAGE}", sys.url(n))).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    System::send_with_headers(req).await
}

async fn get_with(client: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    System::send_with_headers(client.get(url)).await
}

/// A local HTTP server that counts every request it gets and, under
/// `/to/{n}`, redirects to the `n`th of its targets.
struct Canary {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Canary {
    async fn start(routes: axum::Router) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = {
            let hits = hits.clone();
            routes.layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let hits = hits.clone();
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        next.run(request).await
                    }
                },
            ))
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let app = counted.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        // The same port on IPv6 loopback, where this machine has it.
        if let Ok(v6) = tokio::net::TcpListener::bind(("::1", port)).await {
            tokio::spawn(async move { axum::serve(v6, counted).await.ok() });
        }
        Self { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// What the gateway may show of a URL: no credentials, port or query.
fn shown(url: &str) -> String {
    let url = reqwest::Url::parse(url).expect("a URL");
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

async fn private_addresses_are_never_fetched(target: Target) {
    // Anything that reaches the canary is a successful SSRF.
    let canary = Canary::start(axum::Router::new().fallback(|| async { "internal secret" })).await;
    let p = canary.port;
    // A server on an allowed host that redirects inside, and serves a photo.
    let jpeg = bytes::Bytes::from(photo(GarmentShape::TShirt, 5));
    let redirects = [
        format!("http://127.0.0.1:{p}/a.jpg"),
        format!("http://localhost:{p}/a.jpg"),
        format!("http://[::ffff:127.0.0.1]:{p}/a.jpg"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ];
    let targets = Arc::new(redirects.clone());
    let outside = Canary::start(
        axum::Router::new()
            .route(
                "/shirt.jpg",
                axum::routing::get(move || {
                    let jpeg = jpeg.clone();
                    async move { ([("content-type", "image/jpeg")], jpeg) }
                }),
            )
            .route(
                "/to/{n}",
                axum::routing::get(move |axum::extract::Path(n): axum::extract::Path<usize>| {
                    let targets = targets.clone();
                    async move { axum::response::Redirect::temporary(&targets[n]) }
                }),
            ),
    )
    .await;
    let o = outside.port;
    let closed = atelier_e2e::free_port();
    let allowed = format!("127.0.0.1:{o},127.0.0.1:{closed}");
    let sys = start(
        target,
        1,
        &[
            ("ATELIER__GATEWAY__FETCH__ALLOW_PRIVATE_NETWORKS", "false"),
            ("ATELIER__GATEWAY__FETCH__ALLOWED_HOSTS", &allowed),
        ],
    )
    .await;

    let mut attacks = vec![
        format!("http://127.0.0.1:{p}/a.jpg"),
        format!("http://2130706433:{p}/a.jpg"),
        format!("http://0x7f000001:{p}/a.jpg"),
        format!("http://0x7f.1:{p}/a.jpg"),
        format!("http://127.1:{p}/a.jpg"),
        format!("http://0177.0.0.1:{p}/a.jpg"),
        format!("http://0.0.0.0:{p}/a.jpg"),
        format!("http://[::1]:{p}/a.jpg"),
        format!("http://[::ffff:127.0.0.1]:{p}/a.jpg"),
        format!("http://[::ffff:7f00:1]:{p}/a.jpg"),
        format!("http://[::127.0.0.1]:{p}/a.jpg"),
        format!("http://localhost:{p}/a.jpg"),
        format!("http://LOCALHOST.:{p}/a.jpg"),
        format!("http://127.0.0.1:{p}/a.jpg?token=hunter2"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/a.jpg".to_string(),
        "http://192.168.1.1/a.jpg".to_string(),
        "http://100.64.0.1/a.jpg".to_string(),
        "http://[fd00::1]/a.jpg".to_string(),
        "http://[fe80::1]/a.jpg".to_string(),
        "http://224.0.0.1/a.jpg".to_string(),
        "http://255.255.255.255/a.jpg".to_string(),
        // An allowed host, but credentials in the URL.
        format!("http://user:secret@127.0.0.1:{o}/shirt.jpg"),
        // An allowed host whose port is closed: the same answer as a refusal.
        format!("http://127.0.0.1:{closed}/a.jpg"),
    ];
    for n in 0..redirects.len() {
        attacks.push(format!("http://127.0.0.1:{o}/to/{n}"));
    }
    for url in &attacks {
        let (code, body) = sys.post(0, IMAGE, &request(url, [1, 0, 0], false), &[]).await;
        assert_eq!(code, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "input_unreachable", "{url}: {body}");
        assert_eq!(body["error"]["field"], "inputImages[0].url", "{url}: {body}");
        // One uniform message: the URL without credentials, port or query.
        let message = body["error"]["message"].as_str().expect("message");
        assert_eq!(message, format!("{} could not be fetched", shown(url)), "{url}");
        for secret in [
            "secret",
            "user",
            "hunter2",
            "token",
            &p.to_string(),
            &closed.to_string(),
        ] {
            assert!(!message.contains(secret), "{url}: {message} shows {secret}");
        }
    }
    assert_eq!(canary.hits(), 0, "a private address was fetched\n{}", sys.logs());
    assert_eq!(
        outside.hits(),
        redirects.len(),
        "only the redirects reached the allowed host (never with credentials)"
    );

    // The allowed host itself works, and its photo is served back safely.
    let ok = format!("http://127.0.0.1:{o}/shirt.jpg");
    let (code, accepted) = sys
        .post(
            0,
            IMAGE,
            &request(&ok, [1, 0, 0], false),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(code, 202, "{accepted}\n{}", sys.logs());
    let id = accepted["request_id"].as_str().expect("id");
    let resp = sys
        .http()
        .get(format!("{}/api/v1/files/{id}/inputs/0.jpg", sys.url(0)))
        .send()
        .await
        .expect("file");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let disposition = resp.headers()["content-disposition"].to_str().expect("ascii");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let job = sys.wait_terminal(id, Duration::from_secs(120)).await;
    assert_eq!(job["status"], "completed", "{job}");
}

async fn keys_and_tenants_isolate_jobs(target: Target) {
    let sys = start(target, 2, &[("ATELIER__GATEWAY__AUTH__CACHE_SECONDS", "0")]).await;
    let (a, b) = (sys.url(0), sys.url(1));
    let nobody = System::client_with_key(None);
    let stranger = System::client_with_key(Some("atl_0000000000000000000000000000000000000000000"));
    let alice_key = sys.create_key(&["--name", "alice", "--tenant", "shop-a"]);
    let bob_key = sys.create_key(&["--name", "bob", "--tenant", "shop-b"]);
    assert!(
        alice_key.starts_with("atl_") && alice_key.len() >= 40,
        "{alice_key}"
    );
    assert_ne!(alice_key, bob_key);
    let alice = System::client_with_key(Some(&alice_key));
    let bob = System::client_with_key(Some(&bob_key));
    let body = request(&data_uri(&photo(GarmentShape::TShirt, 21)), [1, 0, 0], false);

    // No key, an unknown key: 401 with a challenge, on every API route.
    for client in [&nobody, &stranger] {
        let (code, headers, error) = post_with(&sys, client, 0, &body, &[]).await;
        assert_eq!(code, 401, "{error}");
        assert_eq!(error["error"]["code"], "unauthorized");
        let challenge = headers["www-authenticate"].to_str().expect("ascii");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let (code, ..) = get_with(client, &format!("{a}/api/v1/status/queue")).await;
        assert_eq!(code, 401);
    }
    // The X-API-Key header works too.
    let resp = nobody
        .get(format!("{a}/api/v1/status/queue"))
        .header("x-api-key", &alice_key)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 200);
    // Health stays open; metrics need an admin key on the public port.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get_with(&nobody, &format!("{a}{path}")).await.0, 200, "{path}");
    }
    assert_eq!(get_with(&nobody, &format!("{a}/metrics")).await.0, 401);
    assert_eq!(get_with(&alice, &format!("{a}/metrics")).await.0, 403);
    assert_eq!(get_with(&sys.http(), &format!("{a}/metrics")).await.0, 200);
    assert_eq!(get_with(&nobody, &format!("{}/metrics", sys.ops(0))).await.0, 200);

    // Alice's job, with an idempotency key.
    let idem = [("Prefer", "respond-async"), ("Idempotency-Key", "order-42")];
    let (code, _, accepted) = post_with(&sys, &alice, 0, &body, &idem).await;
    assert_eq!(code, 202, "{accepted}");
    let job = accepted["request_id"].as_str().expect("id").to_string();
    // Bob, on the other gateway, sees none of it.
    for path in [
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/jobs/{job}/events"),
        format!("/api/v1/files/{job}/inputs/0.jpg"),
    ] {
        let (code, _, error) = get_with(&bob, &format!("{b}{path}")).await;
        assert_eq!(code, 404, "{path}: {error}");
    }
    let resp = bob
        .delete(format!("{b}/api/v1/jobs/{job}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 404, "bob cannot cancel alice's job");
    // Bob's idempotency key of the same name is his own.
    let (code, _, bobs) = post_with(&sys, &bob, 1, &body, &idem).await;
    assert_eq!(code, 202, "{bobs}");
    let bobs = bobs["request_id"].as_str().expect("id").to_string();
    assert_ne!(bobs, job, "another tenant's idempotency key returned its job");
    // Alice sees hers from either gateway, and not Bob's.
    let (code, _, seen) = get_with(&alice, &format!("{b}/api/v1/jobs/{job}")).await;
    assert_eq!(code, 200, "{seen}");
    assert_eq!(get_with(&alice, &format!("{a}/api/v1/jobs/{bobs}")).await.0, 404);
    let (code, _, again) = post_with(&sys, &alice, 1, &body, &idem).await;
    assert_eq!((code, again["request_id"].as_str()), (202, Some(job.as_str())));

    // Keys are listed without their secrets; a revoked key stops at once
    // (this system caches lookups for 0 s) on every gateway.
    let listed = sys.cli(&["keys", "list"]);
    assert!(listed.contains("alice") && listed.contains("bob"), "{listed}");
    assert!(
        !listed.contains(&alice_key) && !listed.contains(&bob_key),
        "{listed}"
    );
    sys.cli(&["keys", "revoke", "alice"]);
    for url in [&a, &b] {
        let (code, _, error) = get_with(&alice, &format!("{url}/api/v1/jobs/{job}")).await;
        assert_eq!(code, 401, "{error}");
    }
    assert_eq!(get_with(&bob, &format!("{a}/api/v1/jobs/{bobs}")).await.0, 200);
}

async fn rate_limits_are_shared_by_every_gateway(target: Target) {
    let gemini = GatedGemini::start().await;
    let mut pairs: Vec<(String, String)> = gemini.env();
    pairs.push(("ATELIER__GATEWAY__AUTH__BURST".into(), "4".into()));
    let sys = System::start(
        target,
        Options {
            gateways: 2,
            env: pairs,
            ..Options::default()
        },
    )
    .await;
    // Six a minute after a burst of four: no refill during this test.
    let key = sys.create_key(&["--name", "metered", "--rate-per-minute", "6"]);
    let metered = System::client_with_key(Some(&key));
    let mut allowed = 0;
    let mut refused = None;
    for n in 0..12 {
        let url = format!("{}/api/v1/status/queue", sys.url(n % 2));
        let (code, headers, body) = get_with(&metered, &url).await;
        match code {
            200 => {
                allowed += 1;
                assert_eq!(headers["ratelimit-policy"], "\"requests\";q=6;w=60");
                assert!(headers.contains_key("ratelimit"));
            }
            429 => refused = Some((headers, body)),
            other => panic!("{other}: {body}"),
        }
    }
    // Counted per gateway, two gateways would allow eight.
    assert!((4..=5).contains(&allowed), "{allowed} requests allowed");
    let (headers, body) = refused.expect("requests past the limit are refused");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(headers["ratelimit"].to_str().expect("ascii").contains("r=0"));

    // One job in flight per key, whichever gateway is asked.
    let key = sys.create_key(&[
        "--name",
        "single",
        "--max-in-flight",
        "1",
        "--rate-per-minute",
        "0",
    ]);
    let single = System::client_with_key(Some(&key));
    let body = request(&data_uri(&photo(GarmentShape::Dress, 4)), [1, 0, 0], false);
    let asynchronous = [("Prefer", "respond-async")];
    let (code, _, first) = post_with(&sys, &single, 0, &body, &asynchronous).await;
    assert_eq!(code, 202, "{first}");
    let (code, _, error) = post_with(&sys, &single, 1, &body, &asynchronous).await;
    assert_eq!(code, 429, "{error}");
    assert_eq!(error["error"]["code"], "too_many_in_flight");
    gemini.open();
    let id = first["request_id"].as_str().expect("id");
    assert_eq!(
        sys.wait_terminal_with(&single, id, Duration::from_secs(120))
            .await["status"],
        "completed"
    );
    let (code, _, second) = post_with(&sys, &single, 1, &body, &asynchronous).await;
    assert_eq!(code, 202, "a finished job frees its slot: {second}");
}

/// Reads from `stream` until the server closes it; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

async fn slow_and_silent_clients_are_cut_off(target: Target) {
    let sys = start(
        target,
        1,
        &[
            ("ATELIER__GATEWAY__HEADER_READ_TIMEOUT_SECONDS", "2"),
            ("ATELIER__GATEWAY__BODY_TIMEOUT_SECONDS", "2"),
        ],
    )
    .await;
    let addr = host_port(&sys.url(0));
    let limit = Duration::from_secs(2) + CUT_SLACK;

    // Slowloris: headers that never end, one line a second.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.expect("connect");
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("write");
            let started = Instant::now();
            let trickle = async {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(limit, trickle).await;
            (
                started.elapsed(),
                read_until_closed(&mut stream, Duration::from_secs(1)).await,
            )
        }));
    }
    // Connections that never send a byte.
    let mut silent = Vec::new();
    for _ in 0..50 {
        let addr = addr.clone();
        silent.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.expect("connect");
            read_until_closed(&mut stream, limit).await
        }));
    }
    for task in slow {
        let (took, closed) = task.await.expect("task");
        assert!(
            closed.is_some() && took < limit,
            "a slowloris connection stayed open"
        );
    }
    for task in silent {
        assert!(
            task.await.expect("task").is_some(),
            "a silent connection stayed open"
        );
    }

    // A body at a trickle: 408 and the connection closed.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST {IMAGE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"inputImages\":",
        sys.key()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let reply = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream.write_all(b"          ").await.is_err() || started.elapsed() > limit {
            break read_until_closed(&mut stream, Duration::from_secs(2)).await;
        }
        // Stop trickling once the server has answered.
        let mut peek = [0_u8; 1];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut peek)).await
            && n > 0
        {
            break read_until_closed(&mut stream, Duration::from_secs(2)).await;
        }
    };
    let reply = reply.expect("the slow body's connection is closed");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("request_timeout"), "{reply}");
    assert!(started.elapsed() < limit);

    // And the server is fine.
    let (code, _) = sys.get_json(0, "/api/v1/status/queue").await;
    assert_eq!(code, 200);
}

/// `(open descriptors, peak RSS in bytes)` of process `pid`.
fn descriptors_and_peak(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    (fds, kib * 1024)
}

async fn a_connection_flood_leaves_health_answering(target: Target) {
    const CAP: usize = 64;
    let sys = start(
        target,
        1,
        &[
            ("ATELIER__GATEWAY__MAX_CONNECTIONS", &CAP.to_string()),
            ("ATELIER__GATEWAY__HEADER_READ_TIMEOUT_SECONDS", "60"),
        ],
    )
    .await;
    let pid = sys.gateway_pid(0);
    let (fds_before, _) = descriptors_and_peak(pid);
    // Up to ten times the cap in idle connections: the kernel queues what
    // the gateway does not take, until its listen backlog is full and a
    // connect waits for SYN retries (then the flood has done its worst).
    let addr = host_port(&sys.url(0));
    let mut flood = Vec::new();
    for _ in 0..CAP * 10 {
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => flood.push(stream),
            Ok(Err(_)) => {}
            Err(_) => break,
        }
    }
    assert!(flood.len() > CAP * 2, "only {} connections opened", flood.len());
    let ops = System::client_with_key(None);
    let started = Instant::now();
    let (code, ..) = get_with(&ops, &format!("{}/healthz", sys.ops(0))).await;
    assert_eq!(code, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "health answered slowly"
    );
    let (fds, _) = descriptors_and_peak(pid);
    assert!(
        fds <= fds_before + CAP + 8,
        "{fds} descriptors open (before: {fds_before}, cap {CAP})"
    );
    drop(flood);
    // The public port serves again once the flood is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = sys.get_json(0, "/api/v1/status/queue").await;
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway did not recover");
    }
}

async fn racing_idempotent_callers_never_get_a_ghost_202(target: Target) {
    // One job in analysis (held), one in the queue: the queue is full.
    let gemini = GatedGemini::start().await;
    let mut pairs = gemini.env();
    pairs.push(("ATELIER__PIPELINE__MAX_QUEUE_SIZE".into(), "1".into()));
    let sys = System::start(
        target,
        Options {
            env: pairs,
            ..Options::default()
        },
    )
    .await;
    let body = request(&data_uri(&photo(GarmentShape::TShirt, 31)), [1, 0, 0], false);
    let asynchronous = [("Prefer", "respond-async")];
    let (code, first) = sys.post(0, IMAGE, &body, &asynchronous).await;
    assert_eq!(code, 202, "{first}");
    sys.wait_until(|| gemini.calls() == 1, "the first job is in analysis")
        .await;
    let (code, second) = sys.post(0, IMAGE, &body, &asynchronous).await;
    assert_eq!(code, 202, "{second}");

    // Sixteen callers, one key, a full queue: every one hears the refusal.
    let mut racers = Vec::new();
    for _ in 0..16 {
        let (client, url, body) = (sys.http(), format!("{}{IMAGE}", sys.url(0)), body.clone());
        racers.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("Prefer", "respond-async")
                .header("Idempotency-Key", "checkout-7")
                .json(&body)
                .send()
                .await
                .expect("answer");
            let status = resp.status().as_u16();
            let retry_after = resp.headers().contains_key("retry-after");
            (status, retry_after, resp.json::<Value>().await.expect("json"))
        }));
    }
    for racer in racers {
        let (status, retry_after, body) = racer.await.expect("task");
        if status == 202 {
            // Never a job that does not exist.
            let id = body["request_id"].as_str().expect("id");
            let (code, job) = sys.get_json(0, &format!("/api/v1/jobs/{id}")).await;
            panic!("a 202 while the queue was full (job answers {code}: {job})");
        }
        assert_eq!(status, 503, "{body}");
        assert!(retry_after);
        assert_eq!(body["error"]["code"], "queue_full", "{body}");
    }

    // Once there is room, the same key is a fresh attempt that runs.
    gemini.open();
    for accepted in [&first, &second] {
        let id = accepted["request_id"].as_str().expect("id");
        assert_eq!(
            sys.wait_terminal(id, Duration::from_secs(120)).await["status"],
            "completed"
        );
    }
    let (code, retried) = sys
        .post(
            0,
            IMAGE,
            &body,
            &[("Prefer", "respond-async"), ("Idempotency-Key", "checkout-7")],
        )
        .await;
    assert_eq!(code, 202, "{retried}");
    let id = retried["request_id"].as_str().expect("id");
    assert_eq!(
        sys.wait_terminal(id, Duration::from_secs(120)).await["status"],
        "completed"
    );
}

async fn a_retry_due_while_the_queue_is_full_is_not_lost(target: Target) {
    // Gemini fails the first job's first call; its retry comes due three
    // seconds later, when the bounded first queue is full.
    let gemini = GatedGemini::start().await;
    let mut pairs = gemini.env();
    pairs.extend(env(&[
        ("ATELIER__PIPELINE__MAX_QUEUE_SIZE", "2"),
        ("ATELIER__PROVIDERS__GEMINI__REQUIRED", "true"),
        ("ATELIER__BROKER__RETRY_DELAYS_MS", "3000"),
    ]));
    let sys = System::start(
        target,
        Options {
            env: pairs,
            ..Options::default()
        },
    )
    .await;
    let body = request(&data_uri(&photo(GarmentShape::Trousers, 8)), [1, 0, 0], false);
    let asynchronous = [("Prefer", "respond-async")];
    let mut jobs = Vec::new();
    let (code, a) = sys.post(0, IMAGE, &body, &asynchronous).await;
    assert_eq!(code, 202, "{a}");
    jobs.push(a["request_id"].as_str().expect("id").to_string());
    sys.wait_until(|| gemini.calls() == 1, "the first job reached Gemini")
        .await;
    gemini.fail_next(1);
    gemini.release(1);
    // The next job takes the worker (held), two more fill the queue.
    let (code, b) = sys.post(0, IMAGE, &body, &asynchronous).await;
    assert_eq!(code, 202, "{b}");
    jobs.push(b["request_id"].as_str().expect("id").to_string());
    sys.wait_until(|| gemini.calls() == 2, "the second job reached Gemini")
        .await;
    for _ in 0..2 {
        let (code, queued) = sys.post(0, IMAGE, &body, &asynchronous).await;
        assert_eq!(code, 202, "{queued}");
        jobs.push(queued["request_id"].as_str().expect("id").to_string());
    }
    let (code, refused) = sys.post(0, IMAGE, &body, &asynchronous).await;
    assert_eq!(
        (code, &refused["error"]["code"]),
        (503, &json!("queue_full")),
        "{refused}"
    );
    if let System::Stack(stack) = &sys {
        // The retry is waiting in the stage's own unbounded queue, not dropped.
        use atelier_core::pipeline::Stage;
        let names = stack.broker.names();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resume = stack
                .broker
                .named_queue_stats(&names.resume_queue(Stage::Analysis))
                .await
                .expect("stats");
            let intake = stack
                .broker
                .named_queue_stats(&names.stage_queue(Stage::Analysis))
                .await
                .expect("stats");
            if resume.messages == 1 {
                assert_eq!(intake.messages, 2, "the intake queue is full");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the retry never came due\n{}",
                sys.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    gemini.open();
    for id in &jobs {
        let job = sys.wait_terminal(id, Duration::from_secs(180)).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    assert_eq!(gemini.calls(), 5, "the first job's analysis ran twice");
}

/// A baseline JPEG with `extra` more scans before its end: a scan bomb (each
/// scan of a real progressive file is a pass over the whole image).
fn scan_bomb(extra: usize) -> Vec<u8> {
    let mut jpeg = photo(GarmentShape::TShirt, 2);
    let eoi = jpeg.split_off(jpeg.len() - 2);
    for _ in 0..extra {
        // SOS: one component, table 0/0, spectral 0..0, then one entropy byte.
        jpeg.extend([0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0x42]);
    }
    jpeg.extend(eoi);
    jpeg
}

async fn poison_input_is_refused_with_the_field_named(target: Target) {
    let sys = start(target, 1, &[]).await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 9));
    let asynchronous = [("Prefer", "respond-async")];

    // NUL and other control characters: 422 naming the field, not a 503 loop.
    for text in ["a\u{0}b", "bell\u{7}", "esc\u{1b}[31m"] {
        let mut body = request(&uri, [1, 0, 0], false);
        body["text"] = json!(text);
        let (code, error) = sys.post(0, IMAGE, &body, &[]).await;
        assert_eq!(code, 422, "{text:?}: {error}");
        assert_eq!(error["error"]["field"], "text", "{error}");
    }
    // Not JSON: 415 (a browser could post a form cross-site). Multipart is
    // the upload form (tests/uploads.rs): without a boundary it is 400.
    let resp = sys
        .http()
        .post(format!("{}{IMAGE}", sys.url(0)))
        .header("content-type", "multipart/form-data")
        .body(request(&uri, [1, 0, 0], false).to_string())
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 400);
    let error: Value = resp.json().await.expect("json");
    assert_eq!(error["error"]["code"], "malformed_multipart");
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let resp = sys
            .http()
            .post(format!("{}{IMAGE}", sys.url(0)))
            .header("content-type", content_type)
            .body(request(&uri, [1, 0, 0], false).to_string())
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status().as_u16(), 415, "{content_type}");
        let error: Value = resp.json().await.expect("json");
        assert_eq!(error["error"]["code"], "unsupported_media_type");
    }
    // One idempotency key, two bodies: 422 naming the first job; the same
    // body again is the same job.
    let key = [("Prefer", "respond-async"), ("Idempotency-Key", "cart-1")];
    let body = request(&uri, [1, 0, 0], false);
    let (code, first) = sys.post(0, IMAGE, &body, &key).await;
    assert_eq!(code, 202, "{first}");
    let mut other = body.clone();
    other["text"] = json!("another request");
    let (code, error) = sys.post(0, IMAGE, &other, &key).await;
    assert_eq!(code, 422, "{error}");
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(first["request_id"].as_str().expect("id"))),
        "{error}"
    );
    let (code, again) = sys.post(0, IMAGE, &body, &key).await;
    assert_eq!((code, &again["request_id"]), (202, &first["request_id"]));
    // A JPEG with thousands of scans is refused at intake, before any decode.
    let started = Instant::now();
    let bomb = request(&data_uri(&scan_bomb(5_000)), [1, 0, 0], false);
    let (code, error) = sys.post(0, IMAGE, &bomb, &asynchronous).await;
    assert_eq!(code, 422, "{error}");
    assert_eq!(error["error"]["field"], "inputImages[0].url", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("scans")),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Stack only: the reaper puts back a job whose message was lost and a job
/// whose gateway died between its row and its publish.
#[tokio::test(flavor = "multi_thread")]
async fn the_reaper_resumes_lost_and_orphaned_jobs() {
    use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
    use atelier_core::pipeline::{JobState, Stage};
    let mut sys = System::start(
        Target::Stack,
        Options {
            workers: false,
            env: env(&[
                ("ATELIER__REAPER__INTERVAL_SECONDS", "1"),
                ("ATELIER__REAPER__STALLED_AFTER_SECONDS", "2"),
                ("ATELIER__REAPER__PENDING_AFTER_SECONDS", "2"),
            ]),
            ..Options::default()
        },
    )
    .await;
    let jpeg = photo(GarmentShape::TShirt, 17);
    // A job whose message RabbitMQ lost.
    let (code, lost) = sys
        .post(
            0,
            IMAGE,
            &request(&data_uri(&jpeg), [1, 0, 0], false),
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(code, 202, "{lost}");
    let lost = lost["request_id"].as_str().expect("id").to_string();
    let stack = sys.stack();
    let intake = stack.broker.names().stage_queue(Stage::Analysis);
    assert_eq!(stack.broker.purge_queue(&intake).await.expect("purge"), 1);

    // A job row whose gateway died before publishing (its input stored).
    let store = atelier_jobs::connect(&stack.settings.database)
        .await
        .expect("job store");
    let blobs = atelier_storage::BlobStore::from_url(&stack.settings.blobs.url).expect("blobs");
    let id = JobId::new();
    let input = atelier_core::keys::input(0, "jpg");
    blobs
        .scoped(atelier_core::keys::job_prefix(&id))
        .put(&input, bytes::Bytes::from(jpeg))
        .await
        .expect("input stored");
    let spec = JobSpec {
        id,
        kind: JobKind::Images,
        request: serde_json::from_value(request("data:image/jpeg (stored)", [1, 0, 0], false))
            .expect("request"),
        inputs: vec![StoredInput {
            key: input,
            source: "data:image/jpeg".into(),
        }],
        submitted_at_ms: atelier_core::clock::now_ms(),
    };
    let created = store
        .create(atelier_jobs::NewJob::new(JobState::new(spec), None).for_tenant(atelier_e2e::ADMIN_TENANT))
        .await
        .expect("row");
    assert!(matches!(created, atelier_jobs::Created::New(_)));

    stack.start_workers().await;
    for job in [lost, id.to_string()] {
        let done = sys.wait_terminal(&job, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "completed", "{done}\n{}", sys.logs());
    }
}

/// Stack only: a gateway's memory stays near the bytes in flight, whatever
/// the body size, and job rows stay small.
#[tokio::test(flavor = "multi_thread")]
async fn huge_bodies_keep_the_gateway_small() {
    const BODIES: usize = 8;
    let sys = System::start(
        Target::Stack,
        Options {
            workers: false,
            env: env(&[("ATELIER__PIPELINE__MAX_QUEUE_SIZE", "20")]),
            ..Options::default()
        },
    )
    .await;
    let png = tokio::task::spawn_blocking(noise_png).await.expect("png");
    let body = Arc::new(request(&data_uri(&png), [1, 0, 0], false).to_string());
    let pid = sys.gateway_pid(0);
    let (_, before) = descriptors_and_peak(pid);
    let mut calls = Vec::new();
    for _ in 0..BODIES {
        let (client, url, body) = (sys.http(), format!("{}{IMAGE}", sys.url(0)), body.clone());
        calls.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("Prefer", "respond-async")
                .header("content-type", "application/json")
                .body(body.as_bytes().to_vec())
                .send()
                .await
                .expect("answer");
            (resp.status().as_u16(), resp.json::<Value>().await.expect("json"))
        }));
    }
    let mut ids = Vec::new();
    for call in calls {
        let (code, accepted) = call.await.expect("task");
        assert_eq!(code, 202, "{accepted}");
        ids.push(accepted["request_id"].as_str().expect("id").to_string());
    }
    let (_, peak) = descriptors_and_peak(pid);
    let in_flight = (body.len() * BODIES) as u64;
    eprintln!(
        "gateway peak RSS {} MB (before {} MB) for {BODIES} bodies of {} MB ({} MB in flight)",
        peak >> 20,
        before >> 20,
        body.len() >> 20,
        in_flight >> 20
    );
    assert!(peak <= 2 * in_flight, "peak {peak} B for {in_flight} B in flight");
    // The job record carries blob keys, not the photo.
    let (code, job) = sys.get_json(0, &format!("/api/v1/jobs/{}", ids[0])).await;
    assert_eq!(code, 200);
    assert!(
        job.to_string().len() < 16 * 1024,
        "{} B job record",
        job.to_string().len()
    );
}

/// A PNG of random pixels, about 28 MB (noise does not compress).
fn noise_png() -> Vec<u8> {
    use image::ImageEncoder;
    let (width, height) = (2_900_u32, 3_200_u32);
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let pixels: Vec<u8> = (0..width as usize * height as usize * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
    .expect("png");
    out
}

/// Stack only: 16-bit PNGs of 40 megapixels that compress to little each
/// decode to hundreds of megabytes; the analysis worker decodes them one budget
/// at a time instead of all at once.
#[tokio::test(flavor = "multi_thread")]
async fn sixteen_bit_pngs_stay_within_the_decode_budget() {
    use atelier_core::pipeline::Stage;
    const IMAGES: usize = 3;
    // Room for one such decode (its probe: 238 MB of 16-bit rows, 158 MB of result).
    const BUDGET: u64 = 450 << 20;
    let mut sys = System::start(
        Target::Stack,
        Options {
            workers: false,
            env: env(&[
                ("ATELIER__LIMITS__DECODE_BUDGET_BYTES", &BUDGET.to_string()),
                ("ATELIER__WORKER__CONCURRENCY", "3"),
            ]),
            ..Options::default()
        },
    )
    .await;
    let png = tokio::task::spawn_blocking(|| wide_png(6_000, 6_600))
        .await
        .expect("png");
    eprintln!("16-bit PNG of 6000x6600: {} KB", png.len() >> 10);
    let body = request(&data_uri(&png), [1, 0, 0], false);
    let mut ids = Vec::new();
    for _ in 0..IMAGES {
        let (code, accepted) = sys.post(0, IMAGE, &body, &[("Prefer", "respond-async")]).await;
        assert_eq!(code, 202, "{accepted}");
        ids.push(accepted["request_id"].as_str().expect("id").to_string());
    }
    let (base, admin) = (sys.url(0), sys.http());
    let stack = sys.stack();
    stack.start_worker("analysis").await;
    let pid = stack.worker("analysis").pid().expect("analysis runs");
    let next = stack.broker.names().stage_queue(Stage::Generation);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // Each image is decoded, then either passed on or refused (a
        // synthetic gradient has no garment in it): either way analysis is done.
        let waiting = stack
            .broker
            .named_queue_stats(&next)
            .await
            .expect("stats")
            .messages as usize;
        let mut failed = 0;
        for id in &ids {
            let (_, _, job) = get_with(&admin, &format!("{base}/api/v1/jobs/{id}")).await;
            failed += usize::from(job["status"] == "failed");
        }
        if waiting + failed == IMAGES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "analysis did not finish\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, peak) = descriptors_and_peak(pid);
    eprintln!(
        "analysis worker peak RSS {} MB for {IMAGES} concurrent 16-bit 6000x6600 PNGs (decode budget {} MB)",
        peak >> 20,
        BUDGET >> 20
    );
    // One decode at a time plus the process's own working set; three at once
    // would be over a gigabyte.
    assert!(peak <= BUDGET + (300 << 20), "peak {} MB", peak >> 20);
}

/// A 16-bit RGB PNG whose rows repeat: tens of megapixels in a small file.
fn wide_png(width: u32, height: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let row: Vec<u8> = (0..width)
        .flat_map(|x| {
            let v = u16::try_from(x * 10).unwrap_or(u16::MAX).to_be_bytes();
            [v[0], v[1], 0x80, 0x00, v[1], v[0]]
        })
        .collect();
    let pixels: Vec<u8> = row
        .iter()
        .copied()
        .cycle()
        .take(row.len() * height as usize)
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Up,
    )
    .write_image(&pixels, width, height, image::ExtendedColorType::Rgb16)
    .expect("png");
    out
}
