//! Which jobs were cancelled, so their remaining stages are skipped.
//!
//! Two sources, for two failure modes: the control fanout tells running workers
//! at once, and a marker blob (`jobs/{id}/cancelled`, written by the gateway
//! before it broadcasts) tells workers that started after the broadcast.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use atelier_core::job::JobId;

/// Most cancelled ids remembered in memory; older ones are still found through
/// their marker blob.
const REMEMBERED: usize = 10_000;

/// A bounded set of cancelled job ids.
#[derive(Debug, Default)]
pub struct CancelledJobs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashSet<JobId>,
    order: VecDeque<JobId>,
}

impl CancelledJobs {
    /// Records `id` as cancelled, forgetting the oldest id when full.
    pub fn insert(&self, id: JobId) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.ids.insert(id) {
            inner.order.push_back(id);
            if inner.order.len() > REMEMBERED
                && let Some(old) = inner.order.pop_front()
            {
                inner.ids.remove(&old);
            }
        }
    }

    /// Whether `id` was cancelled (as far as this process heard).
    pub fn contains(&self, id: &JobId) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ids
            .contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets_the_oldest() {
        let set = CancelledJobs::default();
        let first = JobId::new();
        set.insert(first);
        assert!(set.contains(&first));
        for _ in 0..REMEMBERED {
            set.insert(JobId::new());
        }
        assert!(!set.contains(&first));
    }
}
