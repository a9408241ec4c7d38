//! `atelier monitor`: the old monitoring script's three modes over the status
//! service's gRPC API, against the distributed stack or `atelier serve` alike
//! (serve runs the same status service on its `--grpc` address).
//!
//! - `atelier monitor`: a live table of the stages (redrawn on a terminal,
//!   one block per refresh otherwise, JSON lines with `--json`);
//! - `atelier monitor health`: every service and stage consumer checked once;
//! - `atelier monitor watch [JOB_ID]`: one job's events, or every job's.

mod health;
mod table;
mod watch;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use atelier_core::settings::Settings;
use atelier_proto::v1::status_service_client::StatusServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::args::{MonitorArgs, MonitorCommand};

/// Longest wait for one answer from the status service or the gateway: a
/// monitor reports what does not answer instead of hanging on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the monitor looks, from the flags or the settings.
#[derive(Debug, Clone)]
pub struct Targets {
    pub status: String,
    pub gateway: String,
    /// Window of the throughput per minute (`console.throughput_window_seconds`).
    pub throughput_window: u32,
}

impl Targets {
    fn new(settings: &Settings, args: &MonitorArgs) -> Self {
        Self {
            status: args
                .status
                .clone()
                .unwrap_or_else(|| settings.gateway.status_url.clone()),
            gateway: args
                .gateway
                .clone()
                .unwrap_or_else(|| gateway_url(&settings.gateway.bind))
                .trim_end_matches('/')
                .to_string(),
            throughput_window: settings.console.throughput_window_seconds,
        }
    }
}

/// `http://` and the gateway's bind address, a wildcard host read as this machine.
fn gateway_url(bind: &str) -> String {
    let local = bind
        .strip_prefix("0.0.0.0:")
        .or_else(|| bind.strip_prefix("[::]:"))
        .map_or_else(|| bind.to_string(), |port| format!("127.0.0.1:{port}"));
    format!("http://{local}")
}

/// How output is written: redrawn for a person at a terminal, plain lines for
/// a pipe, JSON lines for a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Terminal,
    Plain,
    Json,
}

impl Output {
    fn detect(json: bool) -> Self {
        if json {
            Self::Json
        } else if std::io::stdout().is_terminal() {
            Self::Terminal
        } else {
            Self::Plain
        }
    }
}

pub fn run(settings: &Settings, args: &MonitorArgs) -> anyhow::Result<()> {
    let targets = Targets::new(settings, args);
    let output = Output::detect(args.json);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match &args.command {
            Some(MonitorCommand::Health) => health::run(&targets, output).await,
            Some(MonitorCommand::Watch { job_id }) => watch::run(&targets, job_id.as_deref(), output).await,
            None => {
                let every = Duration::from_secs(args.interval);
                table::run(&targets, output, every, args.once).await
            }
        }
    })
}

/// A lazily connecting channel to the status service.
pub fn status_channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())
        .with_context(|| format!("`{url}` is not a gRPC URL"))?
        .connect_timeout(CALL_TIMEOUT)
        .connect_lazy())
}

/// The status service's client.
pub fn status_client(url: &str) -> anyhow::Result<StatusServiceClient<Channel>> {
    Ok(StatusServiceClient::new(status_channel(url)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_is_reached_on_this_machine() {
        assert_eq!(gateway_url("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(gateway_url("[::]:8080"), "http://127.0.0.1:8080");
        assert_eq!(gateway_url("127.0.0.1:9000"), "http://127.0.0.1:9000");
    }
}
