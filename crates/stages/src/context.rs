//! What every stage needs: settings, providers and shared limits.

use std::sync::Arc;
use std::time::Instant;

use atelier_core::cache::CacheCounts;
use atelier_core::settings::Settings;
use atelier_providers::Providers;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cache::ResultCache;

/// Shared, cheap-to-clone dependencies of the stages.
#[derive(Debug, Clone)]
pub struct StageContext {
    pub settings: Arc<Settings>,
    pub providers: Providers,
    /// Bounds renders in flight across all jobs of this process
    /// (`generation.max_concurrent_generations`, the old service's semaphore).
    pub generation_slots: Arc<Semaphore>,
    /// Decoded pixels held at once by this process, in KiB
    /// (`limits.decode_budget_bytes`): a burst of huge inputs waits for room
    /// instead of exhausting memory.
    pub decode_budget: Arc<Semaphore>,
    /// Bounds upscales in flight (fetch, decode, upscale, JPEG encode, store) to
    /// one per upscaler thread. An upscale holds its output until it is encoded
    /// (59 MB for ×4 of a 960×1280 variation) and encoding is slower than
    /// upscaling, so without this bound a job's upscales all sat in memory at
    /// once: peak memory grew with the number of variations.
    pub upscale_slots: Arc<Semaphore>,
    /// The result cache and its single-flight locks, shared by every stage
    /// of this process (all four in `atelier serve`).
    pub cache: Arc<ResultCache>,
}

/// Unit of the decode budget's permits.
const BUDGET_UNIT: u64 = 1_024;

impl StageContext {
    /// A context over `settings` and `providers`.
    pub fn new(settings: Arc<Settings>, providers: Providers) -> Self {
        let slots = settings.generation.max_concurrent_generations;
        let budget = usize::try_from(settings.limits.decode_budget_bytes / BUDGET_UNIT)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        let upscales = settings.upscaler_threads();
        Self {
            cache: Arc::new(ResultCache::new(settings.cache.clone())),
            settings,
            providers,
            generation_slots: Arc::new(Semaphore::new(slots)),
            decode_budget: Arc::new(Semaphore::new(budget)),
            upscale_slots: Arc::new(Semaphore::new(upscales)),
        }
    }

    /// Room in the decode budget for `bytes` of pixels, waiting for it; held
    /// until dropped. One decode larger than the whole budget takes all of it.
    pub async fn decode_room(&self, bytes: u64) -> Result<OwnedSemaphorePermit, crate::StageError> {
        let total = u64::try_from(Semaphore::MAX_PERMITS).unwrap_or(u64::MAX);
        let wanted = bytes.div_ceil(BUDGET_UNIT).max(1);
        let available = self.settings.limits.decode_budget_bytes / BUDGET_UNIT;
        let permits = wanted.min(available.max(1)).min(total);
        self.decode_budget
            .clone()
            .acquire_many_owned(u32::try_from(permits).unwrap_or(u32::MAX))
            .await
            .map_err(|e| crate::StageError::Task(format!("decode budget: {e}")))
    }
}

/// A stage's output with the wall time it took, the part of it spent saving,
/// and what of it was reused from the result cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<T> {
    pub output: T,
    pub seconds: f64,
    pub saving_seconds: f64,
    pub cache: CacheCounts,
}

impl<T> Timed<T> {
    pub(crate) fn since(started: Instant, saving_seconds: f64, output: T) -> Self {
        Self {
            output,
            seconds: started.elapsed().as_secs_f64(),
            saving_seconds,
            cache: CacheCounts::default(),
        }
    }

    /// The same, with the cache's hits and misses of its items.
    pub(crate) fn reusing(mut self, hits: impl IntoIterator<Item = bool>) -> Self {
        self.cache = CacheCounts::of(hits);
        self
    }
}
