//! The blob store and its per-job view.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::StorageError;

/// Size of each part a [`BlobWriter`] sends: S3's smallest multipart part
/// (every part but the last must be at least 5 MiB), so one code path serves
/// every backend.
pub const WRITE_CHUNK_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one [`BlobWriter`] in flight at once: with the part being filled,
/// a writer holds at most this many plus one chunks in memory.
const WRITE_PARTS_IN_FLIGHT: usize = 1;

/// A handle on the store holding every job's blobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Blobs as files under `dir` (created when missing).
    pub fn local(dir: impl AsRef<FsPath>) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        let folder_err = |source| StorageError::Folder {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(folder_err)?;
        let dir = dir.canonicalize().map_err(folder_err)?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|source| StorageError::Backend {
                key: dir.display().to_string(),
                source,
            })?
            // Deleting a job's last file removes its folder too (retention),
            // so emptied folders do not pile up.
            .with_automatic_cleanup(true);
        Ok(Self::from_object_store(Arc::new(fs)))
    }

    /// The store a URL names: a folder (`file:///abs/path` or a plain path),
    /// `memory://` (tests), or `s3://bucket/prefix` when built with the `s3`
    /// feature (credentials and region from the usual `AWS_*` variables).
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        if url == "memory://" {
            return Ok(Self::memory());
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Self::local(path);
        }
        if url.starts_with("s3://") {
            return Self::s3(url);
        }
        if url.contains("://") {
            return Err(StorageError::InvalidKey {
                key: url.to_string(),
                reason: "unsupported blob store URL (use a folder, file://, memory:// or s3://)".into(),
            });
        }
        Self::local(url)
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str) -> Result<Self, StorageError> {
        Self::s3_with_options(url, std::iter::empty::<(&str, &str)>())
    }

    /// An S3 store from `s3://bucket/prefix`, with object_store configuration
    /// keys (`aws_endpoint`, `aws_allow_http`, ...) applied over the `AWS_*`
    /// environment: how tests point it at a local S3-compatible server without
    /// touching the process environment.
    #[cfg(feature = "s3")]
    pub fn s3_with_options<K: AsRef<str>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, StorageError> {
        let backend = |source| StorageError::Backend {
            key: url.to_string(),
            source,
        };
        let (bucket_url, prefix) = split_prefix(url);
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(bucket_url);
        for (key, value) in options {
            let key = key
                .as_ref()
                .parse::<object_store::aws::AmazonS3ConfigKey>()
                .map_err(backend)?;
            builder = builder.with_config(key, value);
        }
        let store = builder.build().map_err(backend)?;
        Self::under_prefix(Arc::new(store), prefix)
    }

    #[cfg(not(feature = "s3"))]
    fn s3(url: &str) -> Result<Self, StorageError> {
        Err(StorageError::InvalidKey {
            key: url.to_string(),
            reason: "this build has no S3 support (rebuild atelier-storage with the `s3` feature)".into(),
        })
    }

    /// `inner` seen from below `prefix` (`""` = the whole store): the S3 path of
    /// `s3://bucket/prefix`, kept separate so it is tested on any backend.
    /// object_store's URL parser takes only the bucket from an `s3://` URL, so
    /// without this every stack sharing a bucket would write at its root.
    pub fn under_prefix(inner: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self, StorageError> {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            return Ok(Self::from_object_store(inner));
        }
        let path = Path::parse(prefix).map_err(|e| StorageError::InvalidKey {
            key: prefix.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_object_store(Arc::new(PrefixStore::new(inner, path))))
    }

    /// Blobs in memory, for tests and throwaway runs.
    pub fn memory() -> Self {
        Self::from_object_store(Arc::new(InMemory::new()))
    }

    /// Any `object_store` backend (S3, GCS, Azure) configured by the caller.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    /// A view of the blobs under `prefix` (`""` or ending in `/`), which also
    /// accounts the time spent writing.
    pub fn scoped(&self, prefix: impl Into<String>) -> JobBlobs {
        JobBlobs {
            store: self.clone(),
            prefix: prefix.into(),
            write_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Stores `bytes` under `key`, replacing what was there.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let path = parse(key)?;
        // A write cannot miss a blob: NotFound here means the bucket (or the
        // folder) is missing, a backend fault to report as such, not "no blob".
        self.inner
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map(drop)
            .map_err(|source| StorageError::Backend {
                key: key.to_string(),
                source,
            })
    }

    /// Reads the whole blob under `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = parse(key)?;
        let got = self.inner.get(&path).await.map_err(|e| map_err(key, e))?;
        got.bytes().await.map_err(|e| map_err(key, e))
    }

    /// Stores `bytes` under `key` only if nothing is there yet: `true` when
    /// this call created it, `false` when a blob was already there. A
    /// conditional create in the backend (a local file's exclusive create,
    /// S3's `If-None-Match: *`), so of racing callers across machines exactly
    /// one wins.
    pub async fn create(&self, key: &str, bytes: Bytes) -> Result<bool, StorageError> {
        let path = parse(key)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&path, PutPayload::from_bytes(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(source) => Err(StorageError::Backend {
                key: key.to_string(),
                source,
            }),
        }
    }

    /// Copies the blob under `from` to `to`, replacing what was there: a hard
    /// link in a local folder, a server-side copy in S3, so reusing a large
    /// cached image costs no transfer through this process.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (source, target) = (parse(from)?, parse(to)?);
        self.inner
            .copy(&source, &target)
            .await
            .map_err(|e| map_err(from, e))
    }

    /// Deletes the blob under `key`; a missing blob is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = parse(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(key, e)),
        }
    }

    /// Milliseconds since the Unix epoch when the blob under `key` was last
    /// written, or `None` when it does not exist.
    pub async fn modified_ms(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = parse(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(
                u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err(key, e)),
        }
    }

    /// Size of the blob under `key`, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = parse(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err(key, e)),
        }
    }

    /// A blob written as it arrives (an upload streamed from a client): its
    /// bytes go out in [`WRITE_CHUNK_BYTES`] parts, so memory stays bounded
    /// whatever the blob's size. Nothing is visible under `key` until
    /// [`BlobWriter::finish`]; a writer dropped or aborted before leaves no blob.
    pub async fn writer(&self, key: &str) -> Result<BlobWriter, StorageError> {
        let path = parse(key)?;
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| backend(key, e))?;
        Ok(BlobWriter {
            key: key.to_string(),
            upload: WriteMultipart::new_with_chunk_size(upload, WRITE_CHUNK_BYTES),
            written: 0,
        })
    }

    /// Moves the blob under `from` to `to` (a rename on a folder, a copy and a
    /// delete on S3), replacing what was there.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (source, target) = (parse(from)?, parse(to)?);
        self.inner
            .rename(&source, &target)
            .await
            .map_err(|e| map_err(from, e))
    }
}

/// A blob being written part by part (see [`BlobStore::writer`]).
#[derive(Debug)]
pub struct BlobWriter {
    key: String,
    upload: WriteMultipart,
    written: u64,
}

impl BlobWriter {
    /// Appends `bytes`, first waiting while a part is still being sent (the
    /// back-pressure that keeps a fast client from filling memory).
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        self.upload
            .wait_for_capacity(WRITE_PARTS_IN_FLIGHT)
            .await
            .map_err(|e| backend(&self.key, e))?;
        self.written += bytes.len() as u64;
        self.upload.put(bytes);
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Sends what is left and makes the blob visible; returns its size.
    pub async fn finish(self) -> Result<u64, StorageError> {
        let Self { key, upload, written } = self;
        upload.finish().await.map_err(|e| backend(&key, e))?;
        Ok(written)
    }

    /// Gives the blob up, deleting the parts already sent.
    pub async fn abort(self) -> Result<(), StorageError> {
        let Self { key, upload, .. } = self;
        upload.abort().await.map_err(|e| backend(&key, e))
    }
}

impl BlobStore {
    /// The first-level folders under `prefix` (`"jobs/"` → each job's id), as
    /// names without slashes. A missing prefix has none.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let path = parse(prefix.trim_end_matches('/'))?;
        let listed = self
            .inner
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| map_err(prefix, e));
        let listed = match listed {
            Ok(listed) => listed,
            Err(StorageError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Deletes every blob under `prefix` (a folder: `jobs/{id}/`); returns how
    /// many went. Deleting what is already gone is not an error.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        use futures::{StreamExt, TryStreamExt};
        let path = parse(prefix.trim_end_matches('/'))?;
        let locations = self.inner.list(Some(&path)).map_ok(|meta| meta.location).boxed();
        self.delete_listed(prefix, locations).await
    }

    /// Deletes the blobs `locations` lists (under `prefix`, named in errors);
    /// returns how many went, not counting those already gone.
    async fn delete_listed(
        &self,
        prefix: &str,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> Result<u64, StorageError> {
        use futures::StreamExt;
        let mut deleted = 0;
        let mut results = self.inner.delete_stream(locations);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(map_err(prefix, e)),
            }
        }
        Ok(deleted)
    }
}

impl BlobStore {
    /// Deletes every blob under `prefix` last written before `cutoff_ms`
    /// (milliseconds since the Unix epoch); returns how many went. For stores
    /// swept by age (the result cache), where no row says what is current.
    pub async fn delete_older_than(&self, prefix: &str, cutoff_ms: u64) -> Result<u64, StorageError> {
        use futures::{StreamExt, TryStreamExt};
        let path = parse(prefix.trim_end_matches('/'))?;
        let old = self
            .inner
            .list(Some(&path))
            .try_filter_map(move |meta| {
                let written = u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0);
                futures::future::ready(Ok((written < cutoff_ms).then_some(meta.location)))
            })
            .boxed();
        self.delete_listed(prefix, old).await
    }
}

/// One job's blobs: keys are relative to the job's prefix (`jobs/{id}/` in the
/// services, empty in `atelier process`). Each view counts the time its writes
/// took, which becomes the job's `saving` time.
#[derive(Debug, Clone)]
pub struct JobBlobs {
    store: BlobStore,
    prefix: String,
    write_nanos: Arc<AtomicU64>,
}

impl JobBlobs {
    /// The full key of a job-relative key.
    pub fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Stores `bytes` under the job-relative `key`.
    pub async fn put(&self, key: &str, bytes: impl Into<Bytes>) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.store.put(&self.full_key(key), bytes.into()).await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.write_nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }

    /// Reads the job-relative `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        self.store.get(&self.full_key(key)).await
    }

    /// Size of the job-relative `key`, `None` when absent.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.store.size(&self.full_key(key)).await
    }

    /// The whole store this view is a part of (the result cache lives beside
    /// the jobs, under `cache/`).
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Copies the blob under the full key `from` (outside the job, e.g. a
    /// cache entry) to the job-relative `key`, timed as a write.
    pub async fn copy_in(&self, from: &str, key: &str) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.store.copy(from, &self.full_key(key)).await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.write_nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }

    /// The same blobs with a write timer of its own, so one stage's saving time
    /// is not mixed with another's.
    pub fn with_fresh_timer(&self) -> JobBlobs {
        self.store.scoped(self.prefix.clone())
    }

    /// Seconds spent in `put` through this view (and its clones) so far.
    pub fn write_seconds(&self) -> f64 {
        self.write_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// `scheme://bucket/some/prefix` → (`scheme://bucket`, `some/prefix`).
#[cfg(any(feature = "s3", test))]
fn split_prefix(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => url.split_at(after_scheme + slash),
        None => (url, ""),
    }
}

fn parse(key: &str) -> Result<Path, StorageError> {
    let invalid = |reason: String| StorageError::InvalidKey {
        key: key.to_string(),
        reason,
    };
    if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
        return Err(invalid("must be a non-empty relative path".into()));
    }
    Path::parse(key).map_err(|e| invalid(e.to_string()))
}

/// A write cannot miss a blob: any failure is the backend's.
fn backend(key: &str, source: object_store::Error) -> StorageError {
    StorageError::Backend {
        key: key.to_string(),
        source,
    }
}

fn map_err(key: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound { key: key.to_string() },
        source => StorageError::Backend {
            key: key.to_string(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn folders_are_listed_and_deleted_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        for store in [BlobStore::memory(), BlobStore::local(dir.path()).expect("local")] {
            assert!(store.folders("jobs/").await.expect("none yet").is_empty());
            for key in [
                "jobs/a/inputs/0.jpg",
                "jobs/a/result.json",
                "jobs/b/inputs/0.jpg",
                "other/x",
            ] {
                store.put(key, Bytes::from_static(b"x")).await.expect("put");
            }
            let mut folders = store.folders("jobs/").await.expect("folders");
            folders.sort();
            assert_eq!(folders, ["a", "b"]);
            assert_eq!(store.delete_prefix("jobs/a/").await.expect("delete"), 2);
            assert_eq!(store.delete_prefix("jobs/a/").await.expect("again"), 0);
            assert_eq!(store.folders("jobs/").await.expect("folders"), ["b"]);
            assert_eq!(store.size("jobs/b/inputs/0.jpg").await.expect("size"), Some(1));
            assert_eq!(store.size("other/x").await.expect("size"), Some(1));
        }
    }

    #[tokio::test]
    async fn creates_once_copies_and_sweeps_by_age() {
        let dir = tempfile::tempdir().expect("tmp");
        for store in [BlobStore::memory(), BlobStore::local(dir.path()).expect("local")] {
            assert!(
                store
                    .create("cache/a.claim", Bytes::from_static(b"1"))
                    .await
                    .expect("first")
            );
            assert!(
                !store
                    .create("cache/a.claim", Bytes::from_static(b"2"))
                    .await
                    .expect("second")
            );
            assert_eq!(
                store.get("cache/a.claim").await.expect("get"),
                Bytes::from_static(b"1")
            );
            store
                .put("cache/x/e.jpg", Bytes::from_static(b"img"))
                .await
                .expect("put");
            let job = store.scoped("jobs/j/");
            job.copy_in("cache/x/e.jpg", "variations/0.jpg")
                .await
                .expect("copy");
            assert_eq!(
                job.get("variations/0.jpg").await.expect("copied"),
                Bytes::from_static(b"img")
            );
            assert!(matches!(
                job.copy_in("cache/x/missing.jpg", "variations/1.jpg").await,
                Err(StorageError::NotFound { .. })
            ));
            let first = store
                .modified_ms("cache/a.claim")
                .await
                .expect("head")
                .expect("exists");
            let written = store
                .modified_ms("cache/x/e.jpg")
                .await
                .expect("head")
                .expect("exists");
            assert_eq!(
                store
                    .delete_older_than("cache/", first)
                    .await
                    .expect("none older"),
                0
            );
            assert_eq!(
                store
                    .delete_older_than("cache/", written + 1)
                    .await
                    .expect("sweep"),
                2
            );
            assert_eq!(store.size("cache/x/e.jpg").await.expect("head"), None);
            // The job's copy is its own: sweeping the cache leaves it.
            assert_eq!(
                job.get("variations/0.jpg").await.expect("kept"),
                Bytes::from_static(b"img")
            );
            store
                .delete("cache/x/e.jpg")
                .await
                .expect("deleting what is gone");
        }
    }

    #[tokio::test]
    async fn local_store_round_trips_and_overwrites() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = BlobStore::local(dir.path().join("blobs")).expect("store");
        let job = store.scoped("jobs/abc/");
        job.put("variations/0.jpg", Bytes::from_static(b"one"))
            .await
            .expect("put");
        job.put("variations/0.jpg", Bytes::from_static(b"two"))
            .await
            .expect("overwrite");
        assert_eq!(
            job.get("variations/0.jpg").await.expect("get"),
            Bytes::from_static(b"two")
        );
        assert!(dir.path().join("blobs/jobs/abc/variations/0.jpg").is_file());
        assert_eq!(job.size("variations/0.jpg").await.expect("head"), Some(3));
        assert_eq!(job.size("variations/1.jpg").await.expect("head"), None);
        assert!(job.write_seconds() > 0.0);
    }

    /// A streamed blob appears only once finished, whole, on every backend;
    /// an aborted one leaves nothing; rename and copy move it under job keys.
    #[tokio::test]
    async fn written_blobs_appear_whole_when_finished_and_move_by_rename_or_copy() {
        let dir = tempfile::tempdir().expect("tmp");
        for store in [BlobStore::memory(), BlobStore::local(dir.path()).expect("local")] {
            // Two full parts and a tail, sent in uneven pieces.
            let data: Vec<u8> = (0..2 * WRITE_CHUNK_BYTES + 1234)
                .map(|i| (i % 251) as u8)
                .collect();
            let mut writer = store.writer("jobs/j/uploads/front").await.expect("writer");
            for piece in data.chunks(700_001) {
                writer.write(Bytes::copy_from_slice(piece)).await.expect("write");
            }
            assert_eq!(writer.written(), data.len() as u64);
            assert_eq!(store.size("jobs/j/uploads/front").await.expect("head"), None);
            assert_eq!(writer.finish().await.expect("finish"), data.len() as u64);
            assert_eq!(store.get("jobs/j/uploads/front").await.expect("get"), data);

            let mut dropped = store.writer("jobs/j/uploads/back").await.expect("writer");
            dropped
                .write(Bytes::from_static(b"partial"))
                .await
                .expect("write");
            dropped.abort().await.expect("abort");
            assert_eq!(store.size("jobs/j/uploads/back").await.expect("head"), None);

            store
                .rename("jobs/j/uploads/front", "jobs/j/inputs/0.jpg")
                .await
                .expect("rename");
            store
                .copy("jobs/j/inputs/0.jpg", "jobs/j/inputs/1.jpg")
                .await
                .expect("copy");
            assert_eq!(store.size("jobs/j/uploads/front").await.expect("head"), None);
            assert_eq!(store.get("jobs/j/inputs/1.jpg").await.expect("copy"), data);
            assert!(matches!(
                store.rename("jobs/j/uploads/none", "jobs/j/inputs/2.jpg").await,
                Err(StorageError::NotFound { .. })
            ));
        }
    }

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(split_prefix("s3://bucket"), ("s3://bucket", ""));
        assert_eq!(split_prefix("s3://bucket/"), ("s3://bucket", "/"));
        assert_eq!(
            split_prefix("s3://bucket/stacks/prod"),
            ("s3://bucket", "/stacks/prod")
        );
    }

    /// The same wrapping as `s3://bucket/prefix`, over memory: every key lands
    /// under the prefix in the backing store, and reads come back through it.
    #[tokio::test]
    async fn a_prefixed_store_keeps_every_key_under_its_prefix() {
        let backing = Arc::new(InMemory::new());
        let store = BlobStore::under_prefix(backing.clone(), "/stacks/prod/").expect("prefix");
        let job = store.scoped("jobs/abc/");
        job.put("inputs/0.jpg", Bytes::from_static(b"photo"))
            .await
            .expect("put");
        assert_eq!(
            job.get("inputs/0.jpg").await.expect("get"),
            Bytes::from_static(b"photo")
        );
        let raw = BlobStore::from_object_store(backing);
        assert_eq!(
            raw.get("stacks/prod/jobs/abc/inputs/0.jpg")
                .await
                .expect("raw get"),
            Bytes::from_static(b"photo")
        );
        assert!(matches!(
            raw.get("jobs/abc/inputs/0.jpg").await,
            Err(StorageError::NotFound { .. })
        ));
        assert!(matches!(
            BlobStore::under_prefix(Arc::new(InMemory::new()), "a/../b"),
            Err(StorageError::InvalidKey { .. })
        ));
    }

    #[cfg(not(feature = "s3"))]
    #[test]
    fn s3_urls_are_refused_with_a_reason_without_the_feature() {
        let err = BlobStore::from_url("s3://bucket/prefix").expect_err("no s3 in this build");
        assert!(err.to_string().contains("s3://bucket/prefix"), "{err}");
    }

    #[tokio::test]
    async fn missing_and_invalid_keys_are_typed_errors() {
        let store = BlobStore::memory();
        assert!(matches!(
            store.get("nope.jpg").await,
            Err(StorageError::NotFound { .. })
        ));
        for bad in ["", "/abs", "a/../b", "dir/"] {
            assert!(
                matches!(
                    store.put(bad, Bytes::new()).await,
                    Err(StorageError::InvalidKey { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
