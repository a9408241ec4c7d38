//! Atelier's pixel work: everything between encoded bytes in and encoded bytes out.
//!
//! Synchronous and CPU-bound by design: callers run these functions on a blocking
//! thread or a rayon pool. Nothing here knows about async, brokers or HTTP.

pub mod analysis;
pub mod color;
pub mod decode;
pub mod encode;
pub mod error;
pub mod filter;
pub mod generate;
pub mod memory;
pub mod report;
pub mod resize;
pub mod upscale;
pub mod video;

pub use error::ImagingError;
