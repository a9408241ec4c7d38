//! Where Atelier keeps bytes: input photos, masks, variations, upscales, video
//! and report. One [`BlobStore`] over `object_store`, so the same code writes to a
//! local folder (the default, and `atelier process`'s output folder), memory
//! (tests) or, by configuration, S3 when workers run on different machines.
//!
//! Keys are deterministic (see `atelier_core::keys`): a stage that runs twice
//! writes the same keys again and overwrites, it never duplicates. Writes to the
//! local folder go through a temporary file and a rename, so a reader never sees
//! half an image.
//!
//! Job rows live elsewhere (`atelier-jobs`): the stages and `atelier process`
//! need blobs only, and so link no SQL driver.

mod blobs;
mod error;

pub use blobs::{BlobStore, BlobWriter, JobBlobs, WRITE_CHUNK_BYTES};
pub use error::StorageError;
