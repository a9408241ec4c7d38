//! The whole stack as real processes for end-to-end tests: the gateway(s), the
//! four workers and the status service, on the machine's RabbitMQ and
//! PostgreSQL, isolated by a unique queue prefix, database schema and blob
//! folder so tests run side by side.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atelier_broker::Broker;
use atelier_core::pipeline::Stage;
use atelier_core::settings::Settings;
use atelier_fixtures::{GarmentShape, Scene};
use base64::Engine;
use serde_json::{Value, json};

/// Every worker binary, by short name.
pub const WORKERS: [(&str, Stage); 4] = [
    ("analysis", Stage::Analysis),
    ("generation", Stage::Generation),
    ("upscaling", Stage::Upscaling),
    ("postprocess", Stage::PostProcessing),
];

/// Longest wait for a service to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where cargo put this test's sibling binaries (target/<profile>/).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build every binary first (`cargo nextest run --workspace` or `cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One running service process.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub binary: String,
    child: Option<Child>,
    pub log: PathBuf,
    env: Vec<(String, String)>,
}

impl Service {
    fn spawn(name: &str, binary_name: &str, env: &[(String, String)], dir: &Path) -> Self {
        let mut service = Self {
            name: name.to_string(),
            binary: binary_name.to_string(),
            child: None,
            log: dir.join(format!("{name}.log")),
            env: env.to_vec(),
        };
        service.start();
        service
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binary(&self.binary))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .env_remove("ATELIER_ENV")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("service starts");
        self.child = Some(child);
    }

    /// `kill -9`: no chance to ack, finish or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Knobs of a test stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub gateways: usize,
    pub workers: bool,
    pub env: Vec<(String, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            gateways: 1,
            workers: true,
            env: Vec::new(),
        }
    }
}

/// A whole stack of processes with its own names.
#[derive(Debug)]
pub struct Stack {
    pub prefix: String,
    pub schema: String,
    pub dir: tempfile::TempDir,
    pub gateways: Vec<(Service, String)>,
    pub status: Service,
    pub status_url: String,
    pub workers: BTreeMap<String, Service>,
    pub env: Vec<(String, String)>,
    pub settings: Settings,
    pub broker: Broker,
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts status, workers and gateways and waits until all are ready.
    pub async fn start(options: StackOptions) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("t{}", &tag[..12]);
        let schema = format!("e2e_{}", &tag[..12]);
        let dir = tempfile::tempdir().expect("tmp");
        let status_port = free_port();
        let status_url = format!("http://127.0.0.1:{status_port}");
        let mut env: Vec<(String, String)> = vec![
            ("ATELIER__BROKER__PREFIX".into(), prefix.clone()),
            ("ATELIER__BROKER__RETRY_DELAYS_MS".into(), "100,200".into()),
            ("ATELIER__BROKER__MAX_ATTEMPTS".into(), "3".into()),
            ("ATELIER__BROKER__RECONNECT_MAX_MS".into(), "1000".into()),
            ("ATELIER__DATABASE__SCHEMA".into(), schema.clone()),
            ("ATELIER__DATABASE__MAX_CONNECTIONS".into(), "4".into()),
            (
                "ATELIER__BLOBS__URL".into(),
                dir.path().join("blobs").display().to_string(),
            ),
            ("ATELIER__STATUS__BIND".into(), format!("127.0.0.1:{status_port}")),
            ("ATELIER__STATUS__RABBITMQ_POLL_MS".into(), "200".into()),
            ("ATELIER__GATEWAY__STATUS_URL".into(), status_url.clone()),
            ("ATELIER__GATEWAY__SYNC_WAIT_SECONDS".into(), "90".into()),
            ("ATELIER__WORKER__CONCURRENCY".into(), "2".into()),
            ("ATELIER__WORKER__SHUTDOWN_GRACE_SECONDS".into(), "20".into()),
            // Small canvases keep the suite quick; the code paths are the same.
            ("ATELIER__GENERATION__CANVAS_WIDTH".into(), "360".into()),
            ("ATELIER__GENERATION__CANVAS_HEIGHT".into(), "480".into()),
            ("ATELIER__VIDEO__WIDTH".into(), "240".into()),
            ("ATELIER__VIDEO__HEIGHT".into(), "320".into()),
            ("ATELIER__VIDEO__PRESET".into(), "ultrafast".into()),
        ];
        for (k, v) in &options.env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        let settings =
            Settings::load_from(Path::new("/nonexistent"), None, env.clone()).expect("test settings");
        let broker = Broker::connect(
            settings.broker.clone(),
            settings.pipeline.max_queue_size,
            "e2e-test",
        )
        .await
        .expect("RabbitMQ reachable");

        let status = Service::spawn("status", "atelier-status", &env, dir.path());
        let mut workers = BTreeMap::new();
        if options.workers {
            for (name, _) in WORKERS {
                workers.insert(
                    name.to_string(),
                    Service::spawn(name, &format!("atelier-{name}"), &env, dir.path()),
                );
            }
        }
        let mut gateways = Vec::new();
        for n in 0..options.gateways {
            let port = free_port();
            let mut genv = env.clone();
            genv.push(("ATELIER__GATEWAY__BIND".into(), format!("127.0.0.1:{port}")));
            let service = Service::spawn(&format!("gateway{n}"), "atelier-gateway", &genv, dir.path());
            gateways.push((service, format!("http://127.0.0.1:{port}")));
        }
        let stack = Self {
            prefix,
            schema,
            dir,
            gateways,
            status,
            status_url,
            workers,
            env,
            settings,
            broker,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(180))
                .build()
                .expect("client"),
        };
        stack.wait_ready(options.workers).await;
        stack
    }

    /// Starts the four workers (for stacks started without them) and waits
    /// until they consume.
    pub async fn start_workers(&mut self) {
        for (name, _) in WORKERS {
            self.workers.insert(
                name.to_string(),
                Service::spawn(name, &format!("atelier-{name}"), &self.env, self.dir.path()),
            );
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for (name, stage) in WORKERS {
            self.wait_consumers(stage, 1, deadline, name).await;
        }
    }

    /// Starts one worker and waits until it consumes.
    pub async fn start_worker(&mut self, name: &str) {
        let stage = WORKERS.iter().find(|(n, _)| *n == name).expect("worker name").1;
        self.workers.insert(
            name.to_string(),
            Service::spawn(name, &format!("atelier-{name}"), &self.env, self.dir.path()),
        );
        self.wait_consumers(stage, 1, Instant::now() + READY_TIMEOUT, name)
            .await;
    }

    /// The first gateway's base URL.
    pub fn url(&self) -> &str {
        &self.gateways[0].1
    }

    /// Waits until every gateway answers /readyz and every worker consumes.
    pub async fn wait_ready(&self, workers: bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for (service, url) in &self.gateways {
            loop {
                let ok = self
                    .http
                    .get(format!("{url}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not ready:\n{}",
                    service.name,
                    service.log_text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if workers {
            for (name, stage) in WORKERS {
                self.wait_consumers(stage, 1, deadline, name).await;
            }
        }
        let addr = self.status_url.trim_start_matches("http://").to_string();
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "status not ready:\n{}",
                self.status.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `stage`'s queue has at least `n` consumers.
    pub async fn wait_consumers(&self, stage: Stage, n: u32, deadline: Instant, name: &str) {
        loop {
            if self
                .broker
                .queue_stats(stage)
                .await
                .is_ok_and(|q| q.consumers >= n)
            {
                return;
            }
            let log = self.workers.get(name).map(Service::log_text).unwrap_or_default();
            assert!(Instant::now() < deadline, "{name} never consumed:\n{log}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn worker(&mut self, name: &str) -> &mut Service {
        self.workers.get_mut(name).expect("worker")
    }

    /// Every service's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for s in self.workers.values().chain(std::iter::once(&self.status)) {
            out.push_str(&format!("==== {} ====\n{}\n", s.name, tail(&s.log_text())));
        }
        for (s, _) in &self.gateways {
            out.push_str(&format!("==== {} ====\n{}\n", s.name, tail(&s.log_text())));
        }
        out
    }

    /// The job's artefact folder in the shared blob store.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("blobs").join("jobs").join(id)
    }

    /// POSTs `body` to `path` on gateway `n`.
    pub async fn post(&self, n: usize, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.gateways[n].1)).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("gateway answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get_json(&self, n: usize, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.gateways[n].1))
            .send()
            .await
            .expect("gateway answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Polls `GET /api/v1/jobs/{id}` until the job is terminal.
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (code, job) = self.get_json(0, &format!("/api/v1/jobs/{id}")).await;
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
}

impl Drop for Stack {
    fn drop(&mut self) {
        for s in self.workers.values_mut() {
            s.kill9();
        }
        for (s, _) in &mut self.gateways {
            s.kill9();
        }
        self.status.kill9();
        // Best effort: leave the shared services as we found them. (A runtime of
        // its own: Drop may run outside the test's runtime or during its teardown.)
        // Connecting re-declares the topology, so it must use the same queue bound.
        let broker_settings = self.settings.broker.clone();
        let max_queue_size = self.settings.pipeline.max_queue_size;
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let broker = Broker::connect(broker_settings, max_queue_size, "e2e-cleanup")
                    .await
                    .ok()?;
                broker.delete_topology().await.ok()
            })
        })
        .join();
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A synthetic garment photo as JPEG bytes.
pub fn photo(shape: GarmentShape, seed: u64) -> Vec<u8> {
    photo_sized(shape, seed, 480, 640)
}

/// A synthetic garment photo of the given size as JPEG bytes.
pub fn photo_sized(shape: GarmentShape, seed: u64, width: u32, height: u32) -> Vec<u8> {
    let garment = atelier_fixtures::render(&Scene::example(shape, width, height, seed));
    atelier_fixtures::jpeg(&garment.image, 88)
}

/// `bytes` as a data: URI.
pub fn data_uri(bytes: &[u8]) -> String {
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The old clients' request body over `url`.
pub fn request(url: &str, backgrounds: [u8; 3], upscale: bool) -> Value {
    json!({
        "inputImages": [ { "url": url, "view": "front", "backgrounds": backgrounds } ],
        "productType": "general",
        "gender": "male",
        "text": "Test 1",
        "upscale": upscale
    })
}

/// Serves `bytes` at `/shirt.jpg` (and 404 elsewhere) on a local port; returns the base URL.
pub async fn serve_photo(bytes: Vec<u8>) -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = bytes::Bytes::from(bytes);
    let app = axum::Router::new()
        .route(
            "/shirt.jpg",
            get(move || {
                let b = body.clone();
                async move { ([("content-type", "image/jpeg")], b) }
            }),
        )
        .route(
            "/not-an-image.jpg",
            get(|| async { ([("content-type", "image/jpeg")], "<html>hello</html>") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).expect("under").display().to_string());
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
