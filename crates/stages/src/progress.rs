//! Progress reporting, so `atelier process` can draw bars and the worker services
//! can emit events from the same stage code.

use atelier_core::pipeline::Stage;

/// Receives stage transitions and per-item progress. All methods default to
/// doing nothing.
pub trait Progress: Send + Sync {
    /// `stage` began with `items` units of work (images).
    fn stage_started(&self, _stage: Stage, _items: usize) {}
    /// One unit of `stage` finished.
    fn item_done(&self, _stage: Stage) {}
    /// `stage` completed after `seconds`.
    fn stage_finished(&self, _stage: Stage, _seconds: f64) {}
}

/// Ignores progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
