//! The distributed stack as real processes: the gateway(s), the four workers
//! and the status service, on the machine's RabbitMQ and PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Service, free_port, tail};
use crate::system::{Options, base_env};
use atelier_broker::Broker;
use atelier_core::pipeline::Stage;
use atelier_core::settings::Settings;

/// Every worker binary, by short name.
pub const WORKERS: [(&str, Stage); 4] = [
    ("analysis", Stage::Analysis),
    ("generation", Stage::Generation),
    ("upscaling", Stage::Upscaling),
    ("postprocess", Stage::PostProcessing),
];

/// Longest wait for a service to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A whole stack of processes with its own names.
#[derive(Debug)]
pub struct Stack {
    pub prefix: String,
    pub schema: String,
    pub dir: tempfile::TempDir,
    pub gateways: Vec<(Service, String)>,
    /// Each gateway's ops listener (`/healthz`, `/readyz`, `/metrics`).
    pub ops: Vec<String>,
    pub status: Service,
    pub status_url: String,
    /// The ops listener (`/healthz`, `/readyz`, `/metrics`) of the status
    /// service and of each worker, by service name.
    pub service_ops: BTreeMap<String, String>,
    pub workers: BTreeMap<String, Service>,
    pub env: Vec<(String, String)>,
    pub settings: Settings,
    pub broker: Broker,
    pub http: reqwest::Client,
    /// An admin API key of this stack.
    pub key: String,
}

impl Stack {
    /// Starts status, workers and gateways and waits until all are ready.
    pub async fn start(options: &Options) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("t{}", &tag[..12]);
        let schema = format!("e2e_{}", &tag[..12]);
        let dir = tempfile::tempdir().expect("tmp");
        let status_port = free_port();
        let status_url = format!("http://127.0.0.1:{status_port}");
        let mut env = base_env();
        env.extend([
            ("ATELIER__BROKER__PREFIX".into(), prefix.clone()),
            ("ATELIER__DATABASE__SCHEMA".into(), schema.clone()),
            ("ATELIER__DATABASE__MAX_CONNECTIONS".into(), "4".into()),
            (
                "ATELIER__BLOBS__URL".into(),
                dir.path().join("blobs").display().to_string(),
            ),
            ("ATELIER__STATUS__BIND".into(), format!("127.0.0.1:{status_port}")),
            ("ATELIER__GATEWAY__STATUS_URL".into(), status_url.clone()),
        ]);
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

        let key = crate::process::run_cli(&crate::system::ADMIN_KEY_ARGS, &env);
        let mut service_ops = BTreeMap::new();
        let status = Service::spawn(
            "status",
            "atelier-status",
            &[],
            &with_ops(&env, "status", &mut service_ops),
            dir.path(),
        );
        let mut workers = BTreeMap::new();
        if options.workers {
            for (name, _) in WORKERS {
                let wenv = with_ops(&env, name, &mut service_ops);
                workers.insert(
                    name.to_string(),
                    Service::spawn(name, &format!("atelier-{name}"), &[], &wenv, dir.path()),
                );
            }
        }
        let mut gateways = Vec::new();
        let mut ops = Vec::new();
        for n in 0..options.gateways {
            let (port, ops_port) = (free_port(), free_port());
            let mut genv = env.clone();
            genv.push(("ATELIER__GATEWAY__BIND".into(), format!("127.0.0.1:{port}")));
            genv.push(("ATELIER__OPS__BIND".into(), format!("127.0.0.1:{ops_port}")));
            let service = Service::spawn(&format!("gateway{n}"), "atelier-gateway", &[], &genv, dir.path());
            gateways.push((service, format!("http://127.0.0.1:{port}")));
            ops.push(format!("http://127.0.0.1:{ops_port}"));
        }
        let stack = Self {
            prefix,
            schema,
            dir,
            gateways,
            ops,
            status,
            status_url,
            service_ops,
            workers,
            env,
            settings,
            broker,
            key,
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
            let wenv = with_ops(&self.env, name, &mut self.service_ops);
            self.workers.insert(
                name.to_string(),
                Service::spawn(name, &format!("atelier-{name}"), &[], &wenv, self.dir.path()),
            );
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        for (name, stage) in WORKERS {
            self.wait_consumers(stage, 1, deadline, name).await;
        }
    }

    /// Starts one worker and waits until it consumes.
    pub async fn start_worker(&mut self, name: &str) {
        self.start_instance(name, name.to_string(), 1).await;
    }

    /// Starts another replica of the `name` worker (the `replica`th, counting
    /// the first as 1, known as `{name}-{replica}`) and waits until the stage's
    /// queue has that many consumers.
    pub async fn start_replica(&mut self, name: &str, replica: u32) {
        self.start_instance(name, format!("{name}-{replica}"), replica)
            .await;
    }

    async fn start_instance(&mut self, name: &str, instance: String, consumers: u32) {
        let stage = WORKERS.iter().find(|(n, _)| *n == name).expect("worker name").1;
        let wenv = with_ops(&self.env, &instance, &mut self.service_ops);
        let service = Service::spawn(&instance, &format!("atelier-{name}"), &[], &wenv, self.dir.path());
        self.workers.insert(instance.clone(), service);
        self.wait_consumers(stage, consumers, Instant::now() + READY_TIMEOUT, &instance)
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
                .named_queue_stats(&self.broker.names().stage_queue(stage))
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

    /// Runs `atelier ARGS` with this stack's settings; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        crate::process::run_cli(args, &self.env)
    }

    /// Every gateway's base URL.
    pub fn urls(&self) -> Vec<String> {
        self.gateways.iter().map(|(_, url)| url.clone()).collect()
    }
}

/// `env` with an ops listener of its own for service `name` (the defaults,
/// 9101–9105, would collide between stacks running side by side), noted in `ops`.
fn with_ops(
    env: &[(String, String)],
    name: &str,
    ops: &mut BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let port = free_port();
    ops.insert(name.to_string(), format!("http://127.0.0.1:{port}"));
    let mut env = env.to_vec();
    env.retain(|(k, _)| k != "ATELIER__OPS__BIND");
    env.push(("ATELIER__OPS__BIND".into(), format!("127.0.0.1:{port}")));
    env
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
