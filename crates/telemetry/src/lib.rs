//! What every Atelier binary sets up the same way: log output and the signals that
//! ask it to stop. Kept in one place so services log in one format and shut down
//! by one rule.

use atelier_core::settings::{LogFormat, TelemetrySettings};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; a second call keeps the first).
///
/// `RUST_LOG` wins over `settings.log_filter`; `fallback` is used when neither is
/// set, so the command line can stay quiet while services log at `info`.
pub fn init(settings: &TelemetrySettings, service: &str) {
    init_with_filter(settings, &settings.log_filter, service);
}

/// [`init`] with `filter` in place of `settings.log_filter` (`RUST_LOG` still
/// wins): the command line logs only warnings so its progress bars stay readable.
pub fn init_with_filter(settings: &TelemetrySettings, filter: &str, service: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    tracing::debug!(service, "telemetry initialised");
}

/// Runs `serve` on a multi-threaded runtime, handing it a token that is
/// cancelled on SIGTERM or ctrl-c: the one shape of every service's `main`.
pub fn run_until_signal<F, Fut, T>(serve: F) -> std::io::Result<T>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            signal.cancel();
        });
        serve(shutdown).await
    }))
}

/// Resolves when the process is asked to stop: SIGTERM (orchestrators) or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
