//! Jobs in memory: tests and throwaway runs.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use atelier_core::event::{EventKind, JobEvent, JobFailure, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use tokio::sync::Mutex;

mod webhooks;

use crate::keys::gcra;
use crate::rules::{self, MS_PER_SECOND, P50, P95, P99};
use crate::{
    Admission, ApiKey, Created, JobCounts, JobPage, JobQuery, JobRecord, JobStore, JobStoreError, KeyStore,
    NewJob, RateDecision, RateLimits, StageStats, StoredEvent, SweepLock,
};

/// What identifies an event for duplicate detection (same as the databases'
/// unique key on `job_events`).
type EventIdentity = (JobId, EventKind, Option<Stage>, u32);

/// A [`JobStore`] in a mutex, with the same rules as the SQL stores.
#[derive(Debug, Default)]
pub struct MemoryJobStore {
    inner: Mutex<Inner>,
    /// The retention sweeper's lock (one process: the whole cluster).
    sweeper: std::sync::Arc<Mutex<()>>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<JobId, JobRecord>,
    /// (tenant, idempotency key) → the job, its body's fingerprint, when the key expires.
    by_key: HashMap<(String, String), (JobId, Option<String>, u64)>,
    keys: Vec<(ApiKey, String)>,
    rates: HashMap<String, u64>,
    leases: HashMap<String, (String, u64)>,
    events: HashMap<JobId, Vec<StoredEvent>>,
    seen: HashSet<EventIdentity>,
    next_seq: u64,
    /// Latest finish of each (job, stage): seconds and epoch milliseconds.
    timings: HashMap<(JobId, Stage), (f64, u64)>,
    webhooks: HashMap<JobId, crate::Webhook>,
    deliveries: Vec<crate::Delivery>,
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
        let now = atelier_core::clock::now_ms();
        let mut inner = self.inner.lock().await;
        let id = job.id();
        if let Some(found) = inner.jobs.get(&id) {
            return if found.idempotency_key == job.idempotency_key && found.tenant == job.tenant {
                Ok(Created::Existing(found.clone()))
            } else {
                Err(JobStoreError::JobConflict { id })
            };
        }
        if let Some(key) = &job.idempotency_key {
            let slot = (job.tenant.clone(), key.clone());
            match inner.by_key.get(&slot).cloned() {
                Some((earlier, hash, expires)) if expires > now => {
                    if hash != job.request_hash {
                        return Ok(Created::KeyReused { existing: earlier });
                    }
                    if let Some(found) = inner.jobs.get(&earlier) {
                        return Ok(Created::Existing(found.clone()));
                    }
                }
                Some((earlier, ..)) => {
                    // Expired: the key is free again.
                    inner.by_key.remove(&slot);
                    if let Some(old) = inner.jobs.get_mut(&earlier) {
                        old.idempotency_key = None;
                    }
                }
                None => {}
            }
        }
        if let Some(limit) = job.max_in_flight {
            let in_flight = inner
                .jobs
                .values()
                .filter(|j| j.tenant == job.tenant && !j.status.is_terminal())
                .count();
            if in_flight >= usize::try_from(limit).unwrap_or(usize::MAX) {
                return Ok(Created::TooManyInFlight { limit });
            }
        }
        let expires = job.idempotency_expires_at_ms();
        let hash = job.request_hash.clone();
        let record = job.into_record();
        if let (Some(key), Some(expires)) = (&record.idempotency_key, expires) {
            inner
                .by_key
                .insert((record.tenant.clone(), key.clone()), (record.id, hash, expires));
        }
        inner.jobs.insert(record.id, record.clone());
        Ok(Created::New(record))
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobStoreError> {
        Ok(self.inner.lock().await.jobs.get(&id).cloned())
    }

    async fn find_by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let inner = self.inner.lock().await;
        Ok(inner
            .by_key
            .get(&(tenant.to_string(), key.to_string()))
            .filter(|(_, _, expires)| *expires > now)
            .and_then(|(id, ..)| inner.jobs.get(id))
            .cloned())
    }

    async fn set_admission(
        &self,
        id: JobId,
        admission: Admission,
        failure: Option<JobFailure>,
    ) -> Result<Option<JobRecord>, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some(job) = inner.jobs.get_mut(&id) else {
            return Ok(None);
        };
        job.admission = admission;
        let freed = if admission == Admission::Refused {
            rules::refuse(job, failure);
            job.idempotency_key.take().map(|key| (job.tenant.clone(), key))
        } else {
            None
        };
        let job = job.clone();
        if let Some(slot) = freed {
            inner.by_key.remove(&slot);
        }
        Ok(Some(job))
    }

    async fn mark_resumed(&self, id: JobId) -> Result<u32, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some(job) = inner.jobs.get_mut(&id) else {
            return Ok(0);
        };
        job.resumes += 1;
        job.admission = Admission::Admitted;
        job.updated_at_ms = job.updated_at_ms.max(atelier_core::clock::now_ms());
        Ok(job.resumes)
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let mut inner = self.inner.lock().await;
        let free = inner
            .leases
            .get(name)
            .is_none_or(|(current, expires)| *expires < now || current == holder);
        if free {
            inner
                .leases
                .insert(name.to_string(), (holder.to_string(), now.saturating_add(ttl_ms)));
        }
        Ok(free)
    }

    async fn delete(&self, id: JobId) -> Result<bool, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some(job) = inner.jobs.remove(&id) else {
            return Ok(false);
        };
        if let Some(key) = &job.idempotency_key {
            inner.by_key.remove(&(job.tenant.clone(), key.clone()));
        }
        inner.events.remove(&id);
        inner.seen.retain(|(job_id, ..)| *job_id != id);
        inner.timings.retain(|(job_id, _), _| *job_id != id);
        inner.webhooks.remove(&id);
        inner.deliveries.retain(|d| d.job != id);
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

    async fn list(&self, query: &JobQuery) -> Result<JobPage, JobStoreError> {
        let inner = self.inner.lock().await;
        let mut jobs: Vec<JobRecord> = inner
            .jobs
            .values()
            .filter(|j| query.matches(j))
            .cloned()
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse((j.created_at_ms, j.id)));
        jobs.truncate(usize::try_from(query.fetch_size()).unwrap_or(usize::MAX));
        Ok(JobPage::from_rows(jobs, query))
    }

    async fn reopen(&self, id: JobId, stage: Stage) -> Result<Option<JobRecord>, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some(job) = inner.jobs.get(&id).cloned() else {
            return Ok(None);
        };
        let Some(next) = rules::reopen(&job, stage, atelier_core::clock::now_ms()) else {
            return Ok(Some(job));
        };
        inner
            .seen
            .retain(|(job_id, kind, ..)| !(*job_id == id && *kind == EventKind::Failed));
        if let Some(events) = inner.events.get_mut(&id) {
            events.retain(|e| e.event.kind != EventKind::Failed);
        }
        inner.jobs.insert(id, next.clone());
        Ok(Some(next))
    }

    async fn finished_before(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobId>, JobStoreError> {
        let inner = self.inner.lock().await;
        let mut jobs: Vec<(u64, JobId)> = inner
            .jobs
            .values()
            .filter(|j| j.status.is_terminal() && j.updated_at_ms <= updated_before_ms)
            .map(|j| (j.updated_at_ms, j.id))
            .collect();
        jobs.sort();
        jobs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(jobs.into_iter().map(|(_, id)| id).collect())
    }

    async fn delete_finished(&self, ids: &[JobId]) -> Result<u64, JobStoreError> {
        let mut deleted = 0;
        for id in ids {
            let finished = self
                .inner
                .lock()
                .await
                .jobs
                .get(id)
                .is_some_and(|j| j.status.is_terminal());
            if finished && self.delete(*id).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn clear_expired_idempotency_keys(&self, now_ms: u64) -> Result<u64, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let expired: Vec<((String, String), JobId)> = inner
            .by_key
            .iter()
            .filter(|(_, (_, _, expires))| *expires <= now_ms)
            .map(|(slot, (id, ..))| (slot.clone(), *id))
            .collect();
        for (slot, id) in &expired {
            inner.by_key.remove(slot);
            if let Some(job) = inner.jobs.get_mut(id) {
                job.idempotency_key = None;
            }
        }
        Ok(expired.len() as u64)
    }

    async fn try_sweep_lock(&self) -> Result<Option<SweepLock>, JobStoreError> {
        Ok(SweepLock::try_local(&self.sweeper))
    }
}

#[async_trait]
impl KeyStore for MemoryJobStore {
    async fn create_key(&self, key: &ApiKey, hash: &str) -> Result<(), JobStoreError> {
        let mut inner = self.inner.lock().await;
        if inner.keys.iter().any(|(k, _)| k.name == key.name) {
            return Err(JobStoreError::KeyNameTaken(key.name.clone()));
        }
        inner.keys.push((key.clone(), hash.to_string()));
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, JobStoreError> {
        Ok(self
            .inner
            .lock()
            .await
            .keys
            .iter()
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn revoke_key(&self, name: &str, at_ms: u64) -> Result<bool, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some((key, _)) = inner
            .keys
            .iter_mut()
            .find(|(k, _)| k.name == name && k.revoked_at_ms.is_none())
        else {
            return Ok(false);
        };
        key.revoked_at_ms = Some(at_ms);
        Ok(true)
    }

    async fn set_webhook_secret(&self, name: &str, secret: &str) -> Result<bool, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let Some((key, _)) = inner.keys.iter_mut().find(|(k, _)| k.name == name) else {
            return Ok(false);
        };
        key.webhook_secret = Some(secret.to_string());
        Ok(true)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, JobStoreError> {
        let inner = self.inner.lock().await;
        Ok(inner.keys.iter().find(|(_, h)| h == hash).map(|(k, _)| k.clone()))
    }
}

#[async_trait]
impl RateLimits for MemoryJobStore {
    async fn check_rate(
        &self,
        bucket: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<RateDecision, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let mut inner = self.inner.lock().await;
        let (next, decision) = gcra(inner.rates.get(bucket).copied(), now, per_minute, burst);
        if let Some(next) = next {
            inner.rates.insert(bucket.to_string(), next);
        }
        Ok(decision)
    }
}
