//! One API suite, two targets: a [`System`] is either the distributed stack or
//! `atelier serve`, and the tests talk to it through the same methods.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Serve, Stack};

/// The tenant of the admin key every test system gets (a key's tenant is its
/// name unless given).
pub const ADMIN_TENANT: &str = "e2e-admin";

/// `atelier keys create` arguments of the admin key every test system gets.
pub(crate) const ADMIN_KEY_ARGS: [&str; 9] = [
    "keys",
    "create",
    "--name",
    ADMIN_TENANT,
    "--admin",
    "--rate-per-minute",
    "0",
    "--max-in-flight",
    "0",
];

/// Settings every test system starts with: quick retries, small canvases (the
/// code paths are the same at full size), local test servers allowed as
/// input URLs (the SSRF tests switch that off again), and the result cache
/// off: most tests send the same photo again and again and hold, fail, kill
/// or count each job's work, which a result reused from an earlier job would
/// skip. The cache's own tests (tests/cache.rs) switch it on.
pub(crate) fn base_env() -> Vec<(String, String)> {
    [
        ("ATELIER__CACHE__ENABLED", "false"),
        ("ATELIER__GATEWAY__FETCH__ALLOW_PRIVATE_NETWORKS", "true"),
        ("ATELIER__BROKER__RETRY_DELAYS_MS", "100,200"),
        ("ATELIER__BROKER__MAX_ATTEMPTS", "3"),
        ("ATELIER__BROKER__RECONNECT_MAX_MS", "1000"),
        ("ATELIER__STATUS__RABBITMQ_POLL_MS", "200"),
        ("ATELIER__GATEWAY__SYNC_WAIT_SECONDS", "90"),
        ("ATELIER__WORKER__CONCURRENCY", "2"),
        ("ATELIER__WORKER__SHUTDOWN_GRACE_SECONDS", "20"),
        ("ATELIER__GENERATION__CANVAS_WIDTH", "360"),
        ("ATELIER__GENERATION__CANVAS_HEIGHT", "480"),
        ("ATELIER__VIDEO__WIDTH", "240"),
        ("ATELIER__VIDEO__HEIGHT", "320"),
        ("ATELIER__VIDEO__PRESET", "ultrafast"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Which system a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Gateways, four workers and the status service as separate processes
    /// over RabbitMQ and PostgreSQL.
    Stack,
    /// `atelier serve`: one process, in-process bus, SQLite.
    Serve,
}

/// Knobs of a test system.
#[derive(Debug, Clone)]
pub struct Options {
    /// Gateways of a stack (`atelier serve` has one).
    pub gateways: usize,
    /// Whether a stack starts its workers (`atelier serve` always runs its stages).
    pub workers: bool,
    /// Extra `ATELIER__…` settings, over the test defaults.
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gateways: 1,
            workers: true,
            env: Vec::new(),
        }
    }
}

/// A running system and an HTTP client for it.
#[derive(Debug)]
pub enum System {
    Stack(Box<Stack>),
    Serve(Box<Serve>),
}

impl System {
    /// Starts `target` and waits until it is ready.
    pub async fn start(target: Target, options: Options) -> Self {
        match target {
            Target::Stack => Self::Stack(Box::new(Stack::start(&options).await)),
            Target::Serve => Self::Serve(Box::new(Serve::start(&options).await)),
        }
    }

    pub fn target(&self) -> Target {
        match self {
            Self::Stack(_) => Target::Stack,
            Self::Serve(_) => Target::Serve,
        }
    }

    /// The stack, for tests that only a stack supports.
    pub fn stack(&mut self) -> &mut Stack {
        match self {
            Self::Stack(stack) => stack,
            Self::Serve(_) => panic!("this test needs the distributed stack"),
        }
    }

    /// The API's base URL on gateway `n` (`atelier serve` has one, whatever `n`).
    pub fn url(&self, n: usize) -> String {
        match self {
            Self::Stack(stack) => stack.urls()[n].clone(),
            Self::Serve(serve) => serve.url.clone(),
        }
    }

    /// The ops listener's base URL of gateway `n` (`atelier serve` has one).
    pub fn ops(&self, n: usize) -> String {
        match self {
            Self::Stack(stack) => stack.ops[n].clone(),
            Self::Serve(serve) => serve.ops.clone(),
        }
    }

    /// The process id of gateway `n` (of `atelier serve` itself).
    pub fn gateway_pid(&self, n: usize) -> u32 {
        match self {
            Self::Stack(stack) => stack.gateways[n].0.pid(),
            Self::Serve(serve) => serve.service.pid(),
        }
        .expect("the gateway runs")
    }

    /// The admin API key of the system.
    pub fn key(&self) -> &str {
        match self {
            Self::Stack(stack) => &stack.key,
            Self::Serve(serve) => &serve.key,
        }
    }

    /// Makes another API key with `atelier keys create ARGS`.
    pub fn create_key(&self, args: &[&str]) -> String {
        let mut all = vec!["keys", "create"];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    /// Runs `atelier ARGS` against this system's store (its settings, and
    /// `--data` for `atelier serve`); returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        match self {
            Self::Stack(stack) => stack.cli(args),
            Self::Serve(serve) => serve.cli(args),
        }
    }

    /// The status service's gRPC URL (`atelier serve` serves it on `--grpc`).
    pub fn status_url(&self) -> String {
        match self {
            Self::Stack(stack) => stack.status_url.clone(),
            Self::Serve(serve) => format!("http://{}", serve.grpc),
        }
    }

    /// Runs `atelier monitor ARGS --status … --gateway …` against this system,
    /// whatever its exit code.
    pub fn monitor(&self, args: &[&str]) -> std::process::Output {
        let (status, gateway) = (self.status_url(), self.url(0));
        let mut all = vec!["monitor"];
        all.extend_from_slice(args);
        all.extend(["--status", status.as_str(), "--gateway", gateway.as_str()]);
        let env = match self {
            Self::Stack(stack) => &stack.env,
            Self::Serve(serve) => serve.env(),
        };
        crate::process::cli_output(&all, env)
    }

    /// A client that sends the admin key, with a timeout long enough for
    /// synchronous calls.
    pub fn http(&self) -> reqwest::Client {
        Self::client_with_key(Some(self.key()))
    }

    /// A client sending `key` (or none).
    pub fn client_with_key(key: Option<&str>) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = key
            && let Ok(value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            // Well under the gateway's header-read timeout, which also closes
            // idle keep-alive connections: a pooled connection is never
            // reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(2))
            .default_headers(headers)
            .build()
            .expect("client")
    }

    /// Every process's log tail, for failure messages.
    pub fn logs(&self) -> String {
        match self {
            Self::Stack(stack) => stack.logs(),
            Self::Serve(serve) => serve.logs(),
        }
    }

    /// The job's artefact folder in the blob store.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        match self {
            Self::Stack(stack) => stack.job_dir(id),
            Self::Serve(serve) => serve.job_dir(id),
        }
    }

    /// GETs a served file (`url` as the API returns it, relative to the
    /// gateway): its status, content type and bytes.
    pub async fn file(&self, url: &str) -> (u16, String, bytes::Bytes) {
        let resp = self
            .http()
            .get(format!("{}{url}", self.url(0)))
            .send()
            .await
            .expect("file answers");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, ctype, resp.bytes().await.expect("bytes"))
    }

    /// POSTs `body` to `path` on gateway `n`.
    pub async fn post(&self, n: usize, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http().post(format!("{}{path}", self.url(n))).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::send(req).await
    }

    /// GETs `path` on gateway `n`, as JSON when it is.
    pub async fn get_json(&self, n: usize, path: &str) -> (u16, Value) {
        Self::send(self.http().get(format!("{}{path}", self.url(n)))).await
    }

    /// Sends a built request: its status and body, as JSON when it is (an
    /// error page or plain text comes back as a JSON string).
    pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
        let (status, _, body) = Self::send_with_headers(req).await;
        (status, body)
    }

    /// [`System::send`], with the response's headers.
    pub async fn send_with_headers(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = req.send().await.expect("gateway answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Polls `GET /api/v1/jobs/{id}` with the admin key until the job is terminal.
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Value {
        self.wait_terminal_with(&self.http(), id, limit).await
    }

    /// Polls `GET /api/v1/jobs/{id}` as `client` (the job's own tenant)
    /// until the job is terminal.
    pub async fn wait_terminal_with(&self, client: &reqwest::Client, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let resp = client
                .get(format!("{}/api/v1/jobs/{id}", self.url(0)))
                .send()
                .await
                .expect("gateway answers");
            let code = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            let job = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if code == 200 && matches!(job["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never ended: {job}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `check` until it holds; fails with `what` and the logs after 30 s.
    pub async fn wait_until(&self, check: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out: {what}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
