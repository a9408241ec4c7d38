//! Shared helpers: unique prefixes, settings, a scriptable handler, polling.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use atelier_broker::{Broker, Delivery, HandlerError, StageHandler};
use atelier_core::settings::BrokerSettings;
use tokio::sync::Notify;

pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A prefix no other test (or process) uses.
pub fn prefix() -> String {
    format!("t-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

pub fn settings(prefix: &str) -> BrokerSettings {
    BrokerSettings {
        url: URL.into(),
        prefix: prefix.into(),
        max_attempts: 3,
        retry_delays_ms: vec![50, 100],
        retry_jitter: 0.2,
        publish_timeout_ms: 3_000,
        reconnect_initial_ms: 100,
        reconnect_max_ms: 1_000,
    }
}

pub async fn broker(prefix: &str) -> anyhow::Result<Broker> {
    Ok(Broker::connect(settings(prefix), 100, "broker-test").await?)
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Behaviour =
    Box<dyn Fn(Delivery) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>> + Send + Sync>;

/// A handler whose `handle` is a closure, recording every call.
pub struct Scripted {
    behaviour: Behaviour,
    pub seen: Mutex<Vec<Delivery>>,
    pub dead: Mutex<Vec<(Delivery, String)>>,
    pub changed: Notify,
}

impl Scripted {
    pub fn new<F, Fut>(f: F) -> Arc<Self>
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Arc::new(Self {
            behaviour: Box::new(move |d| Box::pin(f(d))),
            seen: Mutex::new(Vec::new()),
            dead: Mutex::new(Vec::new()),
            changed: Notify::new(),
        })
    }

    pub fn seen(&self) -> Vec<Delivery> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn dead(&self) -> Vec<(Delivery, String)> {
        self.dead.lock().expect("lock").clone()
    }

    pub fn attempts(&self) -> Vec<u32> {
        self.seen().iter().map(|d| d.meta.attempt).collect()
    }
}

#[async_trait]
impl StageHandler for Scripted {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        self.seen.lock().expect("lock").push(d.clone());
        let res = (self.behaviour)(d.clone()).await;
        self.changed.notify_waiters();
        res
    }

    async fn dead(&self, d: &Delivery, reason: &str) {
        self.dead
            .lock()
            .expect("lock")
            .push((d.clone(), reason.to_owned()));
        self.changed.notify_waiters();
    }
}
