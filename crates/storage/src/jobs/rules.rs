//! The rules both stores follow, kept in one place so PostgreSQL and memory
//! cannot drift apart: how an event moves a job, and how percentiles are taken.

use atelier_core::job::JobKind;
use atelier_core::pipeline::Stage;

use super::{EventKind, JobEventRecord, JobRecord, JobStatus};

/// Milliseconds per second: events and rows stamp time in epoch milliseconds.
pub(crate) const MS_PER_SECOND: u64 = 1_000;

/// The percentiles reported by `stage_stats`, as fractions.
pub(crate) const P50: f64 = 0.50;
pub(crate) const P95: f64 = 0.95;
pub(crate) const P99: f64 = 0.99;

/// The job after `event`, or `None` when the event changes nothing on the job
/// row (it is still recorded as an event). Duplicate detection happens before
/// this is called.
pub(crate) fn transition(job: &JobRecord, event: &JobEventRecord) -> Option<JobRecord> {
    // A finished job is history: late or replayed events must not resurrect it.
    if job.status.is_terminal() {
        return None;
    }
    let mut next = job.clone();
    match event.kind {
        // The gateway already created the job as queued; a queued event only
        // confirms it, and must not pull a running job back.
        EventKind::Queued => return None,
        // A job waiting for a retry is still in the pipeline, so it counts as
        // running in its stage rather than going back to queued.
        EventKind::StageStarted | EventKind::StageRetrying => {
            next.status = JobStatus::Running;
            advance_stage(&mut next, event.stage);
            if event.kind == EventKind::StageStarted && next.times.queue_wait == 0.0 {
                // First stage start: the queue wait is now known, even before the
                // worker's own times arrive with the final event.
                next.times.queue_wait = seconds_between(job.created_at_ms, event.at_ms);
            }
        }
        EventKind::StageFinished => {
            next.status = JobStatus::Running;
            advance_stage(&mut next, event.stage);
            if let Some(stage) = event.stage {
                next.times.set(stage, event.seconds);
            }
        }
        EventKind::Completed => {
            next.status = JobStatus::Completed;
            next.result = event.result.clone();
            next.error = None;
        }
        EventKind::Failed => {
            next.status = JobStatus::Failed;
            advance_stage(&mut next, event.stage);
            next.error = Some(
                event
                    .error
                    .clone()
                    .unwrap_or_else(|| "failed without a reason".to_string()),
            );
        }
        EventKind::Cancelled => {
            next.status = JobStatus::Cancelled;
            if event.error.is_some() {
                next.error = event.error.clone();
            }
        }
    }
    if let Some(times) = event.times {
        next.times = times;
    }
    next.updated_at_ms = next.updated_at_ms.max(event.at_ms);
    (next != *job).then_some(next)
}

/// Moves the current stage forward to `stage`, never back: a late start of an
/// earlier stage (out-of-order delivery) must not rewind the job.
fn advance_stage(job: &mut JobRecord, stage: Option<Stage>) {
    if let Some(stage) = stage
        && job.current_stage.is_none_or(|current| current <= stage)
    {
        job.current_stage = Some(stage);
    }
}

fn seconds_between(from_ms: u64, to_ms: u64) -> f64 {
    to_ms.saturating_sub(from_ms) as f64 / MS_PER_SECOND as f64
}

/// Linear-interpolated percentile of sorted `values` (PostgreSQL's
/// `percentile_cont`), 0 for no values.
pub(crate) fn percentile_cont(sorted: &[f64], fraction: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let position = fraction * last as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let (Some(&lo), Some(&hi)) = (sorted.get(lower), sorted.get(upper)) else {
        return 0.0;
    };
    lo + (hi - lo) * (position - lower as f64)
}

/// The job kind named `s`.
pub(crate) fn parse_kind(s: &str) -> Option<JobKind> {
    [JobKind::Images, JobKind::Full]
        .into_iter()
        .find(|k| k.as_str() == s)
}

/// The stage named `s` (as produced by `Stage::as_str`).
pub(crate) fn parse_stage(s: &str) -> Option<Stage> {
    Stage::ALL.into_iter().find(|st| st.as_str() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_postgres_percentile_cont() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile_cont(&values, P50) - 50.5).abs() < 1e-9);
        assert!((percentile_cont(&values, P95) - 95.05).abs() < 1e-9);
        assert!((percentile_cont(&values, P99) - 99.01).abs() < 1e-9);
        assert_eq!(percentile_cont(&[], P50), 0.0);
        assert_eq!(percentile_cont(&[7.0], P99), 7.0);
    }

    #[test]
    fn names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(parse_stage(stage.as_str()), Some(stage));
        }
        for kind in [JobKind::Images, JobKind::Full] {
            assert_eq!(parse_kind(kind.as_str()), Some(kind));
        }
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        }
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }
}
