//! Local providers: real image work on this machine's CPU, no network.

mod analyzer;
mod generator;
mod upscaler;

pub use analyzer::LocalAnalyzer;
pub use generator::LocalGenerator;
pub use upscaler::LocalUpscaler;
