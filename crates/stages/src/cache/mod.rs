//! Result reuse: a content-addressed cache of stage outputs in the blob store.
//!
//! An entry is two blobs under `cache/{stage}/{xx}/{digest}`: the output's
//! bytes (a mask, an image, a video) and a JSON record of it, written last so
//! a reader never finds a record without its bytes. The digest covers the
//! input's content hash, the stage's parameters and the provider's identity
//! and version (see each stage's key). A hit copies the bytes into the job's
//! own folder (a hard link locally, a server-side copy in S3): a job never
//! points into the cache, so the sweeper can delete entries by age alone.
//!
//! Identical work at the same time is done once: within a process behind a
//! per-key lock, across replicas behind a claim blob ([`flight`]).
//!
//! The cache is best effort: failing to read or write it is logged and the
//! job goes on computing, never failing because of it.

mod flight;
pub mod key;

use std::future::Future;
use std::time::Duration;

use atelier_core::error::error_chain;
use atelier_core::pipeline::Stage;
use atelier_core::settings::CacheSettings;
use atelier_storage::{JobBlobs, StorageError};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use flight::Flights;
use flight::{Claim, Claimed};
pub use key::{CacheKey, KeyBuilder, PREFIX};

use crate::StageError;

/// What a miss made: the item's record, and whether it may be reused (not a
/// fallback's stand-in or a degraded answer).
#[derive(Debug)]
pub struct Made<M> {
    pub meta: M,
    pub reusable: bool,
}

impl<M> Made<M> {
    /// A reusable result.
    pub fn reusable(meta: M) -> Self {
        Self { meta, reusable: true }
    }
}

/// How a job asks for one item.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The entry's key; `None` when the provider cannot say what decides its
    /// output (never cached).
    pub key: Option<&'a CacheKey>,
    /// The job-relative blob the item is written to (and a hit copied to).
    pub target: &'a str,
    /// The payload's extension in the cache.
    pub ext: &'a str,
    /// The request said `Cache-Control: no-cache`: compute, but still store.
    pub bypass: bool,
}

/// The process's view of the cache: settings and the single-flight locks.
#[derive(Debug)]
pub struct ResultCache {
    settings: CacheSettings,
    flights: Flights,
}

impl ResultCache {
    /// A cache per `settings` (`enabled = false`: everything is computed).
    pub fn new(settings: CacheSettings) -> Self {
        Self {
            settings,
            flights: Flights::default(),
        }
    }

    /// Whether stages look up and store entries at all.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The item of `lookup`, reused from the cache when an identical one is
    /// there (`true`), or made by `make` (which writes `lookup.target` itself)
    /// and stored for the next job (`false`). Identical lookups at the same
    /// time wait for the first one's entry instead of making it again.
    pub async fn reuse_or_make<M, F, Fut>(
        &self,
        blobs: &JobBlobs,
        lookup: Lookup<'_>,
        make: F,
    ) -> Result<(M, bool), StageError>
    where
        M: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Made<M>, StageError>>,
    {
        let Some(key) = lookup.key.filter(|_| self.enabled()) else {
            return Ok((make().await?.meta, false));
        };
        let stage = key.stage();
        if lookup.bypass {
            count(stage, "bypass");
            let made = make().await?;
            self.store(blobs, key, &lookup, &made).await;
            return Ok((made.meta, false));
        }
        let _ours = self.flights.enter(key.digest()).await;
        if let Some(meta) = self.reuse(blobs, key, &lookup).await {
            count(stage, "hit");
            return Ok((meta, true));
        }
        let claim = match self.claim_or_wait(blobs, key, &lookup).await {
            Turn::Make(claim) => claim,
            Turn::Reused(meta) => {
                count(stage, "waited");
                return Ok((meta, true));
            }
        };
        count(stage, "miss");
        let made = make().await;
        if let Ok(made) = &made {
            self.store(blobs, key, &lookup, made).await;
        }
        if let Some(claim) = claim {
            claim.release().await;
        }
        Ok((made?.meta, false))
    }

    /// Copies an existing entry into the job; `None` when there is none (or it
    /// cannot be read: then the job computes).
    async fn reuse<M: DeserializeOwned>(
        &self,
        blobs: &JobBlobs,
        key: &CacheKey,
        lookup: &Lookup<'_>,
    ) -> Option<M> {
        let store = blobs.store();
        let record = match store.get(&key.meta()).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => return None,
            Err(e) => {
                tracing::warn!(entry = %key.meta(), error = %error_chain(&e), "cache read failed; computing");
                return None;
            }
        };
        let meta = match serde_json::from_slice::<M>(&record) {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(entry = %key.meta(), error = %e, "unreadable cache record; computing");
                return None;
            }
        };
        match blobs.copy_in(&key.payload(lookup.ext), lookup.target).await {
            Ok(()) => Some(meta),
            // Swept between the record and the bytes: a miss like any other.
            Err(StorageError::NotFound { .. }) => None,
            Err(e) => {
                tracing::warn!(entry = %key.meta(), error = %error_chain(&e), "cache copy failed; computing");
                None
            }
        }
    }

    /// Stores what a miss made: the bytes first (copied from the job), the
    /// record last.
    async fn store<M: Serialize>(
        &self,
        blobs: &JobBlobs,
        key: &CacheKey,
        lookup: &Lookup<'_>,
        made: &Made<M>,
    ) {
        if !made.reusable {
            return;
        }
        let store = blobs.store();
        let written = async {
            let record = serde_json::to_vec(&made.meta)
                .map_err(|e| StageError::State(format!("cache record does not serialise: {e}")))?;
            store
                .copy(&blobs.full_key(lookup.target), &key.payload(lookup.ext))
                .await?;
            store.put(&key.meta(), record.into()).await?;
            Ok::<_, StageError>(())
        };
        if let Err(e) = written.await {
            tracing::warn!(entry = %key.meta(), error = %error_chain(&e), "could not store a cache entry");
        }
    }

    /// Claims the entry across replicas, or waits for the replica that holds
    /// the claim to store it.
    async fn claim_or_wait<M: DeserializeOwned>(
        &self,
        blobs: &JobBlobs,
        key: &CacheKey,
        lookup: &Lookup<'_>,
    ) -> Turn<M> {
        let lease_ms = self.settings.claim_lease_seconds.saturating_mul(1_000);
        let poll = Duration::from_millis(self.settings.claim_poll_ms);
        loop {
            match Claim::try_take(blobs.store(), &key.claim(), lease_ms).await {
                Ok(Claimed::Ours(claim)) => {
                    // Made by another replica between our lookup and the claim?
                    if let Some(meta) = self.reuse(blobs, key, lookup).await {
                        claim.release().await;
                        return Turn::Reused(meta);
                    }
                    return Turn::Make(Some(claim));
                }
                Ok(Claimed::Theirs) => {}
                Err(e) => {
                    tracing::warn!(claim = %key.claim(), error = %error_chain(&e), "cannot claim a cache entry; computing");
                    return Turn::Make(None);
                }
            }
            // Another replica computes it: look for its entry until its claim
            // is released (then claim it ourselves) or lapses.
            tokio::time::sleep(poll).await;
            if let Some(meta) = self.reuse(blobs, key, lookup).await {
                return Turn::Reused(meta);
            }
        }
    }
}

/// Whose turn it is to make an entry.
enum Turn<M> {
    /// Ours: make it, under the claim when the store took one.
    Make(Option<Claim>),
    /// Another replica made it; it is copied into the job already.
    Reused(M),
}

fn count(stage: Stage, outcome: &'static str) {
    metrics::counter!(atelier_telemetry::metrics::CACHE_LOOKUPS, "stage" => stage.as_str(), "outcome" => outcome)
        .increment(1);
}
