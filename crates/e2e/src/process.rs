//! One service as a child process, with its log in a file.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where cargo put the workspace's binaries (target/<profile>/).
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

/// Ports handed to services come from below the kernel's ephemeral range
/// (32768–60999 by default), so an outgoing connection of another test can
/// never take one between our check and the service's bind.
const SERVICE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free TCP port on 127.0.0.1 for a service to bind: a random start in
/// [`SERVICE_PORTS`] (tests run as parallel processes), then the next one
/// this process has not handed out that binds now.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = SERVICE_PORTS.end - SERVICE_PORTS.start;
    let _ = NEXT.compare_exchange(
        0,
        (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u16 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = SERVICE_PORTS.start + NEXT.fetch_add(1, Ordering::SeqCst) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One running service process.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub binary: String,
    args: Vec<String>,
    child: Option<Child>,
    pub log: PathBuf,
    env: Vec<(String, String)>,
}

impl Service {
    pub fn spawn(
        name: &str,
        binary_name: &str,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
    ) -> Self {
        let mut service = Self {
            name: name.to_string(),
            binary: binary_name.to_string(),
            args: args.to_vec(),
            child: None,
            log: dir.join(format!("{name}.log")),
            env: env.to_vec(),
        };
        service.start();
        service
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binary(&self.binary))
            .args(&self.args)
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

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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

/// The last lines of `text`.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs `atelier` with `args` to completion; returns its stdout (panics with
/// its stderr when it fails).
/// Runs `atelier ARGS` with `env`, whatever its exit code.
pub fn cli_output(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    Command::new(binary("atelier"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("ATELIER_ENV")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("atelier runs")
}

pub fn run_cli(args: &[&str], env: &[(String, String)]) -> String {
    let out = Command::new(binary("atelier"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("ATELIER_ENV")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("atelier runs");
    assert!(
        out.status.success(),
        "atelier {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
