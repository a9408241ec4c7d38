//! What every Atelier binary sets up the same way: log output, OpenTelemetry
//! traces, the Prometheus recorder, the ops listener and the signals that ask it
//! to stop. Kept in one place so services log, trace, count and shut down by one
//! rule and their binaries stay a few lines.

pub mod metrics;
pub mod ops;
pub mod trace;

mod logs;

use atelier_core::settings::{LogFormat, TelemetrySettings};
use tokio_util::sync::CancellationToken;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use metrics::Metrics;
pub use trace::{continue_trace, current_traceparent, record_trace_id};

/// Keeps the trace exporter alive; dropping it flushes the spans not yet sent.
#[must_use = "dropping the guard stops exporting traces"]
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && trace::export_configured()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("flushing traces at exit: {error}");
        }
    }
}

/// Installs the global subscriber (once; a second call keeps the first): logs
/// in `settings.log_format`, and spans to OpenTelemetry (exported when the
/// `OTEL_*` variables say so, under `OTEL_SERVICE_NAME` or `service_name`).
///
/// `RUST_LOG` wins over `settings.log_filter` for the logs; spans at INFO and
/// above (and WARN+ events as span events) go to OpenTelemetry whatever the
/// log filter, so a quiet log still gives whole traces.
pub fn init(settings: &TelemetrySettings, service_name: &str) -> Telemetry {
    init_with_filter(settings, &settings.log_filter, service_name)
}

/// [`init`] with `filter` in place of `settings.log_filter` (`RUST_LOG` still
/// wins): the command line logs only warnings so its progress bars stay readable.
pub fn init_with_filter(settings: &TelemetrySettings, filter: &str, service_name: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match settings.log_format {
        LogFormat::Json => fmt.event_format(logs::JsonLines).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let (provider, trace_error) = match trace::provider(service_name) {
        Ok(provider) => (Some(provider), None),
        Err(error) => (None, Some(error)),
    };
    let otel = provider.as_ref().map(|provider| {
        trace::layer(provider).with_filter(FilterFn::new(|meta: &tracing::Metadata<'_>| {
            if meta.is_span() {
                *meta.level() <= Level::INFO
            } else {
                *meta.level() <= Level::WARN
            }
        }))
    });
    let installed = Registry::default()
        .with(logs::SpanFields)
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(error) = trace_error {
        tracing::error!(error = %atelier_core::error::error_chain(&error), "traces are not exported");
    }
    tracing::debug!(
        service_name,
        exporting = trace::export_configured(),
        "telemetry initialised"
    );
    Telemetry {
        provider: provider.filter(|_| installed),
    }
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
