//! [`WebhookStore`] in SQLite (`atelier serve`): one writer, so a claim is
//! one `UPDATE … RETURNING`.

use async_trait::async_trait;
use atelier_core::job::JobId;

use super::SqliteJobStore;
use crate::codec::{corrupt, to_i64};
use crate::webhooks::{DELIVERY_COLUMNS, DeliveryRow, attempt_json, events_json};
use crate::{AttemptOutcome, Delivery, DeliveryAttempt, JobStoreError, NewDelivery, Webhook, WebhookStore};

fn columns() -> String {
    DELIVERY_COLUMNS.join(", ")
}

fn rows(rows: Vec<DeliveryRow>) -> Result<Vec<Delivery>, JobStoreError> {
    rows.into_iter().map(DeliveryRow::into_delivery).collect()
}

#[async_trait]
impl WebhookStore for SqliteJobStore {
    async fn set_webhook(&self, webhook: &Webhook) -> Result<(), JobStoreError> {
        sqlx::query(
            "INSERT INTO webhooks (job_id, url, key_name, events) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (job_id) DO UPDATE SET url = ?2, key_name = ?3, events = ?4",
        )
        .bind(webhook.job.to_string())
        .bind(&webhook.url)
        .bind(webhook.key_name.as_deref())
        .bind(events_json(&webhook.events)?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn webhook(&self, job: JobId) -> Result<Option<Webhook>, JobStoreError> {
        let row: Option<(String, Option<String>, String)> =
            sqlx::query_as("SELECT url, key_name, events FROM webhooks WHERE job_id = ?1")
                .bind(job.to_string())
                .fetch_optional(&self.reader)
                .await?;
        row.map(|(url, key_name, events)| {
            Ok(Webhook {
                job,
                url,
                key_name,
                events: serde_json::from_str(&events)
                    .map_err(|e| corrupt("webhook events", &e.to_string()))?,
            })
        })
        .transpose()
    }

    async fn add_delivery(&self, d: &NewDelivery) -> Result<bool, JobStoreError> {
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (id, job_id, topic, event_type, url, key_name, body, status, \
                                             attempts, next_attempt_at_ms, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', '[]', ?8, ?8, ?8) \
             ON CONFLICT (job_id, topic) DO NOTHING",
        )
        .bind(&d.id)
        .bind(d.job.to_string())
        .bind(&d.topic)
        .bind(&d.event_type)
        .bind(&d.url)
        .bind(d.key_name.as_deref())
        .bind(&d.body)
        .bind(to_i64(d.created_at_ms))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn claim_deliveries(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: u32,
    ) -> Result<Vec<Delivery>, JobStoreError> {
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at_ms = ?2, updated_at_ms = ?1 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
                          WHERE status = 'pending' AND next_attempt_at_ms <= ?1 \
                          ORDER BY next_attempt_at_ms LIMIT ?3) \
             RETURNING {}",
            columns()
        );
        let found = sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(to_i64(now_ms))
            .bind(to_i64(now_ms.saturating_add(lease_ms)))
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await?;
        rows(found)
    }

    async fn defer_delivery(&self, id: &str, at_ms: u64) -> Result<(), JobStoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at_ms = ?2 WHERE id = ?1 AND status = 'pending'",
        )
        .bind(id)
        .bind(to_i64(at_ms))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn record_attempt(
        &self,
        id: &str,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
    ) -> Result<(), JobStoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries \
             SET attempts = json_insert(attempts, '$[#]', json(?2)), \
                 status = ?3, next_attempt_at_ms = ?4, updated_at_ms = ?5 \
             WHERE id = ?1",
        )
        .bind(id)
        .bind(attempt_json(attempt)?)
        .bind(outcome.status().as_str())
        .bind(outcome.next_at().map(to_i64))
        .bind(to_i64(attempt.at_ms.saturating_add(attempt.duration_ms)))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn deliveries(&self, job: JobId) -> Result<Vec<Delivery>, JobStoreError> {
        let sql = format!(
            "SELECT {} FROM webhook_deliveries WHERE job_id = ?1 ORDER BY created_at_ms, id",
            columns()
        );
        let found = sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(job.to_string())
            .fetch_all(&self.reader)
            .await?;
        rows(found)
    }

    async fn retry_delivery(
        &self,
        job: JobId,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Delivery>, JobStoreError> {
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at_ms = ?3, updated_at_ms = ?3 \
             WHERE job_id = ?1 AND id = ?2 RETURNING {}",
            columns()
        );
        let found = sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(job.to_string())
            .bind(id)
            .bind(to_i64(now_ms))
            .fetch_optional(&self.writer)
            .await?;
        found.map(DeliveryRow::into_delivery).transpose()
    }
}
