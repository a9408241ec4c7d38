//! Every name on the bus, derived in this one place from typed values: queue and
//! exchange names from a [`Stage`], routing keys from an [`EventKey`], bindings
//! from an [`EventFilter`]. Callers never spell one.

use atelier_core::event::EventKind;
use atelier_core::pipeline::Stage;

/// Names of every exchange and queue under one prefix, so stacks and tests can
/// share one RabbitMQ side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Direct exchange all stage messages go through (`{p}.pipeline`).
    pub fn pipeline_exchange(&self) -> String {
        format!("{}.pipeline", self.prefix)
    }

    /// Queue of a stage (`{p}.postprocess`); also its routing key on the
    /// pipeline exchange. The first stage's is bounded: new jobs enter here.
    pub fn stage_queue(&self, stage: Stage) -> String {
        format!("{}.{}", self.prefix, stage.service_name())
    }

    /// Where work the system already accepted re-enters `stage` (retries,
    /// crash redeliveries, hand-backs, replays, resumes). For the bounded first
    /// stage it is a queue of its own without the bound (`{p}.analysis.resume`),
    /// so accepted work can never be refused or dropped by it; for the other
    /// stages it is the stage queue itself.
    pub fn resume_queue(&self, stage: Stage) -> String {
        if is_bounded(stage) {
            format!("{}.resume", self.stage_queue(stage))
        } else {
            self.stage_queue(stage)
        }
    }

    /// The queues a stage's consumer reads: the resume queue first.
    pub fn consumed_queues(&self, stage: Stage) -> Vec<String> {
        if is_bounded(stage) {
            vec![self.resume_queue(stage), self.stage_queue(stage)]
        } else {
            vec![self.stage_queue(stage)]
        }
    }

    /// Delay queue of retry `level` (0-based) for `stage`: messages wait out
    /// their TTL there, then dead-letter into the stage's resume queue.
    pub fn delay_queue(&self, stage: Stage, level: usize) -> String {
        format!("{}.delay.{level}", self.stage_queue(stage))
    }

    /// Queue holding messages given up on (`{p}.dead`), fed via the default exchange.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Topic exchange of job events (`{p}.events`).
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Fanout exchange of control messages such as cancels (`{p}.control`).
    pub fn control_exchange(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// Durable queue of the status service (`{p}.status.events`), so events
    /// wait while it restarts.
    pub fn status_queue(&self) -> String {
        format!("{}.status.events", self.prefix)
    }
}

/// Whether `stage`'s queue is bounded by `max_queue_size`: only the first, so a
/// full system refuses new jobs instead of failing accepted ones.
pub fn is_bounded(stage: Stage) -> bool {
    stage == Stage::Analysis
}

/// What an event is about: its routing key on the events exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKey<'a> {
    pub job_id: &'a str,
    pub kind: EventKind,
}

impl EventKey<'_> {
    /// `job.<id>.<kind>`: a consumer can bind to one job (`job.<id>.#`) or one
    /// kind (`job.*.failed`).
    pub fn routing_key(&self) -> String {
        format!("{}.{}.{}", JOB_TOPIC, self.job_id, self.kind.as_str())
    }
}

/// First word of every event routing key.
const JOB_TOPIC: &str = "job";

/// Which events a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Every job's events.
    AllJobs,
    /// One job's events.
    Job(String),
}

impl EventFilter {
    /// The binding key on the events exchange.
    pub fn binding_key(&self) -> String {
        match self {
            Self::AllJobs => format!("{JOB_TOPIC}.#"),
            Self::Job(id) => format!("{JOB_TOPIC}.{id}.#"),
        }
    }

    /// Whether an event with `key` passes (the in-process transport's routing).
    pub fn matches(&self, key: &EventKey<'_>) -> bool {
        match self {
            Self::AllJobs => true,
            Self::Job(id) => id == key.job_id,
        }
    }
}

/// Where a dead letter came from, so a replay knows where to put it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A stage message that its stage gave up on.
    Stage(Stage),
    /// An event the status service could not record.
    StatusEvents,
}

impl Origin {
    /// How the origin is written in a dead letter's headers.
    pub fn as_header(&self) -> String {
        match self {
            Self::Stage(stage) => format!("stage:{}", stage.as_str()),
            Self::StatusEvents => "events".to_string(),
        }
    }

    /// The origin written as [`Origin::as_header`] does.
    pub fn parse(s: &str) -> Option<Self> {
        match s.strip_prefix("stage:") {
            Some(stage) => Stage::parse(stage).map(Self::Stage),
            None => (s == "events").then_some(Self::StatusEvents),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = Names::new("atelier");
        assert_eq!(n.pipeline_exchange(), "atelier.pipeline");
        assert_eq!(n.stage_queue(Stage::Analysis), "atelier.analysis");
        assert_eq!(n.stage_queue(Stage::PostProcessing), "atelier.postprocess");
        assert_eq!(n.resume_queue(Stage::Analysis), "atelier.analysis.resume");
        assert_eq!(n.resume_queue(Stage::Upscaling), "atelier.upscaling");
        assert_eq!(n.delay_queue(Stage::Generation, 1), "atelier.generation.delay.1");
        assert_eq!(n.dead_letter_queue(), "atelier.dead");
        assert_eq!(n.events_exchange(), "atelier.events");
        assert_eq!(n.control_exchange(), "atelier.control");
        assert_eq!(n.status_queue(), "atelier.status.events");
        assert_eq!(
            n.consumed_queues(Stage::Analysis),
            ["atelier.analysis.resume", "atelier.analysis"]
        );
    }

    #[test]
    fn routing_keys_and_filters() {
        let key = EventKey {
            job_id: "42",
            kind: EventKind::StageStarted,
        };
        assert_eq!(key.routing_key(), "job.42.stage_started");
        assert_eq!(EventFilter::AllJobs.binding_key(), "job.#");
        assert_eq!(EventFilter::Job("42".into()).binding_key(), "job.42.#");
        assert!(EventFilter::Job("42".into()).matches(&key));
        assert!(!EventFilter::Job("7".into()).matches(&key));
        for origin in [Origin::Stage(Stage::PostProcessing), Origin::StatusEvents] {
            assert_eq!(Origin::parse(&origin.as_header()), Some(origin));
        }
    }
}
