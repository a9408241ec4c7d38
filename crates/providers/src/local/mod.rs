//! Local providers: real image work on this machine's CPU, no network.

mod analyzer;
mod generator;
mod upscaler;

pub use analyzer::LocalAnalyzer;
pub use generator::LocalGenerator;
pub use upscaler::LocalUpscaler;

/// The version of the local providers' pixels in result-cache keys: the crate
/// version plus a revision to bump when an algorithm's output changes between
/// releases, so outputs cached by an older build miss instead of being reused.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+pixels.1");
