//! Running CPU-heavy work off the async runtime, keeping the caller's tracing span.

use std::sync::Arc;

use tracing::Span;

use crate::ProviderError;

/// Runs `f` on tokio's blocking pool.
pub async fn blocking<T, F>(provider: &'static str, f: F) -> Result<T, ProviderError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| ProviderError::Task {
            provider,
            message: e.to_string(),
        })
}

/// A bounded rayon pool for the heaviest work (upscaling), so a burst of images
/// cannot take more than the configured number of cores.
#[derive(Debug, Clone)]
pub struct CpuPool {
    pool: Arc<rayon::ThreadPool>,
}

impl CpuPool {
    /// A pool of `threads` workers named `name-N`.
    pub fn new(name: &'static str, threads: usize) -> Result<Self, ProviderError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(move |i| format!("{name}-{i}"))
            .build()
            .map_err(|e| ProviderError::Task {
                provider: name,
                message: e.to_string(),
            })?;
        Ok(Self { pool: Arc::new(pool) })
    }

    /// Runs `f` inside the pool (nested rayon work stays in it) and awaits it.
    pub async fn run<T, F>(&self, provider: &'static str, f: F) -> Result<T, ProviderError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = Span::current();
        let pool = Arc::clone(&self.pool);
        self.pool.spawn(move || {
            let out = span.in_scope(|| pool.install(f));
            // The receiver is gone only if the caller stopped waiting; nothing to do then.
            let _ = tx.send(out);
        });
        rx.await.map_err(|_| ProviderError::Task {
            provider,
            message: "worker thread panicked".to_string(),
        })
    }
}
