//! Events off the durable status feed into the job store, then to watchers.

use std::sync::Arc;
use std::time::Duration;

use atelier_bus::{JobBus, StatusEvent};
use atelier_core::error::error_chain;
use atelier_core::event::JobEvent;
use atelier_jobs::{JobRecord, JobStoreError, Store};
use atelier_telemetry::metrics::JOBS;
use atelier_webhooks::Sender;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::EventHub;

/// First pause before retrying an event the store could not take (the database
/// is down); the event stays unacknowledged meanwhile, so nothing is lost.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(200);
/// Longest pause between retries of one event.
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Records every job event until `shutdown`, and the webhook delivery of
/// each one its job's `callbackUrl` wants (then wakes `sender`). An event is acknowledged only once
/// the store has it, so a crash or a database outage replays instead of losing
/// it (events are idempotent in the store). An event the store refuses for good
/// (a value it cannot hold) is dead-lettered with the reason, and the events
/// behind it flow on.
pub async fn record_events(
    bus: JobBus,
    store: Arc<dyn Store>,
    hub: EventHub,
    sender: Sender,
    shutdown: CancellationToken,
) -> Result<(), atelier_bus::BrokerError> {
    let mut events = bus.subscribe_status().await?;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = events.next() => next,
        };
        let Some(received) = next else {
            return Ok(());
        };
        // Recording joins the trace of the span that emitted the event.
        let span = tracing::info_span!(
            "record event",
            otel.name = %format!("record {}", received.event.kind),
            otel.kind = "consumer",
            job_id = %received.event.job,
            kind = received.event.kind.as_str(),
            trace_id = Empty,
        );
        atelier_telemetry::continue_trace(&span, received.traceparent.as_deref());
        if !record(&*store, received, &hub, &sender, &shutdown)
            .instrument(span)
            .await
        {
            return Ok(());
        }
    }
}

/// Stores one event; `false` when shutdown came first (it stays unacknowledged).
async fn record(
    store: &dyn Store,
    received: StatusEvent,
    hub: &EventHub,
    sender: &Sender,
    shutdown: &CancellationToken,
) -> bool {
    let mut pause = STORE_RETRY_FIRST;
    loop {
        let recorded = match store.apply_event(&received.event).await {
            Ok(Some(job)) => add_delivery(store, &received.event, &job, sender).await,
            other => other.map(drop),
        };
        match recorded {
            Ok(()) => {
                let event = received.event.clone();
                received.ack().await;
                // A redelivered final event counts again; rare (a crash between
                // storing and acknowledging) and harmless to a rate.
                if let Some(outcome) = event.kind.final_status() {
                    metrics::counter!(JOBS, "outcome" => outcome.as_str()).increment(1);
                }
                hub.publish(event);
                return true;
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(error = %error_chain(&error), job = %received.event.job, "cannot record event; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(STORE_RETRY_MAX);
            }
            Err(error) => {
                let reason = format!("the job store refused the event: {}", error_chain(&error));
                tracing::error!(job = %received.event.job, %reason, "dead-lettering an event");
                if let Err(e) = received.dead_letter(&reason).await {
                    tracing::warn!(error = %e, "could not dead-letter the event; it comes back");
                }
                return true;
            }
        }
    }
}

/// Stores the delivery of `event` when the job has a webhook that wants it
/// (once: an event recorded again finds its delivery there).
async fn add_delivery(
    store: &dyn Store,
    event: &JobEvent,
    job: &JobRecord,
    sender: &Sender,
) -> Result<(), JobStoreError> {
    if atelier_webhooks::event_type(event.kind).is_none() {
        return Ok(());
    }
    let Some(hook) = store.webhook(job.id).await? else {
        return Ok(());
    };
    match atelier_webhooks::delivery_for(&hook, event, job, atelier_core::clock::now_ms()) {
        Ok(Some(delivery)) => {
            if store.add_delivery(&delivery).await? {
                sender.wake();
            }
        }
        Ok(None) => {}
        Err(error) => {
            tracing::error!(job = %job.id, error = %error_chain(&error), "cannot build a webhook delivery")
        }
    }
    Ok(())
}
