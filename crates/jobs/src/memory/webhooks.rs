//! [`WebhookStore`] in memory, with the SQL stores' rules.

use async_trait::async_trait;
use atelier_core::job::JobId;

use super::MemoryJobStore;
use crate::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryStatus, JobStoreError, NewDelivery, Webhook,
    WebhookStore,
};

#[async_trait]
impl WebhookStore for MemoryJobStore {
    async fn set_webhook(&self, webhook: &Webhook) -> Result<(), JobStoreError> {
        let mut inner = self.inner.lock().await;
        inner.webhooks.insert(webhook.job, webhook.clone());
        Ok(())
    }

    async fn webhook(&self, job: JobId) -> Result<Option<Webhook>, JobStoreError> {
        Ok(self.inner.lock().await.webhooks.get(&job).cloned())
    }

    async fn add_delivery(&self, d: &NewDelivery) -> Result<bool, JobStoreError> {
        let mut inner = self.inner.lock().await;
        if inner
            .deliveries
            .iter()
            .any(|e| e.job == d.job && e.topic == d.topic)
        {
            return Ok(false);
        }
        inner.deliveries.push(Delivery {
            id: d.id.clone(),
            job: d.job,
            topic: d.topic.clone(),
            event_type: d.event_type.clone(),
            url: d.url.clone(),
            key_name: d.key_name.clone(),
            body: d.body.clone(),
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            next_attempt_at_ms: Some(d.created_at_ms),
            created_at_ms: d.created_at_ms,
            updated_at_ms: d.created_at_ms,
        });
        Ok(true)
    }

    async fn claim_deliveries(
        &self,
        now_ms: u64,
        lease_ms: u64,
        limit: u32,
    ) -> Result<Vec<Delivery>, JobStoreError> {
        let mut inner = self.inner.lock().await;
        let mut due: Vec<&mut Delivery> = inner
            .deliveries
            .iter_mut()
            .filter(|d| {
                d.status == DeliveryStatus::Pending && d.next_attempt_at_ms.is_some_and(|at| at <= now_ms)
            })
            .collect();
        due.sort_by_key(|d| d.next_attempt_at_ms);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(due
            .into_iter()
            .take(limit)
            .map(|d| {
                d.next_attempt_at_ms = Some(now_ms.saturating_add(lease_ms));
                d.updated_at_ms = now_ms;
                d.clone()
            })
            .collect())
    }

    async fn defer_delivery(&self, id: &str, at_ms: u64) -> Result<(), JobStoreError> {
        let mut inner = self.inner.lock().await;
        if let Some(d) = inner
            .deliveries
            .iter_mut()
            .find(|d| d.id == id && d.status == DeliveryStatus::Pending)
        {
            d.next_attempt_at_ms = Some(at_ms);
        }
        Ok(())
    }

    async fn record_attempt(
        &self,
        id: &str,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
    ) -> Result<(), JobStoreError> {
        let mut inner = self.inner.lock().await;
        if let Some(d) = inner.deliveries.iter_mut().find(|d| d.id == id) {
            d.attempts.push(attempt.clone());
            d.status = outcome.status();
            d.next_attempt_at_ms = outcome.next_at();
            d.updated_at_ms = attempt.at_ms.saturating_add(attempt.duration_ms);
        }
        Ok(())
    }

    async fn deliveries(&self, job: JobId) -> Result<Vec<Delivery>, JobStoreError> {
        let inner = self.inner.lock().await;
        Ok(inner
            .deliveries
            .iter()
            .filter(|d| d.job == job)
            .cloned()
            .collect())
    }

    async fn retry_delivery(
        &self,
        job: JobId,
        id: &str,
        now_ms: u64,
    ) -> Result<Option<Delivery>, JobStoreError> {
        let mut inner = self.inner.lock().await;
        Ok(inner
            .deliveries
            .iter_mut()
            .find(|d| d.job == job && d.id == id)
            .map(|d| {
                d.status = DeliveryStatus::Pending;
                d.next_attempt_at_ms = Some(now_ms);
                d.updated_at_ms = now_ms;
                d.clone()
            }))
    }
}
