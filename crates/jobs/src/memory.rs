//! Jobs in memory: tests and throwaway runs.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use atelier_core::event::{EventKind, JobEvent, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use tokio::sync::Mutex;

use crate::rules::{self, MS_PER_SECOND, P50, P95, P99};
use crate::{Created, JobCounts, JobRecord, JobStore, JobStoreError, NewJob, StageStats, StoredEvent};

/// What identifies an event for duplicate detection (same as the databases'
/// unique key on `job_events`).
type EventIdentity = (JobId, EventKind, Option<Stage>, u32);

/// A [`JobStore`] in a mutex, with the same rules as the SQL stores.
#[derive(Debug, Default)]
pub struct MemoryJobStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<JobId, JobRecord>,
    by_key: HashMap<String, JobId>,
    events: HashMap<JobId, Vec<StoredEvent>>,
    seen: HashSet<EventIdentity>,
    next_seq: u64,
    /// Latest finish of each (job, stage): seconds and epoch milliseconds.
    timings: HashMap<(JobId, Stage), (f64, u64)>,
}

impl MemoryJobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl JobStore for MemoryJobStore {
    async fn create(&self, job: NewJob) -> Result<Created, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let id = job.id();
        let earlier = match &job.idempotency_key {
            Some(key) => inner.by_key.get(key).copied(),
            None => None,
        }
        .or_else(|| inner.jobs.contains_key(&id).then_some(id));
        if let Some(earlier) = earlier {
            return match inner.jobs.get(&earlier) {
                Some(found) if found.idempotency_key == job.idempotency_key => Ok(Created {
                    job: found.clone(),
                    existing: true,
                }),
                _ => Err(JobStoreError::JobConflict { id }),
            };
        }
        let record = job.into_record();
        if let Some(key) = &record.idempotency_key {
            inner.by_key.insert(key.clone(), record.id);
        }
        inner.jobs.insert(record.id, record.clone());
        Ok(Created {
            job: record,
            existing: false,
        })
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobStoreError> {
        Ok(self.inner.lock().await.jobs.get(&id).cloned())
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<JobRecord>, JobStoreError> {
        let inner = self.inner.lock().await;
        Ok(inner.by_key.get(key).and_then(|id| inner.jobs.get(id)).cloned())
    }

    async fn delete(&self, id: JobId) -> Result<bool, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some(job) = inner.jobs.remove(&id) else {
            return Ok(false);
        };
        if let Some(key) = &job.idempotency_key {
            inner.by_key.remove(key);
        }
        inner.events.remove(&id);
        inner.seen.retain(|(job_id, ..)| *job_id != id);
        inner.timings.retain(|(job_id, _), _| *job_id != id);
        Ok(true)
    }

    async fn ping(&self) -> Result<(), JobStoreError> {
        Ok(())
    }

    async fn apply_event(&self, event: &JobEvent) -> Result<Option<JobRecord>, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some(job) = inner.jobs.get(&event.job).cloned() else {
            return Ok(None);
        };
        if !inner.seen.insert(event.identity()) {
            return Ok(Some(job));
        }
        inner.next_seq += 1;
        let stored = StoredEvent {
            seq: inner.next_seq,
            event: JobEvent {
                state: None,
                ..event.clone()
            },
        };
        inner.events.entry(event.job).or_default().push(stored);
        if let (EventKind::StageFinished, Some(stage)) = (event.kind, event.stage) {
            inner
                .timings
                .insert((event.job, stage), (event.seconds, event.at_ms));
        }
        let Some(next) = rules::transition(&job, event) else {
            return Ok(Some(job));
        };
        inner.jobs.insert(next.id, next.clone());
        Ok(Some(next))
    }

    async fn events(&self, id: JobId) -> Result<Vec<StoredEvent>, JobStoreError> {
        Ok(self
            .inner
            .lock()
            .await
            .events
            .get(&id)
            .cloned()
            .unwrap_or_default())
    }

    async fn counts(&self) -> Result<JobCounts, JobStoreError> {
        let inner = self.inner.lock().await;
        let mut counts = JobCounts::default();
        for job in inner.jobs.values() {
            counts.add(job.status, 1);
        }
        Ok(counts)
    }

    async fn stage_stats(&self, window_seconds: u32) -> Result<Vec<StageStats>, JobStoreError> {
        let now_ms = atelier_core::clock::now_ms();
        let since_ms = now_ms.saturating_sub(u64::from(window_seconds) * MS_PER_SECOND);
        let inner = self.inner.lock().await;
        let stats = Stage::ALL
            .into_iter()
            .map(|stage| {
                let in_stage = |status| {
                    inner
                        .jobs
                        .values()
                        .filter(|j| j.status == status && j.current_stage == Some(stage))
                        .count() as u64
                };
                let finishes: Vec<_> = inner
                    .timings
                    .iter()
                    .filter(|((_, s), _)| *s == stage)
                    .map(|(_, timing)| *timing)
                    .collect();
                let mut window: Vec<f64> = finishes
                    .iter()
                    .filter(|(_, at_ms)| *at_ms >= since_ms)
                    .map(|(seconds, _)| *seconds)
                    .collect();
                window.sort_by(f64::total_cmp);
                StageStats {
                    stage,
                    running: in_stage(JobStatus::Running),
                    completed: finishes.len() as u64,
                    failed: in_stage(JobStatus::Failed),
                    count_in_window: window.len() as u64,
                    p50: rules::percentile_cont(&window, P50),
                    p95: rules::percentile_cont(&window, P95),
                    p99: rules::percentile_cont(&window, P99),
                    mean: rules::mean(&window),
                }
            })
            .collect();
        Ok(stats)
    }

    async fn unfinished(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobRecord>, JobStoreError> {
        let inner = self.inner.lock().await;
        let mut jobs: Vec<JobRecord> = inner
            .jobs
            .values()
            .filter(|j| !j.status.is_terminal() && j.updated_at_ms <= updated_before_ms)
            .cloned()
            .collect();
        jobs.sort_by_key(|j| (j.updated_at_ms, j.id));
        jobs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(jobs)
    }
}
