//! Single flight: identical work at the same time is done once.
//!
//! Within a process ([`Flights`]) the work for one key waits on a lock, so the
//! second caller finds the first one's entry. Across processes (worker
//! replicas on other machines) a [`Claim`] blob is created next to the entry
//! with a conditional create; whoever fails to create it waits for the entry
//! while the claim is fresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use atelier_core::clock::now_ms;
use atelier_core::error::error_chain;
use atelier_storage::{BlobStore, StorageError};
use bytes::Bytes;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One lock per key in flight in this process. Entries are weak, so a key
/// nobody works on costs nothing and is pruned on the next insert.
#[derive(Debug, Default)]
pub struct Flights {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl Flights {
    /// Waits until no other task of this process works on `key`; the work is
    /// ours until the guard drops.
    pub async fn enter(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    locks.insert(key.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Keys with someone working on or waiting for them (for tests).
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        let locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.values().filter(|l| l.strong_count() > 0).count()
    }
}

/// What trying to claim an entry found.
#[derive(Debug)]
pub enum Claimed {
    /// This process created the claim: it computes, then [`Claim::release`]s.
    Ours(Claim),
    /// Another replica holds a fresh claim.
    Theirs,
}

/// A claim this process holds on computing one entry.
#[derive(Debug)]
pub struct Claim {
    store: BlobStore,
    key: String,
}

impl Claim {
    /// Claims `key` for `lease_ms` unless a fresh claim is there; a lapsed
    /// claim (its owner died) is removed and claimed again.
    pub async fn try_take(store: &BlobStore, key: &str, lease_ms: u64) -> Result<Claimed, StorageError> {
        let until = now_ms().saturating_add(lease_ms);
        if store.create(key, Bytes::from(until.to_string())).await? {
            return Ok(Claimed::Ours(Self {
                store: store.clone(),
                key: key.to_string(),
            }));
        }
        let held_until = match store.get(key).await {
            Ok(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0),
            // Released between our create and this read: try again next round.
            Err(StorageError::NotFound { .. }) => return Ok(Claimed::Theirs),
            Err(e) => return Err(e),
        };
        if held_until > now_ms() {
            return Ok(Claimed::Theirs);
        }
        tracing::warn!(
            claim = key,
            "a cache claim lapsed (its owner stopped); taking it over"
        );
        store.delete(key).await?;
        if store.create(key, Bytes::from(until.to_string())).await? {
            Ok(Claimed::Ours(Self {
                store: store.clone(),
                key: key.to_string(),
            }))
        } else {
            Ok(Claimed::Theirs)
        }
    }

    /// Gives the claim up (the entry is written, or the work failed and the
    /// waiters should try themselves).
    pub async fn release(self) {
        if let Err(e) = self.store.delete(&self.key).await {
            // It lapses on its own after the lease.
            tracing::warn!(claim = %self.key, error = %error_chain(&e), "could not release a cache claim");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_task_at_a_time_per_key() {
        let flights = Arc::new(Flights::default());
        let first = flights.enter("a").await;
        // Another key is free; the same key waits for the first guard.
        drop(flights.enter("b").await);
        let waiter = tokio::spawn({
            let flights = flights.clone();
            async move { drop(flights.enter("a").await) }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        waiter.await.expect("the waiter got the lock");
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn claims_exclude_until_released_or_lapsed() {
        let store = BlobStore::memory();
        let Claimed::Ours(claim) = Claim::try_take(&store, "cache/x.claim", 60_000)
            .await
            .expect("claim")
        else {
            panic!("the first claim is ours");
        };
        assert!(matches!(
            Claim::try_take(&store, "cache/x.claim", 60_000)
                .await
                .expect("held"),
            Claimed::Theirs
        ));
        claim.release().await;
        let Claimed::Ours(again) = Claim::try_take(&store, "cache/x.claim", 0).await.expect("free") else {
            panic!("free after release");
        };
        // A zero lease lapses at once: the next caller takes it over.
        std::mem::forget(again);
        assert!(matches!(
            Claim::try_take(&store, "cache/x.claim", 60_000)
                .await
                .expect("lapsed"),
            Claimed::Ours(_)
        ));
    }
}
