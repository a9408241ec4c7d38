//! Events off the durable status queue into the job store, then to watchers.

use std::sync::Arc;
use std::time::Duration;

use atelier_broker::Broker;
use atelier_storage::JobStore;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::EventHub;
use crate::convert::record_of;

/// Pause before retrying an event the store could not take (the database is
/// down); the event stays unacked meanwhile, so nothing is lost.
const STORE_RETRY: Duration = Duration::from_millis(500);

/// Records every job event until `shutdown`. An event is acked only once the
/// store has it, so a crash or a database outage replays instead of losing it;
/// events are idempotent in the store, so replays are harmless.
pub async fn record_events(
    broker: Broker,
    queue: String,
    store: Arc<dyn JobStore>,
    hub: EventHub,
    shutdown: CancellationToken,
) -> Result<(), atelier_broker::BrokerError> {
    let mut events = broker.subscribe_events("job.#", Some(&queue)).await?;
    loop {
        let (body, acker) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = events.next() => match next {
                Some(item) => item,
                None => return Ok(()),
            },
        };
        let event = match atelier_proto::decode_event(&body) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "dropping an undecodable event");
                if let Err(error) = acker.ack().await {
                    tracing::debug!(%error, "ack failed; the event comes back");
                }
                continue;
            }
        };
        let Some(record) = record_of(&event) else {
            tracing::warn!(job = %event.job_id, kind = event.kind, "dropping an invalid event");
            if let Err(error) = acker.ack().await {
                tracing::debug!(%error, "ack failed; the event comes back");
            }
            continue;
        };
        loop {
            match store.apply_event(&record).await {
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, job = %record.job_id, "cannot record event; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(STORE_RETRY) => {}
                    }
                }
            }
        }
        if let Err(error) = acker.ack().await {
            tracing::debug!(%error, "ack failed; the event comes back");
        }
        hub.publish(event);
    }
}
