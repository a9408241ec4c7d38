//! The harness of the end-to-end tests: the real binaries as processes on this
//! machine's RabbitMQ and PostgreSQL, each system isolated by its own queue
//! prefix, database schema (or SQLite file) and blob folder, so tests run side
//! by side.
//!
//! One API suite runs against both targets through [`System`]: the distributed
//! stack ([`Stack`]: gateways, four workers, status) and `atelier serve`
//! ([`Serve`]: one process).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

mod fixtures;
mod gemini;
mod otlp;
mod process;
pub mod prometheus;
mod serve;
mod stack;
mod system;

pub use fixtures::{data_uri, files_under, photo, photo_sized, request, serve_photo};
pub use gemini::GatedGemini;
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::{Service, bin_dir, cli_output, free_port};
pub use serve::Serve;
pub use stack::{Stack, WORKERS};
pub use system::{ADMIN_TENANT, Options, System, Target};

/// Declares each named `async fn NAME(target: Target)` as two tests, one per
/// target (`stack::NAME` and `serve::NAME`).
#[macro_export]
macro_rules! on_both_targets {
    ($($name:ident),* $(,)?) => {
        mod stack {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name($crate::Target::Stack).await;
                }
            )*
        }
        mod serve {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name($crate::Target::Serve).await;
                }
            )*
        }
    };
}
