//! `atelier monitor health`: one look at every part, a verdict per service,
//! and an error naming each part that is down.

use anyhow::bail;
use atelier_core::pipeline::Stage;
use atelier_proto::v1;
use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{CALL_TIMEOUT, Output, Targets, status_channel};

/// A part of the system and what the check found.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub service: String,
    /// `None`: could not be told (the status service, which knows, is down).
    pub up: Option<bool>,
    pub detail: String,
}

impl Verdict {
    fn new(service: &str, up: Option<bool>, detail: impl Into<String>) -> Self {
        Self {
            service: service.to_string(),
            up,
            detail: detail.into(),
        }
    }
}

/// The worker that consumes `stage`'s queue, by its binary's short name.
pub fn worker_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Analysis => "analysis",
        Stage::Generation => "generation",
        Stage::Upscaling => "upscaling",
        Stage::PostProcessing => "postprocess",
    }
}

pub async fn run(targets: &Targets, output: Output) -> anyhow::Result<()> {
    let verdicts = check(targets).await;
    let down: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.up != Some(true))
        .map(|v| v.service.as_str())
        .collect();
    if output == Output::Json {
        let body = serde_json::json!({ "healthy": down.is_empty(), "services": verdicts });
        println!("{body}");
    } else {
        let width = verdicts.iter().map(|v| v.service.len()).max().unwrap_or(0);
        for v in &verdicts {
            let word = match v.up {
                Some(true) => "up",
                Some(false) => "DOWN",
                None => "UNKNOWN",
            };
            println!("{:width$}  {word:7}  {}", v.service, v.detail);
        }
    }
    if !down.is_empty() {
        bail!("not healthy: {}", down.join(", "));
    }
    Ok(())
}

/// Every verdict, gateway first.
pub async fn check(targets: &Targets) -> Vec<Verdict> {
    let mut verdicts = vec![gateway(&targets.gateway).await];
    let channel = match status_channel(&targets.status) {
        Ok(channel) => channel,
        Err(error) => {
            verdicts.push(Verdict::new("status", Some(false), format!("{error:#}")));
            return with_unknown_stages(verdicts);
        }
    };
    let serving = tokio::time::timeout(
        CALL_TIMEOUT,
        HealthClient::new(channel.clone()).check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await;
    match serving {
        Ok(Ok(answer)) if answer.get_ref().status() == ServingStatus::Serving => {
            verdicts.push(Verdict::new(
                "status",
                Some(true),
                format!("serving at {}", targets.status),
            ));
        }
        Ok(Ok(answer)) => {
            let status = answer.get_ref().status().as_str_name();
            verdicts.push(Verdict::new(
                "status",
                Some(false),
                format!("{} answers {status}", targets.status),
            ));
            return with_unknown_stages(verdicts);
        }
        Ok(Err(error)) => {
            verdicts.push(Verdict::new(
                "status",
                Some(false),
                format!("no answer at {}: {}", targets.status, error.message()),
            ));
            return with_unknown_stages(verdicts);
        }
        Err(_) => {
            verdicts.push(Verdict::new(
                "status",
                Some(false),
                format!("no answer at {} within {CALL_TIMEOUT:?}", targets.status),
            ));
            return with_unknown_stages(verdicts);
        }
    }
    let mut client = v1::status_service_client::StatusServiceClient::new(channel);
    let queue = tokio::time::timeout(
        CALL_TIMEOUT,
        client.get_queue_status(v1::GetQueueStatusRequest {}),
    )
    .await;
    let queue = match queue {
        Ok(Ok(queue)) => queue.into_inner(),
        Ok(Err(error)) => {
            let detail = format!("GetQueueStatus failed: {}", error.message());
            verdicts.push(Verdict::new("broker", None, detail));
            return with_unknown_stages(verdicts);
        }
        Err(_) => {
            verdicts.push(Verdict::new("broker", None, "GetQueueStatus did not answer"));
            return with_unknown_stages(verdicts);
        }
    };
    verdicts.push(if queue.broker_connected {
        Verdict::new(
            "broker",
            Some(true),
            format!("connected ({} dead letters)", queue.dead_letters),
        )
    } else {
        Verdict::new("broker", Some(false), "the status service cannot read the queues")
    });
    for stage in Stage::ALL {
        let found = queue.stages.iter().find(|s| stage_of(s.stage) == Some(stage));
        verdicts.push(match found {
            Some(s) if s.consumers > 0 => Verdict::new(
                worker_name(stage),
                Some(true),
                format!(
                    "{} consumer(s) on {}, capacity {}",
                    s.consumers, s.queue, s.capacity
                ),
            ),
            Some(s) => Verdict::new(
                worker_name(stage),
                Some(false),
                format!("no consumer on {} ({} message(s) waiting)", s.queue, s.depth),
            ),
            None => Verdict::new(
                worker_name(stage),
                None,
                "the status service does not report this stage",
            ),
        });
    }
    verdicts
}

fn with_unknown_stages(mut verdicts: Vec<Verdict>) -> Vec<Verdict> {
    for stage in Stage::ALL {
        verdicts.push(Verdict::new(
            worker_name(stage),
            None,
            "unknown: the status service, which counts consumers, does not answer",
        ));
    }
    verdicts
}

/// The gateway's `/readyz`.
async fn gateway(base: &str) -> Verdict {
    let url = format!("{base}/readyz");
    let client = match reqwest::Client::builder().timeout(CALL_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => return Verdict::new("gateway", None, format!("no HTTP client: {error}")),
    };
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            Verdict::new("gateway", Some(true), format!("ready at {base}"))
        }
        Ok(response) => {
            let code = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let failing: Vec<String> = body["checks"]
                .as_object()
                .map(|checks| {
                    checks
                        .iter()
                        .filter(|(_, ok)| ok.as_bool() == Some(false))
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default();
            let why = if failing.is_empty() {
                "draining or starting".to_string()
            } else {
                format!("cannot reach: {}", failing.join(", "))
            };
            Verdict::new("gateway", Some(false), format!("{url} answers {code}: {why}"))
        }
        Err(error) => Verdict::new(
            "gateway",
            Some(false),
            format!("no answer at {url}: {}", root_cause(&error)),
        ),
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

pub fn stage_of(raw: i32) -> Option<Stage> {
    Stage::try_from(v1::Stage::try_from(raw).ok()?).ok()
}
