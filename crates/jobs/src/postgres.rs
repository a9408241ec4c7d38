//! Jobs in PostgreSQL, shared by every gateway and the status service.

use std::time::Duration;

use async_trait::async_trait;
use atelier_core::event::{EventKind, JobEvent, JobStatus};
use atelier_core::job::JobId;
use atelier_core::pipeline::Stage;
use atelier_core::settings::DatabaseSettings;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, Postgres, QueryBuilder, Row};

use atelier_core::event::JobFailure;

use crate::codec::{EventRow, JobRow, JobText, KeyRow, corrupt, to_i64, to_u64};
mod webhooks;

use crate::keys::gcra;
use crate::rules::{self, P50, P95, P99};
use crate::{
    Admission, ApiKey, Created, JobCounts, JobPage, JobQuery, JobRecord, JobStore, JobStoreError, KeyStore,
    NewJob, RateDecision, RateLimits, StageStats, StoredEvent, SweepLock,
};

/// The schema's migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// First half of the advisory-lock key guarding schema creation and migration
/// ("ATLR"); the second half is a hash of the schema name, so different schemas
/// do not wait on each other for this lock.
const MIGRATION_LOCK_CLASS: i32 = 0x4154_4C52;

/// Longest identifier PostgreSQL keeps without truncating.
const MAX_IDENTIFIER_LEN: usize = 63;

/// Columns of `jobs` as [`JobRow`] reads them.
const JOB_SELECT: &str = "id::text AS id, tenant, idempotency_key, request_hash, admission, resumes::bigint AS resumes, \
                          kind, status, current_stage, \
                          priority::bigint AS priority, error, error_code, error_field, \
                          times::text AS times, created_at_ms, updated_at_ms, \
                          state::text AS state, resume_stage";

/// Columns of `api_keys` as [`KeyRow`] reads them.
const KEY_SELECT: &str = "name, tenant, key_prefix, admin, rate_per_minute::bigint AS rate_per_minute, \
                          max_in_flight::bigint AS max_in_flight, webhook_secret, created_at_ms, revoked_at_ms";

/// First half of the advisory-lock key serialising one tenant's job creations
/// ("ATLT"), so its in-flight limit and idempotency keys hold across gateways.
const TENANT_LOCK_CLASS: i32 = 0x4154_4C54;

/// First half of the advisory-lock key of the retention sweeper ("ATLS"); the
/// second half is a hash of the schema name.
const SWEEP_LOCK_CLASS: i32 = 0x4154_4C53;

/// Columns of `job_events` as [`EventRow`] reads them.
const EVENT_SELECT: &str = "seq, job_id::text AS job_id, kind, stage, attempt, seconds, at_ms, \
                            error, error_code, error_field, worker";

/// A [`JobStore`] over a PostgreSQL pool whose connections all work inside one
/// schema. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgJobStore {
    pool: PgPool,
    /// How to open a connection outside the pool (the sweeper's lock).
    options: PgConnectOptions,
    /// The schema: advisory locks are per schema, so environments sharing a
    /// database do not wait on each other.
    schema: String,
}

impl PgJobStore {
    /// Connects, creates the schema when missing and brings it up to date.
    ///
    /// Safe to call from several services starting at once: creation and
    /// migration run under an advisory lock on a dedicated connection, which is
    /// closed afterwards so a failure cannot leave the lock held in the pool.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, JobStoreError> {
        let schema = validate_schema(&settings.schema)?;
        let options: PgConnectOptions = settings.url.parse()?;
        let timeout = Duration::from_millis(settings.connect_timeout_ms);
        migrate(&options, schema, timeout).await?;

        let set_path = search_path_sql(schema);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(timeout)
            .after_connect(move |conn, _meta| {
                let sql = set_path.clone();
                Box::pin(async move { conn.execute(sql.as_str()).await.map(drop) })
            })
            .connect_with(options.clone())
            .await?;
        Ok(Self {
            pool,
            options,
            schema: schema.to_string(),
        })
    }

    /// The underlying pool (every connection's `search_path` is the schema).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn find(&self, id: JobId) -> Result<Option<JobRecord>, JobStoreError> {
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = $1");
        sqlx::query_as::<_, JobRow>(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .map(JobRow::into_record)
            .transpose()
    }
}

/// Creates and migrates `schema` on a connection of its own.
async fn migrate(options: &PgConnectOptions, schema: &str, timeout: Duration) -> Result<(), JobStoreError> {
    let mut conn = tokio::time::timeout(timeout, PgConnection::connect_with(options))
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting to the job database timed out",
            ))
        })??;
    // CREATE SCHEMA IF NOT EXISTS is not race-free on its own (two sessions can
    // both miss it and one fails on the catalog's unique index), hence the lock.
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind(MIGRATION_LOCK_CLASS)
        .bind(schema)
        .execute(&mut conn)
        .await?;
    conn.execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str())
        .await?;
    conn.execute(search_path_sql(schema).as_str()).await?;
    // `_sqlx_migrations` is created unqualified, so it lands in this schema and
    // each schema tracks its own migrations.
    MIGRATOR.run_direct(&mut conn).await?;
    sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
        .bind(MIGRATION_LOCK_CLASS)
        .bind(schema)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Checks `schema` is a plain lowercase identifier, which makes quoting it into
/// SQL text (identifiers cannot be bound) safe.
fn validate_schema(schema: &str) -> Result<&str, JobStoreError> {
    let mut bytes = schema.bytes();
    let valid = matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && schema.len() <= MAX_IDENTIFIER_LEN;
    if valid {
        Ok(schema)
    } else {
        Err(JobStoreError::InvalidSchema(schema.to_string()))
    }
}

fn search_path_sql(schema: &str) -> String {
    format!("SET search_path TO \"{schema}\"")
}

#[async_trait]
impl JobStore for PgJobStore {
    async fn create(&self, job: NewJob) -> Result<Created, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let mut tx = self.pool.begin().await?;
        // One creation per tenant at a time, across every gateway: the
        // in-flight count and the idempotency check below cannot race.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(TENANT_LOCK_CLASS)
            .bind(&job.tenant)
            .execute(&mut *tx)
            .await?;
        if let Some(key) = &job.idempotency_key {
            let earlier = sqlx::query(
                "SELECT id, request_hash, idempotency_expires_at_ms FROM jobs \
                 WHERE tenant = $1 AND idempotency_key = $2",
            )
            .bind(&job.tenant)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = earlier {
                let id: uuid::Uuid = row.try_get(0)?;
                let hash: Option<String> = row.try_get(1)?;
                let expires: Option<i64> = row.try_get(2)?;
                if expires.is_none_or(|e| to_u64(e) > now) {
                    tx.commit().await?;
                    if hash != job.request_hash {
                        return Ok(Created::KeyReused { existing: JobId(id) });
                    }
                    let found = self
                        .find(JobId(id))
                        .await?
                        .ok_or_else(|| corrupt("job", &id.to_string()))?;
                    return Ok(Created::Existing(found));
                }
                sqlx::query("UPDATE jobs SET idempotency_key = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(limit) = job.max_in_flight {
            let in_flight: i64 =
                sqlx::query_scalar("SELECT count(*) FROM jobs WHERE tenant = $1 AND status IN ($2, $3)")
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
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, tenant, idempotency_key, request_hash, idempotency_expires_at_ms, admission, \
                               kind, status, current_stage, priority, request, times, created_at_ms, \
                               updated_at_ms, state, resume_stage) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10::jsonb, $11::jsonb, $12, $12, $13::jsonb, $14) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(record.id.0)
        .bind(&record.tenant)
        .bind(record.idempotency_key.as_deref())
        .bind(hash.as_deref())
        .bind(expires.map(to_i64))
        .bind(record.admission.as_str())
        .bind(record.kind.as_str())
        .bind(record.status.as_str())
        .bind(i16::from(record.priority))
        .bind(&text.request)
        .bind(&text.times)
        .bind(to_i64(record.created_at_ms))
        .bind(text.state.as_deref())
        .bind(record.resume_stage.map(Stage::as_str))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if inserted.rows_affected() > 0 {
            return Ok(Created::New(record));
        }
        // The id is taken: the same submission again (a retry), or a caller bug.
        match self.find(record.id).await? {
            Some(found)
                if found.idempotency_key == record.idempotency_key && found.tenant == record.tenant =>
            {
                Ok(Created::Existing(found))
            }
            _ => Err(JobStoreError::JobConflict { id: record.id }),
        }
    }

    async fn find_by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, JobStoreError> {
        let sql = format!(
            "SELECT {JOB_SELECT} FROM jobs WHERE tenant = $1 AND idempotency_key = $2 \
             AND (idempotency_expires_at_ms IS NULL OR idempotency_expires_at_ms > $3)"
        );
        sqlx::query_as::<_, JobRow>(&sql)
            .bind(tenant)
            .bind(key)
            .bind(to_i64(atelier_core::clock::now_ms()))
            .fetch_optional(&self.pool)
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
        // Under the row lock, as `apply_event`: a worker can start the job
        // before the gateway records its admission, and writing back a row
        // read earlier would put a running job back to `queued`.
        let mut tx = self.pool.begin().await?;
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = $1 FOR UPDATE");
        let Some(mut job) = sqlx::query_as::<_, JobRow>(&sql)
            .bind(id.0)
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
            "UPDATE jobs SET admission = $2, status = $3, error = $4, error_code = $5, error_field = $6, \
             resume_stage = $7, updated_at_ms = $8, idempotency_key = $9 WHERE id = $1",
        )
        .bind(id.0)
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
        let resumes: Option<i32> = sqlx::query_scalar(
            "UPDATE jobs SET resumes = resumes + 1, admission = $2, \
             updated_at_ms = GREATEST(updated_at_ms, $3) WHERE id = $1 RETURNING resumes",
        )
        .bind(id.0)
        .bind(Admission::Admitted.as_str())
        .bind(to_i64(atelier_core::clock::now_ms()))
        .fetch_optional(&self.pool)
        .await?;
        Ok(resumes.map_or(0, |n| u32::try_from(n).unwrap_or(0)))
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let taken: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at_ms = EXCLUDED.expires_at_ms \
             WHERE leases.expires_at_ms < $4 OR leases.holder = EXCLUDED.holder \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(to_i64(now.saturating_add(ttl_ms)))
        .bind(to_i64(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    async fn delete(&self, id: JobId) -> Result<bool, JobStoreError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// One round trip to the database.
    async fn ping(&self) -> Result<(), JobStoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobStoreError> {
        self.find(id).await
    }

    async fn apply_event(&self, event: &JobEvent) -> Result<Option<JobRecord>, JobStoreError> {
        let mut tx = self.pool.begin().await?;
        // The row lock serialises events of one job, so the duplicate check and
        // the transition below see each other's effects.
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = $1 FOR UPDATE");
        let Some(row) = sqlx::query_as::<_, JobRow>(&sql)
            .bind(event.job.0)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let job = row.into_record()?;
        let failure = event.failure.as_ref();
        let recorded = sqlx::query(
            "INSERT INTO job_events \
             (job_id, kind, stage, attempt, seconds, at_ms, error, error_code, error_field, worker) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT DO NOTHING RETURNING seq",
        )
        .bind(event.job.0)
        .bind(event.kind.as_str())
        .bind(event.stage.map(Stage::as_str))
        .bind(i64::from(event.attempt))
        .bind(event.seconds)
        .bind(to_i64(event.at_ms))
        .bind(failure.map(|f| f.message.as_str()))
        .bind(failure.map(|f| f.code.as_str()))
        .bind(failure.and_then(|f| f.field.as_deref()))
        .bind(&event.worker)
        .fetch_optional(&mut *tx)
        .await?;
        if recorded.is_none() {
            // A redelivery: already applied.
            tx.rollback().await?;
            return Ok(Some(job));
        }

        if let (EventKind::StageFinished, Some(stage)) = (event.kind, event.stage) {
            // Recorded even for a finished job: the stage really ran that long.
            sqlx::query(
                "INSERT INTO stage_timings (job_id, stage, seconds, finished_at) \
                 VALUES ($1, $2, $3, to_timestamp($4::double precision / $5)) \
                 ON CONFLICT (job_id, stage) DO UPDATE \
                 SET seconds = EXCLUDED.seconds, finished_at = EXCLUDED.finished_at",
            )
            .bind(event.job.0)
            .bind(stage.as_str())
            .bind(event.seconds)
            .bind(to_i64(event.at_ms))
            .bind(rules::MS_PER_SECOND as f64)
            .execute(&mut *tx)
            .await?;
        }

        let next = rules::transition(&job, event);
        if let Some(next) = &next {
            let text = JobText::of(next)?;
            let failure = next.failure.as_ref();
            sqlx::query(
                "UPDATE jobs SET status = $2, current_stage = $3, error = $4, error_code = $5, \
                 error_field = $6, times = $7::jsonb, updated_at_ms = $8, state = $9::jsonb, \
                 resume_stage = $10 WHERE id = $1",
            )
            .bind(next.id.0)
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
        let sql = format!("SELECT {EVENT_SELECT} FROM job_events WHERE job_id = $1 ORDER BY seq");
        let rows = sqlx::query_as::<_, EventRow>(&sql)
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(EventRow::into_stored).collect()
    }

    async fn counts(&self) -> Result<JobCounts, JobStoreError> {
        let rows = sqlx::query("SELECT status, count(*) FROM jobs GROUP BY status")
            .fetch_all(&self.pool)
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
        let mut stats: Vec<StageStats> = Stage::ALL.into_iter().map(StageStats::empty).collect();
        let slot = |stats: &mut Vec<StageStats>, name: &str| {
            let stage = Stage::parse(name).ok_or_else(|| corrupt("stage", name))?;
            stats
                .iter()
                .position(|s| s.stage == stage)
                .ok_or_else(|| corrupt("stage", name))
        };

        let jobs = sqlx::query(
            "SELECT current_stage, \
                    count(*) FILTER (WHERE status = $1), \
                    count(*) FILTER (WHERE status = $2) \
             FROM jobs WHERE current_stage IS NOT NULL AND status IN ($1, $2) \
             GROUP BY current_stage",
        )
        .bind(JobStatus::Running.as_str())
        .bind(JobStatus::Failed.as_str())
        .fetch_all(&self.pool)
        .await?;
        for row in jobs {
            let i = slot(&mut stats, row.try_get(0)?)?;
            stats[i].running = to_u64(row.try_get(1)?);
            stats[i].failed = to_u64(row.try_get(2)?);
        }

        let finished = sqlx::query("SELECT stage, count(*) FROM stage_timings GROUP BY stage")
            .fetch_all(&self.pool)
            .await?;
        for row in finished {
            let i = slot(&mut stats, row.try_get(0)?)?;
            stats[i].completed = to_u64(row.try_get(1)?);
        }

        let recent = sqlx::query(
            "SELECT stage, count(*), avg(seconds), \
                    percentile_cont($2) WITHIN GROUP (ORDER BY seconds), \
                    percentile_cont($3) WITHIN GROUP (ORDER BY seconds), \
                    percentile_cont($4) WITHIN GROUP (ORDER BY seconds) \
             FROM stage_timings \
             WHERE finished_at >= now() - make_interval(secs => $1) \
             GROUP BY stage",
        )
        .bind(f64::from(window_seconds))
        .bind(P50)
        .bind(P95)
        .bind(P99)
        .fetch_all(&self.pool)
        .await?;
        for row in recent {
            let i = slot(&mut stats, row.try_get(0)?)?;
            let s = &mut stats[i];
            s.count_in_window = to_u64(row.try_get(1)?);
            s.mean = row.try_get::<Option<f64>, _>(2)?.unwrap_or(0.0);
            s.p50 = row.try_get::<Option<f64>, _>(3)?.unwrap_or(0.0);
            s.p95 = row.try_get::<Option<f64>, _>(4)?.unwrap_or(0.0);
            s.p99 = row.try_get::<Option<f64>, _>(5)?.unwrap_or(0.0);
        }
        Ok(stats)
    }

    async fn unfinished(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobRecord>, JobStoreError> {
        let sql = format!(
            "SELECT {JOB_SELECT} FROM jobs WHERE status IN ($1, $2) AND updated_at_ms <= $3 \
             ORDER BY updated_at_ms, id LIMIT $4"
        );
        let rows = sqlx::query_as::<_, JobRow>(&sql)
            .bind(JobStatus::Queued.as_str())
            .bind(JobStatus::Running.as_str())
            .bind(to_i64(updated_before_ms))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(JobRow::into_record).collect()
    }

    async fn list(&self, query: &JobQuery) -> Result<JobPage, JobStoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_SELECT} FROM jobs WHERE true"));
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
            sql.push(" AND (created_at_ms, id) < (")
                .push_bind(to_i64(after.created_at_ms))
                .push(", ")
                .push_bind(after.id.0)
                .push(")");
        }
        sql.push(" ORDER BY created_at_ms DESC, id DESC LIMIT ")
            .push_bind(i64::from(query.fetch_size()));
        let rows = sql.build_query_as::<JobRow>().fetch_all(&self.pool).await?;
        let jobs = rows
            .into_iter()
            .map(JobRow::into_record)
            .collect::<Result<_, _>>()?;
        Ok(JobPage::from_rows(jobs, query))
    }

    async fn reopen(&self, id: JobId, stage: Stage) -> Result<Option<JobRecord>, JobStoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!("SELECT {JOB_SELECT} FROM jobs WHERE id = $1 FOR UPDATE");
        let Some(job) = sqlx::query_as::<_, JobRow>(&sql)
            .bind(id.0)
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
            "UPDATE jobs SET status = $2, error = NULL, error_code = NULL, error_field = NULL, \
             resume_stage = $3, updated_at_ms = $4 WHERE id = $1",
        )
        .bind(id.0)
        .bind(next.status.as_str())
        .bind(next.resume_stage.map(Stage::as_str))
        .bind(to_i64(next.updated_at_ms))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM job_events WHERE job_id = $1 AND kind = $2")
            .bind(id.0)
            .bind(EventKind::Failed.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(next))
    }

    async fn finished_before(&self, updated_before_ms: u64, limit: u32) -> Result<Vec<JobId>, JobStoreError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE status IN ($1, $2, $3) AND updated_at_ms <= $4 \
             ORDER BY updated_at_ms, id LIMIT $5",
        )
        .bind(JobStatus::Completed.as_str())
        .bind(JobStatus::Failed.as_str())
        .bind(JobStatus::Cancelled.as_str())
        .bind(to_i64(updated_before_ms))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(JobId).collect())
    }

    async fn delete_finished(&self, ids: &[JobId]) -> Result<u64, JobStoreError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
        // Events and stage timings go with the rows (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM jobs WHERE id = ANY($1) AND status IN ($2, $3, $4)")
            .bind(&ids)
            .bind(JobStatus::Completed.as_str())
            .bind(JobStatus::Failed.as_str())
            .bind(JobStatus::Cancelled.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn clear_expired_idempotency_keys(&self, now_ms: u64) -> Result<u64, JobStoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET idempotency_key = NULL, idempotency_expires_at_ms = NULL \
             WHERE idempotency_key IS NOT NULL AND idempotency_expires_at_ms <= $1",
        )
        .bind(to_i64(now_ms))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn try_sweep_lock(&self) -> Result<Option<SweepLock>, JobStoreError> {
        let mut conn = PgConnection::connect_with(&self.options).await?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(SWEEP_LOCK_CLASS)
            .bind(&self.schema)
            .fetch_one(&mut conn)
            .await?;
        if taken {
            Ok(Some(SweepLock::postgres(
                conn,
                SWEEP_LOCK_CLASS,
                self.schema.clone(),
            )))
        } else {
            conn.close().await?;
            Ok(None)
        }
    }
}

#[async_trait]
impl KeyStore for PgJobStore {
    async fn create_key(&self, key: &ApiKey, hash: &str) -> Result<(), JobStoreError> {
        let done = sqlx::query(
            "INSERT INTO api_keys (name, tenant, key_hash, key_prefix, admin, rate_per_minute, max_in_flight, \
                                   webhook_secret, created_at_ms, revoked_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) ON CONFLICT (name) DO NOTHING",
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
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(JobStoreError::KeyNameTaken(key.name.clone()));
        }
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, JobStoreError> {
        let sql = format!("SELECT {KEY_SELECT} FROM api_keys ORDER BY created_at_ms, name");
        let rows = sqlx::query_as::<_, KeyRow>(&sql).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn revoke_key(&self, name: &str, at_ms: u64) -> Result<bool, JobStoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at_ms = $2 WHERE name = $1 AND revoked_at_ms IS NULL")
                .bind(name)
                .bind(to_i64(at_ms))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_webhook_secret(&self, name: &str, secret: &str) -> Result<bool, JobStoreError> {
        let done = sqlx::query("UPDATE api_keys SET webhook_secret = $2 WHERE name = $1")
            .bind(name)
            .bind(secret)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, JobStoreError> {
        let sql = format!("SELECT {KEY_SELECT} FROM api_keys WHERE key_hash = $1");
        let row = sqlx::query_as::<_, KeyRow>(&sql)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(ApiKey::from))
    }
}

#[async_trait]
impl RateLimits for PgJobStore {
    async fn check_rate(
        &self,
        bucket: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<RateDecision, JobStoreError> {
        let now = atelier_core::clock::now_ms();
        let mut tx = self.pool.begin().await?;
        // Make sure the row exists, then lock it: concurrent checks of one
        // bucket from any number of gateways take turns.
        sqlx::query(
            "INSERT INTO rate_limits (bucket, tat_ms) VALUES ($1, 0) ON CONFLICT (bucket) DO NOTHING",
        )
        .bind(bucket)
        .execute(&mut *tx)
        .await?;
        let tat: i64 = sqlx::query_scalar("SELECT tat_ms FROM rate_limits WHERE bucket = $1 FOR UPDATE")
            .bind(bucket)
            .fetch_one(&mut *tx)
            .await?;
        let (next, decision) = gcra(Some(to_u64(tat)), now, per_minute, burst);
        if let Some(next) = next {
            sqlx::query("UPDATE rate_limits SET tat_ms = $2 WHERE bucket = $1")
                .bind(bucket)
                .bind(to_i64(next))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["atelier", "_x", "t_0123abc"] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        for bad in ["", "Atelier", "1abc", "a-b", "a\"; DROP", too_long.as_str()] {
            assert!(
                matches!(validate_schema(bad), Err(JobStoreError::InvalidSchema(_))),
                "{bad}"
            );
        }
    }
}
