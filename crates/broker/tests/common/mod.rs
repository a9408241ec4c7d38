//! Shared helpers: a test message type, both transports behind one
//! environment, a scriptable handler, polling.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use atelier_broker::{
    Broker, ControlTopic, EventTopic, GaveUp, HandlerError, InProcess, MessageMeta, Pipeline, RetryPolicy,
    StageHandler, Transport,
};
use atelier_core::pipeline::Stage;
use atelier_core::settings::BrokerSettings;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const WAIT: Duration = Duration::from_secs(15);

/// The message type of these tests.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Note {
    #[prost(string, tag = "1")]
    pub text: String,
}

pub fn note(text: &str) -> Note {
    Note { text: text.into() }
}

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

pub fn meta(job: &str, priority: u8) -> MessageMeta {
    MessageMeta::new(job, priority)
}

/// Which transport a behaviour test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RabbitMq,
    InProcess,
}

/// One transport with its typed façades; drops its RabbitMQ topology at the end.
pub struct Env {
    pub kind: Kind,
    pub transport: Arc<dyn Transport>,
    pub pipeline: Pipeline<Note>,
    pub events: EventTopic<Note>,
    pub control: ControlTopic<Note>,
    broker: Option<Broker>,
}

impl Env {
    pub async fn new(kind: Kind, max_queue_size: u32) -> anyhow::Result<Self> {
        let settings = settings(&prefix());
        let policy = RetryPolicy::from_settings(&settings)?;
        let (transport, broker): (Arc<dyn Transport>, _) = match kind {
            Kind::RabbitMq => {
                let broker = Broker::connect(settings, max_queue_size, "broker-test").await?;
                (Arc::new(broker.clone()), Some(broker))
            }
            Kind::InProcess => (Arc::new(InProcess::new(max_queue_size)), None),
        };
        Ok(Self {
            kind,
            pipeline: Pipeline::new(transport.clone(), policy),
            events: EventTopic::new(transport.clone()),
            control: ControlTopic::new(transport.clone()),
            transport,
            broker,
        })
    }

    pub fn broker(&self) -> Option<&Broker> {
        self.broker.as_ref()
    }

    pub async fn depth(&self, stage: Stage) -> u32 {
        self.transport
            .queue_stats(stage)
            .await
            .map(|s| s.messages)
            .unwrap_or(u32::MAX)
    }

    pub async fn dead(&self) -> u32 {
        self.transport.dead_letter_count().await.unwrap_or(u32::MAX)
    }

    /// Runs a consumer in the background; returns its token and join handle.
    pub fn spawn(
        &self,
        stage: Stage,
        concurrency: u16,
        handler: Arc<Scripted>,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<Result<(), atelier_broker::BrokerError>>,
    ) {
        let token = CancellationToken::new();
        let pipeline = self.pipeline.clone();
        let t = token.clone();
        let handle = tokio::spawn(async move {
            atelier_broker::run_stage(&pipeline, stage, concurrency, handler, t).await
        });
        (token, handle)
    }

    pub async fn finish(self) -> anyhow::Result<()> {
        if let Some(broker) = &self.broker {
            broker.delete_topology().await?;
        }
        self.transport.close().await;
        Ok(())
    }
}

pub async fn stop(
    token: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), atelier_broker::BrokerError>>,
) -> anyhow::Result<()> {
    token.cancel();
    tokio::time::timeout(WAIT, handle).await???;
    Ok(())
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

/// One call of the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub note: Note,
    pub meta: MessageMeta,
}

type Behaviour =
    Box<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>> + Send + Sync>;

/// A handler whose `handle` is a closure, recording every call.
pub struct Scripted {
    behaviour: Behaviour,
    pub seen: Mutex<Vec<Seen>>,
    pub dead: Mutex<Vec<(MessageMeta, String)>>,
    pub changed: Notify,
}

impl Scripted {
    pub fn new<F, Fut>(f: F) -> Arc<Self>
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Arc::new(Self {
            behaviour: Box::new(move |d| Box::pin(f(d))),
            seen: Mutex::new(Vec::new()),
            dead: Mutex::new(Vec::new()),
            changed: Notify::new(),
        })
    }

    pub fn ok() -> Arc<Self> {
        Self::new(|_| async { Ok(()) })
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn dead(&self) -> Vec<(MessageMeta, String)> {
        self.dead.lock().expect("lock").clone()
    }

    pub fn attempts(&self) -> Vec<u32> {
        self.seen().iter().map(|d| d.meta.attempt).collect()
    }

    pub fn texts(&self) -> Vec<String> {
        self.seen().iter().map(|d| d.note.text.clone()).collect()
    }
}

#[async_trait]
impl StageHandler<Note> for Scripted {
    type Error = String;

    async fn handle(&self, note: Note, meta: &MessageMeta) -> Result<(), HandlerError> {
        let seen = Seen {
            note,
            meta: meta.clone(),
        };
        self.seen.lock().expect("lock").push(seen.clone());
        let res = (self.behaviour)(seen).await;
        self.changed.notify_waiters();
        res
    }

    async fn dead(&self, meta: &MessageMeta, why: GaveUp<String>) {
        self.dead
            .lock()
            .expect("lock")
            .push((meta.clone(), why.to_string()));
        self.changed.notify_waiters();
    }
}
