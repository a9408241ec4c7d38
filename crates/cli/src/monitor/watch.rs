//! `atelier monitor watch [JOB_ID]`: a job's events until it ends, or every
//! job's events as they are recorded.

use std::io::Write as _;

use anyhow::{Context, bail};
use atelier_core::event::{EventKind, JobEvent};
use atelier_proto::v1;

use super::table::clock;
use super::{Output, Targets, status_client};

pub async fn run(targets: &Targets, job: Option<&str>, output: Output) -> anyhow::Result<()> {
    let mut client = status_client(&targets.status)?;
    let mut stream = match job {
        Some(id) => client
            .watch_job(v1::GetJobRequest {
                job_id: id.to_string(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}: {}", targets.status, s.message()))?
            .into_inner(),
        None => client
            .watch_jobs(v1::WatchJobsRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("{}: {}", targets.status, s.message()))?
            .into_inner(),
    };
    let mut last: Option<JobEvent> = None;
    while let Some(received) = stream.message().await.transpose() {
        let wire = received.map_err(|s| anyhow::anyhow!("the event stream ended: {}", s.message()))?;
        let event = JobEvent::try_from(&wire).context("an event the monitor cannot read")?;
        let line = match output {
            Output::Json => serde_json::to_string(&json(&event))?,
            Output::Terminal => highlight(&event, &line(&event)),
            Output::Plain => line(&event),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        last = Some(event);
    }
    // One job: its end decides the exit code, so scripts can wait on it.
    if job.is_some()
        && let Some(event) = last
    {
        match event.kind {
            EventKind::Completed => {}
            EventKind::Failed | EventKind::Cancelled => {
                let why = event
                    .failure
                    .map(|f| format!(": {}", f.message))
                    .unwrap_or_default();
                bail!("job {} {}{why}", event.job, event.kind.as_str());
            }
            _ => bail!("the event stream ended before job {} did", event.job),
        }
    }
    Ok(())
}

/// One event as a line: time, job, kind, stage, attempt, seconds, why.
fn line(e: &JobEvent) -> String {
    let mut text = format!(
        "{}.{:03}  {}  {:<15}",
        clock(e.at_ms),
        e.at_ms % 1_000,
        e.job,
        e.kind.as_str()
    );
    if let Some(stage) = e.stage {
        text.push_str(&format!(" {:<16}", stage.as_str()));
    }
    if e.attempt > 1 {
        text.push_str(&format!(" attempt {}", e.attempt));
    }
    if e.seconds > 0.0 {
        text.push_str(&format!(" {:.2}s", e.seconds));
    }
    if let Some(f) = &e.failure {
        text.push_str(&format!(" {}: {}", f.code, f.message));
    }
    text.trim_end().to_string()
}

/// Colours the ends of a job on a terminal.
fn highlight(e: &JobEvent, line: &str) -> String {
    let colour = match e.kind {
        EventKind::Completed => "32",
        EventKind::Failed | EventKind::Cancelled => "31",
        EventKind::StageRetrying => "33",
        _ => return line.to_string(),
    };
    format!("\x1b[{colour}m{line}\x1b[0m")
}

fn json(e: &JobEvent) -> serde_json::Value {
    serde_json::json!({
        "job_id": e.job.to_string(),
        "kind": e.kind.as_str(),
        "stage": e.stage.map(|s| s.as_str()),
        "attempt": e.attempt,
        "seconds": e.seconds,
        "at_ms": e.at_ms,
        "error": e.failure,
        "worker": e.worker,
    })
}
