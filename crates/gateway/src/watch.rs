//! Every job event, fanned in from the bus once per gateway and out to the
//! requests waiting on a job (synchronous calls, server-sent events). The job
//! store stays the source of truth: news from the feed only says when to look.

use std::sync::Arc;
use std::time::Duration;

use atelier_bus::{JobBus, Received};
use atelier_core::event::JobEvent;
use atelier_core::job::JobId;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Events a slow waiter may fall behind before it re-reads the job store.
const BACKLOG: usize = 4096;
/// How long after an event the store may take to show it (the status service
/// records it), and the first pause of that wait.
const SETTLE_LIMIT: Duration = Duration::from_secs(2);
const SETTLE_FIRST: Duration = Duration::from_millis(5);

/// One feed item: an event, or word that some were missed.
#[derive(Debug, Clone)]
pub enum News {
    Event(Arc<JobEvent>),
    Missed,
}

/// In-process broadcast of the pipeline's events.
#[derive(Debug, Clone)]
pub struct EventFeed {
    tx: broadcast::Sender<News>,
}

impl Default for EventFeed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl EventFeed {
    /// A watcher of job `id` from now on. Watch *before* reading the job, so an
    /// event between the two is not missed.
    pub fn watch(&self, id: JobId) -> JobWatch {
        JobWatch {
            id,
            rx: self.tx.subscribe(),
        }
    }

    /// Every job's news from now on (the console's live view).
    pub fn subscribe_all(&self) -> broadcast::Receiver<News> {
        self.tx.subscribe()
    }

    /// Feeds events from the bus until `shutdown`. The bus subscription is made
    /// before this returns, so events published afterwards reach watchers.
    pub async fn start(
        self,
        bus: &JobBus,
        shutdown: CancellationToken,
    ) -> Result<(), atelier_bus::BrokerError> {
        let mut events = bus.subscribe(None).await?;
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = events.next() => next,
                };
                let news = match next {
                    Some(Received::Message(event)) => News::Event(Arc::new(event)),
                    Some(Received::Lagged(_)) => News::Missed,
                    Some(Received::Undecodable(_)) => continue,
                    None => return,
                };
                // Nobody waiting is fine.
                let _ = self.tx.send(news);
            }
        });
        Ok(())
    }
}

/// What a watcher learned.
#[derive(Debug, Clone, PartialEq)]
pub enum Wake {
    /// An event of this job: look at the store (it may take a moment to show it).
    Event(Arc<JobEvent>),
    /// Events may have been missed: look at the store.
    Missed,
    /// Nothing happened until the deadline.
    Timeout,
}

/// Waits for news of one job.
#[derive(Debug)]
pub struct JobWatch {
    id: JobId,
    rx: broadcast::Receiver<News>,
}

impl JobWatch {
    /// The next news of this job, or `Timeout` at `until`.
    pub async fn next(&mut self, until: Instant) -> Wake {
        loop {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Err(_) => return Wake::Timeout,
                Ok(Ok(News::Event(event))) if event.job == self.id => return Wake::Event(event),
                Ok(Ok(News::Event(_))) => {}
                Ok(Ok(News::Missed) | Err(broadcast::error::RecvError::Lagged(_))) => return Wake::Missed,
                // The feed is gone (shutdown): only the store is left.
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep_until(until).await;
                    return Wake::Timeout;
                }
            }
        }
    }
}

/// Polls `check` with growing pauses for up to [`SETTLE_LIMIT`]: the store
/// catching up with an event the feed already announced.
pub async fn settle<T, E, F, Fut>(mut check: F) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut pause = SETTLE_FIRST;
    loop {
        if let Some(found) = check().await? {
            return Ok(Some(found));
        }
        if Instant::now() + pause > deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
