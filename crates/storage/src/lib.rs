//! Where Atelier keeps bytes and job state. Bytes are input photos, masks,
//! variations, upscales, video and report. One [`BlobStore`] over `object_store`, so the same code writes to a local
//! folder (the default, and `atelier process`'s output folder), memory (tests) or,
//! by configuration, S3 when workers run on different machines.
//!
//! Keys are deterministic (see `atelier_core::keys`): a stage that runs twice writes
//! the same keys again and overwrites, it never duplicates. Writes to the local
//! folder go through a temporary file and a rename, so a reader never sees half an
//! image.
//!
//! Job state lives behind the [`JobStore`] trait: [`PgJobStore`] for the services
//! (the gateway creates rows, the status service records progress from events)
//! and [`MemoryJobStore`] for `atelier process` and tests. See [`jobs`].

mod blobs;
mod error;
pub mod jobs;

pub use blobs::{BlobStore, JobBlobs};
pub use error::StorageError;
pub use jobs::{
    Created, EventKind, JobCounts, JobEventRecord, JobRecord, JobStatus, JobStore, MemoryJobStore, NewJob,
    PgJobStore, StageStats,
};
