//! Every job event, fanned in from the broker once per gateway and out to the
//! requests waiting on a job (synchronous calls, server-sent events).

use std::sync::Arc;

use atelier_broker::Broker;
use atelier_proto::v1::JobEvent;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events a slow waiter may fall behind before it re-reads the job store.
const BACKLOG: usize = 4096;

/// In-process broadcast of the pipeline's events.
#[derive(Debug, Clone)]
pub struct EventFeed {
    tx: broadcast::Sender<Arc<JobEvent>>,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventFeed {
    /// A receiver of every event from now on. Subscribe *before* reading a
    /// job's state, so an event between the two is not missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobEvent>> {
        self.tx.subscribe()
    }

    /// Feeds events from the broker (an exclusive queue bound to every job's
    /// events) until `shutdown`.
    pub async fn run(self, broker: Broker, shutdown: CancellationToken) {
        let mut events = match broker.subscribe_events("job.#", None).await {
            Ok(events) => events,
            Err(error) => {
                tracing::error!(%error, "cannot subscribe to job events; waits fall back to polling");
                return;
            }
        };
        loop {
            let (body, acker) = tokio::select! {
                () = shutdown.cancelled() => return,
                next = events.next() => match next {
                    Some(item) => item,
                    None => return,
                },
            };
            if let Err(error) = acker.ack().await {
                tracing::debug!(%error, "ack failed; the event comes back");
            }
            match atelier_proto::decode_event(&body) {
                Ok(event) => {
                    let _ = self.tx.send(Arc::new(event));
                }
                Err(error) => tracing::warn!(%error, "undecodable job event"),
            }
        }
    }
}
