//! A cached view of the stage queues, refreshed from the bus on a timer so
//! `GetQueueStatus` answers without a broker round trip.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use atelier_bus::{JobBus, StageDepth};
use atelier_core::pipeline::Stage;
use atelier_telemetry::metrics::{BROKER_UP, DEAD_LETTERS, QUEUE_CONSUMERS, QUEUE_MESSAGES};
use tokio_util::sync::CancellationToken;

/// Latest depth and consumer count per stage, and whether the bus answered.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    pub stages: Vec<(Stage, StageDepth)>,
    pub dead_letters: u32,
    pub connected: bool,
}

/// Shared handle on the latest [`QueueSnapshot`].
#[derive(Debug, Clone, Default)]
pub struct QueueWatch {
    latest: Arc<RwLock<QueueSnapshot>>,
}

impl QueueWatch {
    /// The latest snapshot.
    pub fn get(&self) -> QueueSnapshot {
        self.latest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads every stage queue once and stores the result.
    pub async fn refresh(&self, bus: &JobBus) {
        let mut stages = Vec::with_capacity(Stage::ALL.len());
        let mut connected = true;
        for stage in Stage::ALL {
            match bus.queue_stats(stage).await {
                Ok(stats) => stages.push((stage, stats)),
                Err(error) => {
                    tracing::debug!(%error, stage = stage.as_str(), "queue stats unavailable");
                    connected = false;
                    stages.push((stage, StageDepth::default()));
                }
            }
        }
        let dead_letters = bus.dead_letter_count().await.unwrap_or_default();
        export(&stages, dead_letters, connected);
        *self
            .latest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = QueueSnapshot {
            stages,
            dead_letters,
            connected,
        };
    }

    /// Refreshes every `every` until `shutdown`.
    pub async fn run(self, bus: JobBus, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => self.refresh(&bus).await,
            }
        }
    }
}

/// The snapshot as gauges (`atelier_queue_messages{state="ready"}`,
/// `atelier_queue_consumers`, `atelier_dead_letters`, `atelier_broker_up`).
/// RabbitMQ tells an AMQP client only the ready count: the `unacked` side is
/// exported by each worker, for the messages it holds (see atelier-bus).
fn export(stages: &[(Stage, StageDepth)], dead_letters: u32, connected: bool) {
    for (stage, depth) in stages {
        let stage = stage.as_str();
        metrics::gauge!(QUEUE_MESSAGES, "stage" => stage, "state" => "ready").set(f64::from(depth.messages));
        metrics::gauge!(QUEUE_CONSUMERS, "stage" => stage).set(f64::from(depth.consumers));
    }
    metrics::gauge!(DEAD_LETTERS).set(f64::from(dead_letters));
    metrics::gauge!(BROKER_UP).set(if connected { 1.0 } else { 0.0 });
}
