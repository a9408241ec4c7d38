//! `atelier serve` as a real process: the whole API, the four stages and the
//! status service in one, on a data folder of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::{Service, free_port, tail};
use crate::system::{Options, base_env};

/// Longest wait for `atelier serve` to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One `atelier serve` process.
#[derive(Debug)]
pub struct Serve {
    pub service: Service,
    pub url: String,
    pub grpc: String,
    /// The `--data` folder (SQLite database and blobs).
    pub data: PathBuf,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    /// An admin API key.
    pub key: String,
    /// The ops listener's base URL (`/healthz`, `/readyz`, `/metrics`).
    pub ops: String,
    env: Vec<(String, String)>,
}

impl Serve {
    /// Starts `atelier serve` and waits until it is ready.
    pub async fn start(options: &Options) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        let (http_port, grpc_port) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{http_port}");
        let grpc = format!("127.0.0.1:{grpc_port}");
        let mut env = base_env();
        let ops = format!("127.0.0.1:{}", free_port());
        env.push(("ATELIER__OPS__BIND".into(), ops.clone()));
        for (k, v) in &options.env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        let data_arg = data.display().to_string();
        let mut key_args = crate::system::ADMIN_KEY_ARGS.to_vec();
        key_args.extend(["--data", data_arg.as_str()]);
        let key = crate::process::run_cli(&key_args, &env);
        let args = [
            "serve".to_string(),
            "--bind".into(),
            format!("127.0.0.1:{http_port}"),
            "--grpc".into(),
            grpc.clone(),
            "--data".into(),
            data.display().to_string(),
        ];
        let service = Service::spawn("serve", "atelier", &args, &env, dir.path());
        let serve = Self {
            service,
            url,
            grpc,
            data,
            dir,
            http: reqwest::Client::new(),
            key,
            ops: format!("http://{ops}"),
            env,
        };
        serve.wait_ready().await;
        serve
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ok = self
                .http
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "atelier serve not ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `atelier ARGS --data …` on this process's data folder; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let data = self.data.display().to_string();
        let mut all = args.to_vec();
        all.extend(["--data", data.as_str()]);
        crate::process::run_cli(&all, &self.env)
    }

    /// `kill -9`, then the same command again on the same data; waits until ready.
    pub async fn kill9_and_restart(&mut self) {
        self.service.kill9();
        self.service.start();
        self.wait_ready().await;
    }

    /// The settings environment it runs with.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn logs(&self) -> String {
        format!("==== serve ====\n{}\n", tail(&self.service.log_text()))
    }

    /// The job's artefact folder.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.data.join("blobs").join("jobs").join(id)
    }
}
