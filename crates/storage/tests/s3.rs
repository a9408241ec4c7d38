//! The S3 blob store (`s3://bucket/prefix`) against a real S3-compatible server:
//! moto's server from PyPI, started on a free port for this test.
//! `scripts/test.sh` installs it and runs this file with `--features s3`; run
//! alone, it looks for `moto_server` in `ATELIER_TEST_MOTO_SERVER` or on PATH.
#![cfg(feature = "s3")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atelier_storage::{BlobStore, StorageError};
use bytes::Bytes;

/// How long moto may take to open its port (it imports boto and flask first).
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two connection attempts while it starts.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A moto server on 127.0.0.1, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Self {
        let program = std::env::var("ATELIER_TEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program} ({e}): run scripts/test.sh, or `pip install 'moto[server]'`")
            });
        let mut moto = Self { child, port };
        let deadline = Instant::now() + STARTUP_DEADLINE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("{program} exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "{program} did not open port {port}");
            std::thread::sleep(POLL_INTERVAL);
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (object_store has no such call; moto takes unsigned requests).
    fn create_bucket(&self, bucket: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "create bucket: {answer}");
    }

    fn store(&self, url: &str) -> BlobStore {
        BlobStore::s3_with_options(
            url,
            [
                ("aws_endpoint", self.endpoint()),
                ("aws_allow_http", "true".into()),
                ("aws_region", "us-east-1".into()),
                ("aws_access_key_id", "atelier-test".into()),
                ("aws_secret_access_key", "atelier-test".into()),
            ],
        )
        .expect("s3 store")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn s3_store_round_trips_under_its_prefix() {
    let moto = Moto::start();
    moto.create_bucket("atelier");

    let stack = moto.store("s3://atelier/stacks/prod");
    let job = stack.scoped("jobs/abc/");
    job.put("inputs/0.jpg", Bytes::from_static(b"one"))
        .await
        .expect("put");
    job.put("inputs/0.jpg", Bytes::from_static(b"two"))
        .await
        .expect("overwrite");
    assert_eq!(
        job.get("inputs/0.jpg").await.expect("get"),
        Bytes::from_static(b"two")
    );
    assert_eq!(job.size("inputs/0.jpg").await.expect("head"), Some(3));
    assert_eq!(job.size("inputs/1.jpg").await.expect("head"), None);
    assert!(matches!(
        job.get("inputs/1.jpg").await,
        Err(StorageError::NotFound { .. })
    ));

    // The bucket seen whole: the object sits under the prefix, not at the root.
    let bucket = moto.store("s3://atelier");
    assert_eq!(
        bucket
            .get("stacks/prod/jobs/abc/inputs/0.jpg")
            .await
            .expect("object under the prefix"),
        Bytes::from_static(b"two")
    );
    assert_eq!(bucket.size("jobs/abc/inputs/0.jpg").await.expect("head"), None);

    // Another stack's prefix in the same bucket sees nothing of this one.
    let other = moto.store("s3://atelier/stacks/staging");
    assert_eq!(other.size("jobs/abc/inputs/0.jpg").await.expect("head"), None);
}

#[tokio::test]
async fn a_missing_bucket_is_a_backend_error_not_a_missing_blob() {
    let moto = Moto::start();
    let err = moto
        .store("s3://no-such-bucket/x")
        .put("k", Bytes::from_static(b"v"))
        .await
        .expect_err("no bucket");
    assert!(err.is_transient(), "{err:?}");
}
