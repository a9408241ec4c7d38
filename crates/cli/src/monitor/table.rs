//! `atelier monitor`: the live table of the stages.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use atelier_core::clock::now_ms;
use atelier_proto::v1;
use serde::Serialize;

use super::health::{stage_of, worker_name};
use super::{CALL_TIMEOUT, Output, Targets, status_client};

/// The capacity guidance of the old docs: below 70 % the workers idle, above
/// 80 % every burst grows the queues.
const UTIL_TARGET_LOW: f64 = 0.70;
const UTIL_TARGET_HIGH: f64 = 0.80;
const SECONDS_PER_MINUTE: f64 = 60.0;
/// Clears a terminal and puts the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// One stage's row.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: String,
    pub worker: &'static str,
    pub ready: u32,
    pub running: u32,
    pub consumers: u32,
    pub capacity: u32,
    pub completed: u64,
    pub failed: u64,
    pub per_minute: f64,
    pub p50_seconds: f64,
    pub p95_seconds: f64,
    /// Running over capacity; `None` without consumers.
    pub utilisation: Option<f64>,
}

/// What one refresh shows.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub at_ms: u64,
    pub queued: u32,
    pub running: u32,
    pub completed: u64,
    pub failed: u64,
    pub dead_letters: u32,
    pub broker_connected: bool,
    pub throughput_window_seconds: u32,
    pub stages: Vec<StageRow>,
}

pub async fn run(targets: &Targets, output: Output, every: Duration, once: bool) -> anyhow::Result<()> {
    let mut client = status_client(&targets.status)?;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let text = match snapshot(&mut client, targets.throughput_window).await {
            Ok(snapshot) => match output {
                Output::Json => serde_json::to_string(&snapshot)?,
                Output::Terminal | Output::Plain => render(&snapshot, &targets.status),
            },
            Err(error) if once => return Err(error),
            Err(error) => format!("{}: {error:#}\n", targets.status),
        };
        let mut out = std::io::stdout().lock();
        if output == Output::Terminal {
            write!(out, "{CLEAR}")?;
        }
        writeln!(out, "{}", text.trim_end())?;
        if output == Output::Plain {
            writeln!(out)?;
        }
        out.flush()?;
        if once {
            return Ok(());
        }
    }
}

/// Reads the status service once.
pub async fn snapshot(
    client: &mut v1::status_service_client::StatusServiceClient<tonic::transport::Channel>,
    window: u32,
) -> anyhow::Result<Snapshot> {
    let (queue, timings) = tokio::time::timeout(CALL_TIMEOUT, async {
        let queue = client.get_queue_status(v1::GetQueueStatusRequest {}).await?;
        let timings = client
            .get_stage_timings(v1::GetStageTimingsRequest {
                window_seconds: window,
            })
            .await?;
        Ok::<_, tonic::Status>((queue.into_inner(), timings.into_inner()))
    })
    .await
    .map_err(|_| anyhow::anyhow!("the status service did not answer within {CALL_TIMEOUT:?}"))?
    .map_err(|status| {
        anyhow::anyhow!(
            "the status service answered {:?}: {}",
            status.code(),
            status.message()
        )
    })?;
    let minutes = f64::from(timings.window_seconds.max(1)) / SECONDS_PER_MINUTE;
    let stages = queue
        .stages
        .iter()
        .filter_map(|s| {
            let stage = stage_of(s.stage)?;
            let count = timings
                .stages
                .iter()
                .find(|t| t.stage == s.stage)
                .map_or(0, |t| t.count);
            Some(StageRow {
                stage: stage.as_str().to_string(),
                worker: worker_name(stage),
                ready: s.depth,
                running: s.running,
                consumers: s.consumers,
                capacity: s.capacity,
                completed: s.completed,
                failed: s.failed,
                per_minute: count as f64 / minutes,
                p50_seconds: s.p50_seconds,
                p95_seconds: s.p95_seconds,
                utilisation: (s.capacity > 0).then(|| f64::from(s.running) / f64::from(s.capacity)),
            })
        })
        .collect();
    Ok(Snapshot {
        at_ms: now_ms(),
        queued: queue.queue_size,
        running: queue.running_tasks,
        completed: queue.completed_tasks,
        failed: queue.failed_tasks,
        dead_letters: queue.dead_letters,
        broker_connected: queue.broker_connected,
        throughput_window_seconds: timings.window_seconds,
        stages,
    })
}

/// The table as text.
pub fn render(s: &Snapshot, source: &str) -> String {
    let mut out = String::new();
    let broker = if s.broker_connected {
        "broker connected"
    } else {
        "BROKER UNREACHABLE"
    };
    let _ = writeln!(
        out,
        "atelier monitor · {source} · {broker} · {} UTC",
        clock(s.at_ms)
    );
    let _ = writeln!(
        out,
        "jobs: {} queued · {} running · {} completed · {} failed · {} dead letters",
        s.queued, s.running, s.completed, s.failed, s.dead_letters
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>8} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>6}",
        "STAGE", "READY", "RUNNING", "CONSUMERS", "COMPLETED", "FAILED", "PER MIN", "P50", "P95", "UTIL"
    );
    for r in &s.stages {
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>8} {:>10} {:>10} {:>7} {:>8.1} {:>8} {:>8} {:>6}{}",
            r.stage,
            r.ready,
            r.running,
            r.consumers,
            r.completed,
            r.failed,
            r.per_minute,
            seconds(r.p50_seconds),
            seconds(r.p95_seconds),
            r.utilisation
                .map_or_else(|| "–".to_string(), |u| format!("{:.0}%", u * 100.0)),
            advice(r)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "PER MIN over the last {} s; P50/P95 over the status service's timing window; UTIL = running / \
         (consumers × worker concurrency): aim for {:.0}–{:.0}% at steady load.",
        s.throughput_window_seconds,
        UTIL_TARGET_LOW * 100.0,
        UTIL_TARGET_HIGH * 100.0
    );
    out
}

/// A word on a stage outside the guidance.
fn advice(r: &StageRow) -> &'static str {
    match r.utilisation {
        None if r.ready > 0 => "  no consumer: start a worker",
        None => "  no consumer",
        Some(u) if u > UTIL_TARGET_HIGH => "  above 80%: add workers",
        Some(_) => "",
    }
}

fn seconds(s: f64) -> String {
    if s <= 0.0 {
        "–".to_string()
    } else if s < 1.0 {
        format!("{:.0}ms", s * 1_000.0)
    } else {
        format!("{s:.2}s")
    }
}

/// `HH:MM:SS` of a Unix time in milliseconds.
pub fn clock(ms: u64) -> String {
    let secs = ms / 1_000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3_600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(running: u32, capacity: u32, ready: u32) -> StageRow {
        StageRow {
            stage: "analysis".into(),
            worker: "analysis",
            ready,
            running,
            consumers: u32::from(capacity > 0),
            capacity,
            completed: 0,
            failed: 0,
            per_minute: 0.0,
            p50_seconds: 0.25,
            p95_seconds: 1.5,
            utilisation: (capacity > 0).then(|| f64::from(running) / f64::from(capacity)),
        }
    }

    #[test]
    fn the_table_says_what_is_off_the_guidance() {
        assert_eq!(advice(&row(9, 10, 0)), "  above 80%: add workers");
        assert_eq!(advice(&row(3, 4, 0)), "");
        assert_eq!(advice(&row(0, 0, 5)), "  no consumer: start a worker");
        let snapshot = Snapshot {
            at_ms: 3_600_000 + 61_000,
            queued: 1,
            running: 2,
            completed: 3,
            failed: 4,
            dead_letters: 5,
            broker_connected: true,
            throughput_window_seconds: 60,
            stages: vec![row(9, 10, 0)],
        };
        let text = render(&snapshot, "http://status");
        assert!(text.contains("01:01:01 UTC"), "{text}");
        assert!(text.contains("1 queued · 2 running · 3 completed · 4 failed · 5 dead letters"));
        assert!(
            text.contains("250ms") && text.contains("1.50s") && text.contains("90%"),
            "{text}"
        );
    }
}
