//! Result reuse end to end on both targets: a repeat reuses every stage
//! (same bytes, `metadata.cache` saying so), an overlapping request reuses
//! the shared part, `Cache-Control: no-cache` computes afresh, five
//! identical requests at once compute the analysis once, and so do two
//! identical requests on two replicas of each worker (the stack).

use atelier_e2e::{Options, System, Target, data_uri, on_both_targets, photo, photo_sized, request};
use atelier_fixtures::GarmentShape;
use serde_json::{Value, json};

on_both_targets!(
    repeats_and_overlaps_reuse_and_no_cache_bypasses,
    identical_requests_at_once_compute_once
);

/// `metadata.cache` of a result as `[hits, misses]` per stage, in pipeline order.
fn reused(result: &Value) -> [[u64; 2]; 4] {
    let cache = &result["metadata"]["cache"];
    ["analysis", "generation", "upscaling", "post_processing"].map(|stage| {
        let counts = &cache[stage];
        [
            counts["hits"]
                .as_u64()
                .unwrap_or_else(|| panic!("{stage} hits in {cache}")),
            counts["misses"]
                .as_u64()
                .unwrap_or_else(|| panic!("{stage} misses in {cache}")),
        ]
    })
}

/// The bytes of every image, upscale and the video of a result, in order.
async fn artefacts(sys: &System, result: &Value) -> Vec<bytes::Bytes> {
    let mut urls: Vec<String> = ["image_variations", "upscale_image"]
        .iter()
        .flat_map(|list| result[*list].as_array().cloned().unwrap_or_default())
        .map(|item| item["url"].as_str().expect("url").to_string())
        .collect();
    urls.extend(result["video_url"].as_str().map(str::to_string));
    let mut out = Vec::new();
    for url in urls {
        let (status, _, bytes) = sys.file(&url).await;
        assert_eq!(status, 200, "{url}");
        out.push(bytes);
    }
    out
}

async fn repeats_and_overlaps_reuse_and_no_cache_bypasses(target: Target) {
    let sys = System::start(target, cache_on(Vec::new())).await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 21));
    let body = request(&uri, [1, 1, 0], true);

    let (code, first) = sys.post(0, "/api/v1/generate", &body, &[]).await;
    assert_eq!(code, 200, "{first}\n{}", sys.logs());
    assert_eq!(first["metadata"]["cache"]["bypassed"], false);
    assert_eq!(reused(&first), [[0, 1], [0, 2], [0, 2], [0, 1]], "{first}");

    // The same request again: every stage reused, the same bytes in a new job.
    let (code, second) = sys.post(0, "/api/v1/generate", &body, &[]).await;
    assert_eq!(code, 200, "{second}\n{}", sys.logs());
    assert_ne!(second["request_id"], first["request_id"]);
    assert_eq!(reused(&second), [[1, 0], [2, 0], [2, 0], [1, 0]], "{second}");
    let (before, after) = (artefacts(&sys, &first).await, artefacts(&sys, &second).await);
    assert_eq!(before.len(), 5, "two images, two upscales, the video");
    assert_eq!(before, after);
    assert_eq!(second["analysis"], first["analysis"]);
    // The job resource says the same.
    let id = second["request_id"].as_str().expect("id");
    let job = sys.wait_terminal(id, std::time::Duration::from_secs(60)).await;
    assert_eq!(
        job["result"]["metadata"]["cache"], second["metadata"]["cache"],
        "{job}"
    );

    // Overlapping: the same photo with one more plain image, images only.
    let more = request(&uri, [1, 2, 0], true);
    let (code, overlap) = sys.post(0, "/api/v1/generate/image", &more, &[]).await;
    assert_eq!(code, 200, "{overlap}\n{}", sys.logs());
    assert_eq!(reused(&overlap), [[1, 0], [2, 1], [2, 1], [0, 0]], "{overlap}");
    let shared = artefacts(&sys, &overlap).await;
    assert_eq!(
        shared[..2],
        before[..2],
        "white and the first plain are the first job's"
    );

    // Cache-Control: no-cache: everything made again (and deterministic).
    let (code, fresh) = sys
        .post(0, "/api/v1/generate", &body, &[("Cache-Control", "no-cache")])
        .await;
    assert_eq!(code, 200, "{fresh}\n{}", sys.logs());
    assert_eq!(fresh["metadata"]["cache"]["bypassed"], true);
    assert_eq!(reused(&fresh), [[0, 1], [0, 2], [0, 2], [0, 1]], "{fresh}");
    assert_eq!(artefacts(&sys, &fresh).await[..4], before[..4]);

    // Entries live under cache/ beside jobs/, never inside a job's folder.
    let cache_dir = sys.job_dir(id).join("../../cache");
    for stage in ["analysis", "generation", "upscaling", "post_processing"] {
        assert!(
            cache_dir.join(stage).is_dir(),
            "cache/{stage} in {}",
            cache_dir.display()
        );
    }
    let job_files = atelier_e2e::files_under(&sys.job_dir(id));
    assert!(job_files.iter().all(|f| !f.contains("cache")), "{job_files:?}");
}

async fn identical_requests_at_once_compute_once(target: Target) {
    // Five jobs may run each stage at once in one worker (and in serve).
    let options = cache_on(vec![("ATELIER__WORKER__CONCURRENCY".into(), "5".into())]);
    let sys = System::start(target, options).await;
    // A large photo: its analysis outlasts the five submissions.
    let uri = data_uri(&photo_sized(GarmentShape::Dress, 5, 1_800, 2_400));
    let body = json!({
        "inputImages": [ { "url": uri, "view": "front", "backgrounds": [1, 1, 0] } ],
        "upscale": true
    });
    let (results, total) = identical_at_once(&sys, &body, 5).await;
    assert_eq!(
        total,
        [[4, 1], [8, 2], [8, 2], [0, 0]],
        "one analysis, two renders and two upscales made for five jobs"
    );
    let first = artefacts(&sys, &results[0]).await;
    for result in &results[1..] {
        assert_eq!(artefacts(&sys, result).await, first);
    }
}

/// Worker replicas are separate processes: nothing in memory is shared, so
/// only the claim blob beside an entry (a conditional create in the blob
/// store) keeps two replicas from computing the same entry at once. Two
/// replicas of every computing stage, one job at a time each, and two identical
/// requests at once: each replica takes one job, and still one of them computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_one_computation_through_the_claim() {
    let mut sys = System::start(
        Target::Stack,
        cache_on(vec![("ATELIER__WORKER__CONCURRENCY".into(), "1".into())]),
    )
    .await;
    for name in ["analysis", "generation", "upscaling"] {
        sys.stack().start_replica(name, 2).await;
    }
    // A large photo: its analysis outlasts the two submissions.
    let uri = data_uri(&photo_sized(GarmentShape::Dress, 6, 1_800, 2_400));
    let body = json!({
        "inputImages": [ { "url": uri, "view": "front", "backgrounds": [1, 1, 0] } ],
        "upscale": true
    });
    let (results, total) = identical_at_once(&sys, &body, 2).await;
    assert_eq!(
        total,
        [[1, 1], [2, 2], [2, 2], [0, 0]],
        "one analysis, two renders and two upscales made for two jobs on two replicas\n{}",
        sys.logs()
    );
    assert_eq!(
        artefacts(&sys, &results[0]).await,
        artefacts(&sys, &results[1]).await
    );
}

/// Posts `body` `n` times at once; every answer must be 200. The results,
/// and their `metadata.cache` counts summed per stage.
async fn identical_at_once(sys: &System, body: &Value, n: usize) -> (Vec<Value>, [[u64; 2]; 4]) {
    let answers =
        futures::future::join_all((0..n).map(|_| sys.post(0, "/api/v1/generate/image", body, &[]))).await;
    let mut total = [[0; 2]; 4];
    let mut results = Vec::new();
    for (code, result) in answers {
        assert_eq!(code, 200, "{result}\n{}", sys.logs());
        for (sum, counts) in total.iter_mut().zip(reused(&result)) {
            sum[0] += counts[0];
            sum[1] += counts[1];
        }
        results.push(result);
    }
    (results, total)
}

/// The test systems start with the cache off (most tests count each job's
/// work); these tests are about the cache, so they switch it on.
fn cache_on(mut env: Vec<(String, String)>) -> Options {
    env.push(("ATELIER__CACHE__ENABLED".into(), "true".into()));
    Options {
        env,
        ..Options::default()
    }
}
