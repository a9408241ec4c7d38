//! The rules every store follows, kept in one place so PostgreSQL, SQLite and
//! memory cannot drift apart: how an event moves a job, and how percentiles are
//! taken.

use atelier_core::event::{EventKind, JobEvent, JobFailure, JobStatus};
use atelier_core::job::JobKind;
use atelier_core::pipeline::Stage;

use crate::JobRecord;

/// Milliseconds per second: events and rows stamp time in epoch milliseconds.
pub(crate) const MS_PER_SECOND: u64 = 1_000;

/// The percentiles reported by `stage_stats`, as fractions.
pub(crate) const P50: f64 = 0.50;
pub(crate) const P95: f64 = 0.95;
pub(crate) const P99: f64 = 0.99;

/// The job after `event`, or `None` when the event changes nothing on the job
/// row (it is still recorded as an event). Duplicate detection happens before
/// this is called.
pub(crate) fn transition(job: &JobRecord, event: &JobEvent) -> Option<JobRecord> {
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
            advance_stage(&mut next, event);
            if event.kind == EventKind::StageStarted && next.times.queue_wait == 0.0 {
                // First stage start: the queue wait is now known, even before the
                // worker's own times arrive with the final event.
                next.times.queue_wait = seconds_between(job.created_at_ms, event.at_ms);
            }
        }
        EventKind::StageFinished => {
            next.status = JobStatus::Running;
            advance_stage(&mut next, event);
            if let Some(stage) = event.stage {
                next.times.set(stage, event.seconds);
                // The checkpoint moves on only with the stage that produced it:
                // a late finish of an earlier stage must not rewind it.
                if let Some(state) = &event.state
                    && next.resume_stage.is_none_or(|resume| resume <= stage)
                {
                    next.state = Some(state.clone());
                    next.resume_stage = Some(stage.next().unwrap_or(stage));
                }
            }
        }
        EventKind::Completed => {
            next.status = JobStatus::Completed;
            next.failure = None;
            next.resume_stage = None;
            if let Some(state) = &event.state {
                next.state = Some(state.clone());
                next.times = state.times;
            }
        }
        EventKind::Failed => {
            next.status = JobStatus::Failed;
            next.resume_stage = None;
            advance_stage(&mut next, event);
            next.failure = Some(
                event
                    .failure
                    .clone()
                    .unwrap_or_else(|| JobFailure::stage("failed without a reason")),
            );
        }
        EventKind::Cancelled => {
            next.status = JobStatus::Cancelled;
            next.resume_stage = None;
            if event.failure.is_some() {
                next.failure = event.failure.clone();
            }
        }
    }
    next.updated_at_ms = next.updated_at_ms.max(event.at_ms);
    (next != *job).then_some(next)
}

/// A failed job put back to work at `stage` (a dead letter replayed): the
/// status it had while its message was on the way, no failure, and `stage` to
/// resume at from its checkpoint. `None` unless the job failed.
pub(crate) fn reopen(job: &JobRecord, stage: Stage, now_ms: u64) -> Option<JobRecord> {
    if job.status != JobStatus::Failed {
        return None;
    }
    let mut next = job.clone();
    next.status = if job.current_stage.is_some() {
        JobStatus::Running
    } else {
        JobStatus::Queued
    };
    next.failure = None;
    next.resume_stage = Some(stage);
    // Fresh progress: the reaper must not take it for stalled at once.
    next.updated_at_ms = job.updated_at_ms.max(now_ms);
    Some(next)
}

/// A job the pipeline refused at intake: failed, with why, and over.
pub(crate) fn refuse(job: &mut JobRecord, failure: Option<JobFailure>) {
    job.status = JobStatus::Failed;
    job.resume_stage = None;
    job.failure =
        Some(failure.unwrap_or_else(|| JobFailure::new("refused", "the pipeline did not take the job")));
    job.updated_at_ms = job.updated_at_ms.max(atelier_core::clock::now_ms());
}

/// Moves the current stage forward to the event's, never back: a late start of
/// an earlier stage (out-of-order delivery) must not rewind the job.
fn advance_stage(job: &mut JobRecord, event: &JobEvent) {
    if let Some(stage) = event.stage
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

/// Mean of `values`, 0 for none.
pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The job kind named `s`.
pub(crate) fn parse_kind(s: &str) -> Option<JobKind> {
    [JobKind::Images, JobKind::Full]
        .into_iter()
        .find(|k| k.as_str() == s)
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
        assert_eq!(mean(&[1.0, 3.0]), 2.0);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [JobKind::Images, JobKind::Full] {
            assert_eq!(parse_kind(kind.as_str()), Some(kind));
        }
    }
}
