//! What every stage needs: settings, providers and shared limits.

use std::sync::Arc;
use std::time::Instant;

use atelier_core::settings::Settings;
use atelier_providers::Providers;
use tokio::sync::Semaphore;

/// Shared, cheap-to-clone dependencies of the stages.
#[derive(Debug, Clone)]
pub struct StageContext {
    pub settings: Arc<Settings>,
    pub providers: Providers,
    /// Bounds renders in flight across all jobs of this process
    /// (`generation.max_concurrent_generations`, the old service's semaphore).
    pub generation_slots: Arc<Semaphore>,
}

impl StageContext {
    /// A context over `settings` and `providers`.
    pub fn new(settings: Arc<Settings>, providers: Providers) -> Self {
        let slots = settings.generation.max_concurrent_generations;
        Self {
            settings,
            providers,
            generation_slots: Arc::new(Semaphore::new(slots)),
        }
    }
}

/// A stage's output with the wall time it took and the part of it spent saving.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<T> {
    pub output: T,
    pub seconds: f64,
    pub saving_seconds: f64,
}

impl<T> Timed<T> {
    pub(crate) fn since(started: Instant, saving_seconds: f64, output: T) -> Self {
        Self {
            output,
            seconds: started.elapsed().as_secs_f64(),
            saving_seconds,
        }
    }
}
