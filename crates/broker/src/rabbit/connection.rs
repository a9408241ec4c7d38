//! The one connection a process keeps, its re-establishment with exponential
//! backoff, and the [`Broker`] handle every other module hangs off.
//!
//! lapin's own auto-recovery replays topology it saw declared, but not our
//! confirm pool, subscriptions' server-named queues or consumer semaphores; one
//! supervisor task that owns the connection and publishes "connected or not"
//! through a `watch` keeps every consumer of the connection simple: wait for a
//! [`Live`] connection, use it until it fails, wait again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atelier_core::settings::BrokerSettings;
use futures::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::{Mutex, MutexGuard, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::topology::declare_topology;
use crate::error::BrokerError;
use crate::names::Names;

/// Channels with confirms kept per connection for publishing. A publish holds
/// one for its confirm round trip, so a returned (unroutable) message can be
/// attributed to exactly its own publish; a few of them let concurrent
/// publishers overlap.
const PUBLISH_CHANNELS: usize = 4;

/// How often the supervisor double-checks the connection status, in case the
/// failure event was missed.
const STATUS_POLL: Duration = Duration::from_millis(250);

/// An established connection and its publishing channels.
pub(crate) struct Live {
    pub(crate) conn: Connection,
    publishers: Vec<Mutex<Option<Channel>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("connected", &self.conn.status().connected())
            .finish()
    }
}

impl Live {
    /// A confirm-mode channel for one publish, locked for its duration. A channel
    /// the broker closed (e.g. after a publish to a deleted exchange) is
    /// replaced instead of poisoning every later publish.
    pub(crate) async fn publisher(&self) -> Result<(MutexGuard<'_, Option<Channel>>, Channel), BrokerError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.publishers.len();
        let mut guard = self.publishers[i].lock().await;
        let usable = guard
            .as_ref()
            .is_some_and(|ch| ch.status().connected() && ch.status().confirm());
        if !usable {
            let ch = self
                .conn
                .create_channel()
                .await
                .map_err(|e| BrokerError::unavailable("open publish channel", &e))?;
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| BrokerError::unavailable("confirm.select", &e))?;
            *guard = Some(ch);
        }
        let ch = guard
            .as_ref()
            .cloned()
            .ok_or_else(|| BrokerError::Unavailable("no publish channel".into()))?;
        Ok((guard, ch))
    }
}

/// Shared state behind every [`Broker`] clone.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) settings: BrokerSettings,
    pub(crate) names: Names,
    pub(crate) max_queue_size: u32,
    pub(crate) name: String,
    pub(crate) state: watch::Receiver<Option<Arc<Live>>>,
    /// Stops the supervisor (and with it the connection) when the last handle goes.
    pub(crate) stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A cheap, cloneable handle on this process's RabbitMQ connection.
///
/// Publishing, inspection, consumers and subscriptions all go through it; all
/// of them survive RabbitMQ restarts because the connection is re-established
/// (and the topology re-declared) behind this handle.
#[derive(Debug, Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl Broker {
    /// Connects (connection named `name` in the management UI), declares the
    /// topology and starts the reconnect supervisor. Fails with `Unavailable`
    /// if RabbitMQ cannot be reached now, so a misconfigured service stops at
    /// start; use [`Broker::connect_lazy`] to start before RabbitMQ.
    pub async fn connect(
        settings: BrokerSettings,
        max_queue_size: u32,
        name: &str,
    ) -> Result<Broker, BrokerError> {
        let first = establish(&settings, max_queue_size, name).await?;
        Ok(Self::start(settings, max_queue_size, name, Some(first)))
    }

    /// Returns at once and connects in the background (with backoff), for
    /// services that may start before RabbitMQ. Until connected, publishes fail
    /// with `Unavailable`; see [`Broker::wait_connected`].
    pub fn connect_lazy(settings: BrokerSettings, max_queue_size: u32, name: &str) -> Broker {
        Self::start(settings, max_queue_size, name, None)
    }

    fn start(settings: BrokerSettings, max_queue_size: u32, name: &str, first: Option<Live>) -> Broker {
        // Published before returning, so `connect` hands out a connected broker.
        let first = first.map(Arc::new);
        let (tx, rx) = watch::channel(first.clone());
        let stop = CancellationToken::new();
        tokio::spawn(supervise(
            settings.clone(),
            max_queue_size,
            name.to_owned(),
            tx,
            stop.clone(),
            first,
        ));
        Broker {
            inner: Arc::new(Inner {
                names: Names::new(settings.prefix.clone()),
                settings,
                max_queue_size,
                name: name.to_owned(),
                state: rx,
                stop,
            }),
        }
    }

    /// Names of this broker's exchanges and queues.
    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// Length limit of the first stage's queue, as declared.
    pub fn max_queue_size(&self) -> u32 {
        self.inner.max_queue_size
    }

    /// The settings this broker was made with.
    pub fn settings(&self) -> &BrokerSettings {
        &self.inner.settings
    }

    /// Whether a connection is established right now.
    pub fn is_connected(&self) -> bool {
        self.inner
            .state
            .borrow()
            .as_ref()
            .is_some_and(|l| l.conn.status().connected())
    }

    /// Waits until connected; `Timeout` after `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), BrokerError> {
        tokio::time::timeout(timeout, self.live_wait())
            .await
            .map_err(|_| BrokerError::Timeout)?
            .map(|_| ())
    }

    /// Closes the connection and stops reconnecting; consumers and
    /// subscriptions end. Dropping the last handle does the same.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        let mut rx = self.inner.state.clone();
        // The supervisor publishes `None` once the connection is closed.
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.is_none())).await;
    }

    /// The current connection, if any.
    pub(crate) fn live(&self) -> Option<Arc<Live>> {
        self.inner
            .state
            .borrow()
            .as_ref()
            .filter(|l| l.conn.status().connected())
            .cloned()
    }

    /// Waits for a connection; `Unavailable` once the broker is closed.
    pub(crate) async fn live_wait(&self) -> Result<Arc<Live>, BrokerError> {
        let mut rx = self.inner.state.clone();
        loop {
            if self.inner.stop.is_cancelled() {
                return Err(BrokerError::Unavailable("broker closed".into()));
            }
            if let Some(live) = self.live() {
                return Ok(live);
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(BrokerError::Unavailable("broker closed".into()));
                    }
                }
                () = self.inner.stop.cancelled() => {}
                // The status of a live connection can flip without a watch
                // update (the supervisor notices within STATUS_POLL).
                () = tokio::time::sleep(STATUS_POLL) => {}
            }
        }
    }

    /// A token cancelled when this broker is closed or dropped.
    pub(crate) fn stopped(&self) -> CancellationToken {
        self.inner.stop.clone()
    }
}

/// Opens a connection, declares the topology on a throwaway channel and prepares
/// the publishing pool.
async fn establish(settings: &BrokerSettings, max_queue_size: u32, name: &str) -> Result<Live, BrokerError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    // lapin's TCP connect has no deadline of its own; an unroutable address
    // must not stall start-up.
    let connect_timeout = Duration::from_millis(settings.publish_timeout_ms.max(1_000));
    let conn = tokio::time::timeout(connect_timeout, Connection::connect(&settings.url, props))
        .await
        .map_err(|_| BrokerError::Unavailable("connect timed out".into()))?
        .map_err(|e| BrokerError::unavailable("connect", &e))?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| BrokerError::unavailable("open channel", &e))?;
    declare_topology(&ch, settings, max_queue_size).await?;
    // Best effort: the channel is only for the declarations.
    let _ = ch.close(200, "OK".into()).await;
    let publishers = (0..PUBLISH_CHANNELS).map(|_| Mutex::new(None)).collect();
    Ok(Live {
        conn,
        publishers,
        next: AtomicUsize::new(0),
    })
}

/// Owns the connection: publishes it, waits for it to fail, reconnects with
/// exponential backoff (re-declaring the topology), until `stop`.
async fn supervise(
    settings: BrokerSettings,
    max_queue_size: u32,
    name: String,
    tx: watch::Sender<Option<Arc<Live>>>,
    stop: CancellationToken,
    mut current: Option<Arc<Live>>,
) {
    let initial = Duration::from_millis(settings.reconnect_initial_ms.max(1));
    let max = Duration::from_millis(settings.reconnect_max_ms.max(settings.reconnect_initial_ms));
    let mut delay = initial;
    loop {
        if let Some(live) = current.take() {
            tx.send_replace(Some(live.clone()));
            info!(connection = %name, "connected to RabbitMQ");
            wait_disconnect(&live.conn, &stop).await;
            tx.send_replace(None);
            if stop.is_cancelled() {
                let _ = live.conn.close(200, "OK".into()).await;
                debug!(connection = %name, "broker connection closed");
                return;
            }
            warn!(connection = %name, "lost the RabbitMQ connection, reconnecting");
            delay = initial;
            // Reconnect at once the first time: a restart is usually quick.
            match establish(&settings, max_queue_size, &name).await {
                Ok(l) => {
                    current = Some(Arc::new(l));
                    continue;
                }
                Err(e) => debug!(connection = %name, error = %e, "reconnect failed"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(jittered(delay)) => {}
        }
        match establish(&settings, max_queue_size, &name).await {
            Ok(l) => current = Some(Arc::new(l)),
            Err(e) => {
                debug!(connection = %name, error = %e, ?delay, "reconnect failed");
                delay = (delay * 2).min(max);
            }
        }
    }
}

/// ±10 % so that many services do not reconnect in lockstep.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.9..1.1))
}

/// Returns when the connection fails or `stop` fires.
async fn wait_disconnect(conn: &Connection, stop: &CancellationToken) {
    let mut events = conn.events_listener();
    let mut poll = tokio::time::interval(STATUS_POLL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            ev = events.next() => match ev {
                // Channel errors (a 404 on one channel) come through here too;
                // only a dead connection matters.
                Some(Event::Error(e)) => {
                    if !conn.status().connected() {
                        debug!(error = %e, "connection error event");
                        return;
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = poll.tick() => {
                if !conn.status().connected() {
                    return;
                }
            }
        }
    }
}
