//! Fan-out of recorded events to `WatchJob` streams in this process.

use std::sync::Arc;

use atelier_core::event::JobEvent;
use tokio::sync::broadcast;

/// Events waiting for a slow watcher before it starts missing some (it then
/// falls back to the store's copy).
const BACKLOG: usize = 1024;

/// Broadcasts every event after it is recorded.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<JobEvent>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventHub {
    /// Sends `event` to every current watcher.
    pub fn publish(&self, event: JobEvent) {
        // No watcher is not an error.
        let _ = self.tx.send(Arc::new(event));
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobEvent>> {
        self.tx.subscribe()
    }
}
