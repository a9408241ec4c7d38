//! One vendor quota for a fleet: two workers' gates over one PostgreSQL job
//! store share a single budget, where per-process limiters would each allow a
//! full burst.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use atelier_core::settings::DatabaseSettings;
use atelier_jobs::PgJobStore;
use atelier_providers::QuotaGate;
use atelier_worker::SharedQuota;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// One call per two seconds after the burst: long against the checks below.
const PER_MINUTE: u32 = 30;
const BURST: u32 = 3;

fn settings(schema: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: std::env::var("ATELIER_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string()),
        schema: schema.to_string(),
        max_connections: 4,
        connect_timeout_ms: 10_000,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_one_vendor_quota() {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let settings = settings(&schema);
    // Two processes' worth: separate connections, one schema.
    let first = SharedQuota::new(Arc::new(PgJobStore::connect(&settings).await.expect("connect")));
    let second = SharedQuota::new(Arc::new(PgJobStore::connect(&settings).await.expect("connect")));

    // The first worker spends the whole burst at once.
    for n in 0..BURST {
        tokio::time::timeout(Duration::from_secs(5), first.acquire("gemini", PER_MINUTE, BURST))
            .await
            .unwrap_or_else(|_| panic!("call {n} of the burst waited"));
    }
    // The second worker's first call must now wait for the shared budget
    // (alone it would have had a burst of its own).
    let waited = tokio::time::timeout(
        Duration::from_millis(600),
        second.acquire("gemini", PER_MINUTE, BURST),
    )
    .await;
    assert!(waited.is_err(), "the second worker ignored the first one's calls");
    // Another vendor is another budget.
    tokio::time::timeout(
        Duration::from_secs(5),
        second.acquire("replicate", PER_MINUTE, BURST),
    )
    .await
    .expect("replicate's budget is untouched");
    // And the wait ends once the budget refills.
    tokio::time::timeout(
        Duration::from_secs(15),
        second.acquire("gemini", PER_MINUTE, BURST),
    )
    .await
    .expect("the quota refills");

    let pool = sqlx::PgPool::connect(&settings.url).await.expect("pool");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .expect("drop schema");
}
