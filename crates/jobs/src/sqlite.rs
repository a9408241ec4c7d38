//! Jobs in one SQLite file: the embedded store of `atelier serve`.
//!
//! SQLite allows one writer at a time, so writes go through a pool of one
//! connection (no `SQLITE_BUSY` from two writers racing to upgrade their
//! transactions) while reads use a few connections of their own, which WAL mode
//! lets run beside the writer.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use atelier_core::event::{EventKind, JobEvent, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use atelier_core::settings::DatabaseSettings;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use atelier_core::event::JobFailure;

mod webhooks;

use crate::codec::{EventRow, JobRow, JobText, KeyRow, corrupt, to_i64, to_u64};
use crate::keys::gcra;
use crate::rules::{self, MS_PER_SECOND, P50, P95, P99};
use crate::{
    Admission, ApiKey, Created, JobCounts, JobPage, JobQuery, JobRecord, JobStore, JobStoreError, KeyStore,
    NewJob, RateDecision, RateLimits, StageStats, StoredEvent, SweepLock,
};

/// The schema's migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Columns of `jobs` as [`JobRow`] reads them.
const JOB_SELECT: &str = "id, tenant, idempotency_key, request_hash, admission, resumes, kind, status, current_stage, \
                          priority, error, error_code, error_field, times, created_at_ms, updated_at_ms, \
                          state, resume_stage";

/// Columns of `api_keys` as [`KeyRow`] reads them.
const KEY_SELECT: &str = "name, tenant, key_prefix, admin, rate_per_minute, max_in_flight, webhook_secret, \
                          created_at_ms, revoked_at_ms";

/// Columns of `job_events` as [`EventRow`] reads them.
const EVENT_SELECT: &str = "seq, job_id, kind, stage, attempt, seconds, at_ms, error, error_code, \
                            error_field, worker";

/// A [`JobStore`] in one SQLite database file. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteJobStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The retention sweeper's lock: one process uses the file, so a mutex
    /// shared by this store's clones is the whole cluster.
    sweeper: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteJobStore {
    /// Opens (creating when missing) the database `settings.url` names
    /// (`sqlite://path/to/atelier.db`) and brings its schema up to date.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, JobStoreError> {
        let path = settings
            .url
            .strip_prefix("sqlite://")
            .or_else(|| settings.url.strip_prefix("sqlite:"))
            .unwrap_or(&settings.url);
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| JobStoreError::Database(sqlx::Error::Io(e)))?;
        }
        let timeout = Duration::from_millis(settings.connect_timeout_ms);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(timeout)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            sweeper: std::sync::Arc::default(),
        })
    }

    async fn find(&self, id: JobId) -> Result<Option<JobRecord>, JobStoreError> {
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = ?1");
        sqlx::query_as::<_, JobRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(JobRow::into_record)
            .transpose()
    }
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn create(&self, job: NewJob) -> Result<Created, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        // One writer connection: nothing interleaves with this transaction.
        let mut tx = self.writer.begin().await?;
        let by_id = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = ?1");
        let existing = sqlx::query_as::<_, JobRow>(&by_id)
            .bind(job.id().to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map(JobRow::into_record)
            .transpose()?;
        if let Some(found) = existing {
            tx.commit().await?;
            return if found.idempotency_key == job.idempotency_key && found.tenant == job.tenant {
                Ok(Created::Existing(found))
            } else {
                Err(JobStoreError::JobConflict { id: job.id() })
            };
        }
        if let Some(key) = &job.idempotency_key {
            let earlier = sqlx::query(
                "SELECT id, request_hash, idempotency_expires_at_ms FROM jobs \
                 WHERE tenant = ?1 AND idempotency_key = ?2",
            )
            .bind(&job.tenant)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = earlier {
                let id: String = row.try_get(0)?;
                let hash: Option<String> = row.try_get(1)?;
                let expires: Option<i64> = row.try_get(2)?;
                let id: JobId = id.parse().map_err(|_| corrupt("job id", &id))?;
                if expires.is_none_or(|e| to_u64(e) > now) {
                    tx.commit().await?;
                    if hash != job.request_hash {
                        return Ok(Created::KeyReused { existing: id });
                    }
                    let found = self
                        .find(id)
                        .await?
                        .ok_or_else(|| corrupt("job", &id.to_string()))?;
                    return Ok(Created::Existing(found));
                }
                sqlx::query("UPDATE jobs SET idempotency_key = NULL WHERE id = ?1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(limit) = job.max_in_flight {
            let in_flight: i64 =
                sqlx::query_scalar("SELECT count(*) FROM jobs WHERE tenant = ?1 AND status IN (?2, ?3)")
                    .bind(&job.tenant)
                    .bind(JobStatus::Queued.as_str())
                    .bind(JobStatus::Running.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            if to_u64(in_flight) >= u64::from(limit) {
                tx.commit().await?;
                return Ok(Created::TooManyInFlight { limit });
            }
        }
        let expires = job.idempotency_expires_at_ms();
        let record = job.into_record();
        let hash = record.request_hash.clone();
        let text = JobText::of(&record)?;
        sqlx::query(
            "INSERT INTO jobs (id, tenant, idempotency_key, request_hash, idempotency_expires_at_ms, admission, \
                               kind, status, current_stage, priority, request, times, created_at_ms, \
                               updated_at_ms, state, resume_stage) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11, ?12, ?12, ?13, ?14)",
        )
        .bind(record.id.to_string())
        .bind(&record.tenant)
        .bind(record.idempotency_key.as_deref())
        .bind(hash.as_deref())
        .bind(expires.map(to_i64))
        .bind(record.admission.as_str())
        .bind(record.kind.as_str())
        .bind(record.status.as_str())
        .bind(i64::from(record.priority))
        .bind(&text.request)
        .bind(&text.times)
        .bind(to_i64(record.created_at_ms))
        .bind(text.state.as_deref())
        .bind(record.resume_stage.map(Stage::as_str))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(record))
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobStoreError> {
        self.find(id).await
    }

    async fn find_by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, JobStoreError> {
        let sql = format!(
            "SELECT {JOB_SELECT} FROM jobs WHERE tenant = ?1 AND idempotency_key = ?2 \
             AND (idempotency_expires_at_ms IS NULL OR idempotency_expires_at_ms > ?3)"
        );
        sqlx::query_as::<_, JobRow>(&sql)
            .bind(tenant)
            .bind(key)
            .bind(to_i64(atelier_core::clock::now_ms()))
            .fetch_optional(&self.reader)
            .await?
            .map(JobRow::into_record)
            .transpose()
    }

    async fn set_admission(
        &self,
        id: JobId,
        admission: Admission,
        failure: Option<JobFailure>,
    ) -> Result<Option<JobRecord>, JobStoreError> {
        let mut tx = self.writer.begin().await?;
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = ?1");
        let Some(mut job) = sqlx::query_as::<_, JobRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map(JobRow::into_record)
            .transpose()?
        else {
            return Ok(None);
        };
        job.admission = admission;
        if admission == Admission::Refused {
            rules::refuse(&mut job, failure);
            job.idempotency_key = None;
        }
        let failure = job.failure.as_ref();
        sqlx::query(
            "UPDATE jobs SET admission = ?2, status = ?3, error = ?4, error_code = ?5, error_field = ?6, \
             resume_stage = ?7, updated_at_ms = ?8, idempotency_key = ?9 WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(admission.as_str())
        .bind(job.status.as_str())
        .bind(failure.map(|f| f.message.as_str()))
        .bind(failure.map(|f| f.code.as_str()))
        .bind(failure.and_then(|f| f.field.as_deref()))
        .bind(job.resume_stage.map(Stage::as_str))
        .bind(to_i64(job.updated_at_ms))
        .bind(job.idempotency_key.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    async fn mark_resumed(&self, id: JobId) -> Result<u32, JobStoreError> {
        let resumes: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET resumes = resumes + 1, admission = ?2, \
             updated_at_ms = max(updated_at_ms, ?3) WHERE id = ?1 RETURNING resumes",
        )
        .bind(id.to_string())
        .bind(Admission::Admitted.as_str())
        .bind(to_i64(atelier_core::clock::now_ms()))
        .fetch_optional(&self.writer)
        .await?;
        Ok(resumes.map_or(0, |n| u32::try_from(n).unwrap_or(0)))
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let taken: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
             WHERE leases.expires_at_ms < ?4 OR leases.holder = excluded.holder \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(to_i64(now.saturating_add(ttl_ms)))
        .bind(to_i64(now))
        .fetch_optional(&self.writer)
        .await?;
        Ok(taken.is_some())
    }

    async fn delete(&self, id: JobId) -> Result<bool, JobStoreError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn ping(&self) -> Result<(), JobStoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn apply_event(&self, event: &JobEvent) -> Result<Option<JobRecord>, JobStoreError> {
        // One writer connection: this transaction cannot interleave with another write.
        let mut tx = self.writer.begin().await?;
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = ?1");
        let Some(row) = sqlx::query_as::<_, JobRow>(&sql)
            .bind(event.job.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let job = row.into_record()?;
        let failure = event.failure.as_ref();
        let recorded = sqlx::query(
            "INSERT OR IGNORE INTO job_events \
             (job_id, kind, stage, attempt, seconds, at_ms, error, error_code, error_field, worker) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(event.job.to_string())
        .bind(event.kind.as_str())
        .bind(event.stage.map(Stage::as_str))
        .bind(i64::from(event.attempt))
        .bind(event.seconds)
        .bind(to_i64(event.at_ms))
        .bind(failure.map(|f| f.message.as_str()))
        .bind(failure.map(|f| f.code.as_str()))
        .bind(failure.and_then(|f| f.field.as_deref()))
        .bind(&event.worker)
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Some(job));
        }
        if let (EventKind::StageFinished, Some(stage)) = (event.kind, event.stage) {
            sqlx::query(
                "INSERT INTO stage_timings (job_id, stage, seconds, finished_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (job_id, stage) DO UPDATE \
                 SET seconds = excluded.seconds, finished_ms = excluded.finished_ms",
            )
            .bind(event.job.to_string())
            .bind(stage.as_str())
            .bind(event.seconds)
            .bind(to_i64(event.at_ms))
            .execute(&mut *tx)
            .await?;
        }
        let next = rules::transition(&job, event);
        if let Some(next) = &next {
            let text = JobText::of(next)?;
            let failure = next.failure.as_ref();
            sqlx::query(
                "UPDATE jobs SET status = ?2, current_stage = ?3, error = ?4, error_code = ?5, \
                 error_field = ?6, times = ?7, updated_at_ms = ?8, state = ?9, resume_stage = ?10 \
                 WHERE id = ?1",
            )
            .bind(next.id.to_string())
            .bind(next.status.as_str())
            .bind(next.current_stage.map(Stage::as_str))
            .bind(failure.map(|f| f.message.as_str()))
            .bind(failure.map(|f| f.code.as_str()))
            .bind(failure.and_then(|f| f.field.as_deref()))
            .bind(&text.times)
            .bind(to_i64(next.updated_at_ms))
            .bind(text.state.as_deref())
            .bind(next.resume_stage.map(Stage::as_str))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(next.unwrap_or(job)))
    }

    async fn events(&self, id: JobId) -> Result<Vec<StoredEvent>, JobStoreError> {
        let sql = format!("SELECT {EVENT_SELECT} FROM job_events WHERE job_id = ?1 ORDER BY seq");
        let rows = sqlx::query_as::<_, EventRow>(&sql)
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(EventRow::into_stored).collect()
    }

    async fn counts(&self) -> Result<JobCounts, JobStoreError> {
        let rows = sqlx::query("SELECT status, count(*) FROM jobs GROUP BY status")
            .fetch_all(&self.reader)
            .await?;
        let mut counts = JobCounts::default();
        for row in rows {
            let status: String = row.try_get(0)?;
            let status = JobStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?;
            counts.add(status, to_u64(row.try_get(1)?));
        }
        Ok(counts)
    }

    async fn stage_stats(&self, window_seconds: u32) -> Result<Vec<StageStats>, JobStoreError> {
        let since_ms =
            atelier_core::clock::now_ms().saturating_sub(u64::from(window_seconds) * MS_PER_SECOND);
        let mut stats = Vec::with_capacity(Stage::ALL.len());
        for stage in Stage::ALL {
            let name = stage.as_str();
            let in_stage = sqlx::query(
                "SELECT count(*) FILTER (WHERE status = ?2), count(*) FILTER (WHERE status = ?3) \
                 FROM jobs WHERE current_stage = ?1",
            )
            .bind(name)
            .bind(JobStatus::Running.as_str())
            .bind(JobStatus::Failed.as_str())
            .fetch_one(&self.reader)
            .await?;
            let completed: i64 = sqlx::query("SELECT count(*) FROM stage_timings WHERE stage = ?1")
                .bind(name)
                .fetch_one(&self.reader)
                .await?
                .try_get(0)?;
            // SQLite has no percentile_cont: the window's values are sorted by the
            // index and interpolated here, by the same rule as the other stores.
            let window: Vec<f64> = sqlx::query(
                "SELECT seconds FROM stage_timings WHERE stage = ?1 AND finished_ms >= ?2 ORDER BY seconds",
            )
            .bind(name)
            .bind(to_i64(since_ms))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| row.try_get::<f64, _>(0))
            .collect::<Result<_, _>>()?;
            stats.push(StageStats {
                stage,
                running: to_u64(in_stage.try_get(0)?),
                completed: to_u64(completed),
                failed: to_u64(in_stage.try_get(1)?),
                count_in_window: window.len() as u64,
                p50: rules::percentile_cont(&window, P50),
                p95: rules::percentile_cont(&window, P95),
                p99: rules::percentile_cont(&window, P99),
                mean: rules::mean(&window),
            });
        }
        Ok(stats)
    }

    async fn unfinished(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobRecord>, JobStoreError> {
        let sql = format!(
            "SELECT {JOB_SELECT} FROM jobs WHERE status IN (?1, ?2) AND updated_at_ms <= ?3 \
             ORDER BY updated_at_ms, id LIMIT ?4"
        );
        let rows = sqlx::query_as::<_, JobRow>(&sql)
            .bind(JobStatus::Queued.as_str())
            .bind(JobStatus::Running.as_str())
            .bind(to_i64(updated_before_ms))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(JobRow::into_record).collect()
    }

    async fn list(&self, query: &JobQuery) -> Result<JobPage, JobStoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(format!("SELECT {JOB_SELECT} FROM jobs WHERE 1 = 1"));
        if let Some(tenant) = &query.tenant {
            sql.push(" AND tenant = ").push_bind(tenant.clone());
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(stage) = query.stage {
            sql.push(" AND current_stage = ").push_bind(stage.as_str());
        }
        if let Some(since) = query.since_ms {
            sql.push(" AND created_at_ms >= ").push_bind(to_i64(since));
        }
        if let Some(after) = query.after {
            let at = to_i64(after.created_at_ms);
            sql.push(" AND (created_at_ms < ")
                .push_bind(at)
                .push(" OR (created_at_ms = ")
                .push_bind(at)
                .push(" AND id < ")
                .push_bind(after.id.to_string())
                .push("))");
        }
        sql.push(" ORDER BY created_at_ms DESC, id DESC LIMIT ")
            .push_bind(i64::from(query.fetch_size()));
        let rows = sql.build_query_as::<JobRow>().fetch_all(&self.reader).await?;
        let jobs = rows
            .into_iter()
            .map(JobRow::into_record)
            .collect::<Result<_, _>>()?;
        Ok(JobPage::from_rows(jobs, query))
    }

    async fn reopen(&self, id: JobId, stage: Stage) -> Result<Option<JobRecord>, JobStoreError> {
        let mut tx = self.writer.begin().await?;
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = ?1");
        let Some(job) = sqlx::query_as::<_, JobRow>(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map(JobRow::into_record)
            .transpose()?
        else {
            return Ok(None);
        };
        let Some(next) = rules::reopen(&job, stage, atelier_core::clock::now_ms()) else {
            return Ok(Some(job));
        };
        sqlx::query(
            "UPDATE jobs SET status = ?2, error = NULL, error_code = NULL, error_field = NULL, \
             resume_stage = ?3, updated_at_ms = ?4 WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(next.status.as_str())
        .bind(next.resume_stage.map(Stage::as_str))
        .bind(to_i64(next.updated_at_ms))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM job_events WHERE job_id = ?1 AND kind = ?2")
            .bind(id.to_string())
            .bind(EventKind::Failed.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(next))
    }

    async fn finished_before(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobId>, JobStoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE status IN (?1, ?2, ?3) AND updated_at_ms <= ?4 \
             ORDER BY updated_at_ms, id LIMIT ?5",
        )
        .bind(JobStatus::Completed.as_str())
        .bind(JobStatus::Failed.as_str())
        .bind(JobStatus::Cancelled.as_str())
        .bind(to_i64(updated_before_ms))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        ids.iter()
            .map(|id| id.parse().map_err(|_| corrupt("job id", id)))
            .collect()
    }

    async fn delete_finished(&self, ids: &[JobId]) -> Result<u64, JobStoreError> {
        let mut tx = self.writer.begin().await?;
        let mut deleted = 0;
        for id in ids {
            // Events and stage timings go with the row (ON DELETE CASCADE).
            let done = sqlx::query("DELETE FROM jobs WHERE id = ?1 AND status IN (?2, ?3, ?4)")
                .bind(id.to_string())
                .bind(JobStatus::Completed.as_str())
                .bind(JobStatus::Failed.as_str())
                .bind(JobStatus::Cancelled.as_str())
                .execute(&mut *tx)
                .await?;
            deleted += done.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn clear_expired_idempotency_keys(&self, now_ms: u64) -> Result<u64, JobStoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET idempotency_key = NULL, idempotency_expires_at_ms = NULL \
             WHERE idempotency_key IS NOT NULL AND idempotency_expires_at_ms <= ?1",
        )
        .bind(to_i64(now_ms))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn try_sweep_lock(&self) -> Result<Option<SweepLock>, JobStoreError> {
        Ok(SweepLock::try_local(&self.sweeper))
    }
}
#[async_trait]
impl KeyStore for SqliteJobStore {
    async fn create_key(&self, key: &ApiKey, hash: &str) -> Result<(), JobStoreError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO api_keys (name, tenant, key_hash, key_prefix, admin, rate_per_minute, \
                                             max_in_flight, webhook_secret, created_at_ms, revoked_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)",
        )
        .bind(&key.name)
        .bind(&key.tenant)
        .bind(hash)
        .bind(&key.prefix)
        .bind(key.admin)
        .bind(key.rate_per_minute.map(i64::from))
        .bind(key.max_in_flight.map(i64::from))
        .bind(key.webhook_secret.as_deref())
        .bind(to_i64(key.created_at_ms))
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(JobStoreError::KeyNameTaken(key.name.clone()));
        }
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, JobStoreError> {
        let sql = format!("SELECT {KEY_SELECT} FROM api_keys ORDER BY created_at_ms, name");
        let rows = sqlx::query_as::<_, KeyRow>(&sql).fetch_all(&self.reader).await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn revoke_key(&self, name: &str, at_ms: u64) -> Result<bool, JobStoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at_ms = ?2 WHERE name = ?1 AND revoked_at_ms IS NULL")
                .bind(name)
                .bind(to_i64(at_ms))
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_webhook_secret(&self, name: &str, secret: &str) -> Result<bool, JobStoreError> {
        let done = sqlx::query("UPDATE api_keys SET webhook_secret = ?2 WHERE name = ?1")
            .bind(name)
            .bind(secret)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, JobStoreError> {
        let sql = format!("SELECT {KEY_SELECT} FROM api_keys WHERE key_hash = ?1");
        let row = sqlx::query_as::<_, KeyRow>(&sql)
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(ApiKey::from))
    }
}

#[async_trait]
impl RateLimits for SqliteJobStore {
    async fn check_rate(
        &self,
        bucket: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<RateDecision, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let mut tx = self.writer.begin().await?;
        let tat: Option<i64> = sqlx::query_scalar("SELECT tat_ms FROM rate_limits WHERE bucket = ?1")
            .bind(bucket)
            .fetch_optional(&mut *tx)
            .await?;
        let (next, decision) = gcra(tat.map(to_u64), now, per_minute, burst);
        if let Some(next) = next {
            sqlx::query(
                "INSERT INTO rate_limits (bucket, tat_ms) VALUES (?1, ?2) \
                 ON CONFLICT (bucket) DO UPDATE SET tat_ms = excluded.tat_ms",
            )
            .bind(bucket)
            .bind(to_i64(next))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(decision)
    }
}
