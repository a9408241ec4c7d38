//! The API's HTTP server, hardened for the open internet and drained on
//! shutdown.
//!
//! - A connection cap below the file-descriptor limit (raised to its hard
//!   limit at start): a flood of connections waits in the kernel's backlog
//!   instead of starving the process of descriptors.
//! - HTTP/1: a client has `header_read_timeout` to send each request's headers,
//!   which also closes an idle keep-alive connection (slowloris guard);
//!   HTTP/2: connections are pinged every `idle_timeout` and closed when they
//!   stop answering. Bodies have `body_timeout` (see the generate handlers).
//! - Drain: on shutdown readiness fails at once, connections are still
//!   accepted for `drain_delay` (load balancers notice), then no more; waiting
//!   requests answer 202 and event streams end with a `reconnect` event (the
//!   `stop` token tells them), and open connections finish within `grace`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// File descriptors kept out of the connection cap: the job store's and the
/// bus's connections, logs, the blob store's files.
const RESERVED_FDS: u64 = 256;
/// Pause after a failed `accept` (out of descriptors): let connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How often a connection's first bytes are looked at again while they trickle in.
const SNIFF_INTERVAL: Duration = Duration::from_millis(20);
/// The first bytes of HTTP/2's connection preface (`PRI * HTTP/2.0`); no
/// HTTP/1 method starts with them.
const H2_PREFACE_START: &[u8; 3] = b"PRI";

/// Which HTTP a connection speaks, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// The server's limits and drain timing.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_delay: Duration,
    pub grace: Duration,
}

/// What a draining server tells its handlers.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    /// Set at once on shutdown: `/readyz` answers 503.
    pub draining: Arc<AtomicBool>,
    /// Cancelled when waiting requests must answer and streams end.
    pub stop: CancellationToken,
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Raises the soft file-descriptor limit to the hard one and returns the
/// connection cap that fits below it.
pub fn connection_cap(wanted: usize) -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1_024);
    let room = usize::try_from(limit.saturating_sub(RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(1);
    if room < wanted {
        tracing::warn!(
            wanted,
            room,
            "the file-descriptor limit caps connections lower than gateway.max_connections"
        );
    }
    wanted.min(room)
}

/// Serves `router` on `listener` until `shutdown`, then drains (see the module).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    drain: Drain,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(connection_cap(limits.max_connections)));
    let connections = TaskTracker::new();
    let stop_accepting = CancellationToken::new();
    let drainer = {
        let (drain, limits, stop_accepting, shutdown) = (
            drain.clone(),
            limits.clone(),
            stop_accepting.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            shutdown.cancelled().await;
            drain.draining.store(true, Ordering::Relaxed);
            tracing::info!(delay = ?limits.drain_delay, "draining: readiness fails, still accepting");
            tokio::time::sleep(limits.drain_delay).await;
            stop_accepting.cancel();
            drain.stop.cancel();
        })
    };
    loop {
        let slot = tokio::select! {
            () = stop_accepting.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let router = router.clone();
        let limits = limits.clone();
        let close = drain.stop.clone();
        connections.spawn(async move {
            connection(stream, peer, router, &limits, close).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    // Every connection finishes the request it is serving (waits answer at
    // `stop`) and closes; past the grace the process goes anyway.
    if tokio::time::timeout(limits.grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.grace, "connections outlived the shutdown grace");
    }
    drainer.abort();
    Ok(())
}

/// One connection, HTTP/1 or HTTP/2, until it ends; when `close` fires it
/// finishes the request in flight and closes.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &ServerLimits,
    close: CancellationToken,
) {
    // Until hyper parses a request its header timeout does not run: a
    // connection that never sends a byte (or trickles the preface) would stay
    // open. It has the same time to say which protocol it speaks.
    let Ok(Some(protocol)) = tokio::time::timeout(limits.header_read_timeout, sniff(&stream)).await else {
        tracing::debug!(%peer, "connection closed before its first request");
        return;
    };
    let service = tower::ServiceExt::map_request(router, |request: axum::http::Request<Incoming>| {
        request.map(Body::new)
    });
    let service = TowerToHyperService::new(tower::ServiceExt::map_err(service, |e: Infallible| e));
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut builder = match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        }
        () = close.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Waits for enough of the first bytes to tell HTTP/2's preface from an
/// HTTP/1 request line, without consuming them. `None`: closed first.
async fn sniff(stream: &tokio::net::TcpStream) -> Option<Protocol> {
    let mut first = [0_u8; H2_PREFACE_START.len()];
    loop {
        let n = stream.peek(&mut first).await.ok()?;
        if n == 0 {
            return None;
        }
        if first[..n] != H2_PREFACE_START[..n] {
            return Some(Protocol::Http1);
        }
        if n == first.len() {
            return Some(Protocol::Http2);
        }
        // A prefix of the preface so far: peek again once more may have come.
        tokio::time::sleep(SNIFF_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn the_first_bytes_tell_the_protocol() {
        for (sent, expected) in [
            (&b"GET / HTTP/1.1\r\n"[..], Some(Protocol::Http1)),
            (b"POST /api", Some(Protocol::Http1)),
            (b"PUT /x", Some(Protocol::Http1)),
            (b"PRI * HTTP/2.0\r\n", Some(Protocol::Http2)),
        ] {
            let (mut client, server) = pair().await;
            client.write_all(sent).await.expect("write");
            assert_eq!(sniff(&server).await, expected, "{sent:?}");
        }
        let (client, server) = pair().await;
        drop(client);
        assert_eq!(sniff(&server).await, None, "closed before a byte");
    }

    #[tokio::test]
    async fn a_silent_connection_never_gets_a_protocol() {
        let (_client, server) = pair().await;
        let waited = tokio::time::timeout(Duration::from_millis(200), sniff(&server)).await;
        assert!(waited.is_err(), "nothing sent, nothing decided");
    }
}
