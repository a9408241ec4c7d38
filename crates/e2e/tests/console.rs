//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/test.sh`): the page asks for the
//! admin key, goes live, shows a job submitted through the API until it
//! completes, with its thumbnail; the job page shows the images and plays the
//! video; the browser logs no error. Screenshots are kept under
//! `target/test-artifacts/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atelier_e2e::{Options, System, Target, bin_dir, data_uri, free_port, on_both_targets, photo, request};
use atelier_fixtures::GarmentShape;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The whole browser part's budget: driver start, page, one job, job page.
const BROWSER_BUDGET: Duration = Duration::from_secs(150);
/// Longest wait for one thing to show on the page.
const SHOW_LIMIT: Duration = Duration::from_secs(30);
/// Longest wait for the job to complete on the page.
const JOB_LIMIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: scripts/test.sh installs Debian's chromium and chromium-driver (ensure_browser)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + SHOW_LIMIT;
        let http = reqwest::Client::new();
        while !http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "chromedriver never answered");
            tokio::time::sleep(POLL).await;
        }
        driver
    }

    async fn browser(&self) -> Client {
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1600", "--autoplay-policy=no-user-gesture-required"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(caps);
        builder.connect(&self.url).await.expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ChromeDriver's browser log (`goog:loggingPrefs`), emptied by each read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

/// Every error the page logged so far (console errors, failed loads, uncaught exceptions).
async fn browser_errors(client: &Client) -> Vec<String> {
    let log = client.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits for `css` to match, failing with `what` and a screenshot.
async fn shown(client: &Client, css: &str, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        if client.find(Locator::Css(css)).await.is_ok() {
            return;
        }
        if Instant::now() >= deadline {
            save(client, "console-failure.png").await;
            let errors = browser_errors(client).await;
            panic!("{what}: `{css}` never showed (browser errors: {errors:?})");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `target/test-artifacts/NAME`, written.
async fn save(client: &Client, name: &str) -> PathBuf {
    let dir = bin_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artefact folder");
    let path = dir.join(name);
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(&path, png).expect("screenshot written");
    path
}

async fn console_shows_a_job_from_submission_to_completion(target: Target) {
    let sys = System::start(target, Options::default()).await;
    let base = sys.url(0);
    let name = match target {
        Target::Stack => "stack",
        Target::Serve => "serve",
    };

    // The data is behind admin keys, not just the page.
    let anonymous = System::client_with_key(None);
    let events = format!("{base}/api/v1/admin/console/events");
    let code = anonymous.get(&events).send().await.expect("answers").status();
    assert_eq!(code, 401);
    let tenant = sys.create_key(&["--name", "shop-console", "--rate-per-minute", "0"]);
    let code = System::client_with_key(Some(&tenant))
        .get(&events)
        .send()
        .await
        .expect("answers")
        .status();
    assert_eq!(code, 403, "a tenant's key does not open the console");

    let started = Instant::now();
    let driver = Driver::start().await;
    let client = driver.browser().await;
    client.goto(&format!("{base}/console")).await.expect("page");
    shown(&client, "#key-form:not([hidden])", SHOW_LIMIT, "the key prompt").await;
    client
        .find(Locator::Css("#key"))
        .await
        .expect("key field")
        .send_keys(sys.key())
        .await
        .expect("typed");
    client
        .find(Locator::Css("#key-save"))
        .await
        .expect("button")
        .click()
        .await
        .expect("clicked");
    shown(
        &client,
        "#conn[data-state=\"live\"]",
        SHOW_LIMIT,
        "the live stream",
    )
    .await;
    shown(
        &client,
        "#stages tr[data-stage=\"post_processing\"]",
        SHOW_LIMIT,
        "the stage table",
    )
    .await;

    // A full job (images, video, report) through the API, as a client would.
    let body = request(&data_uri(&photo(GarmentShape::TShirt, 11)), [1, 1, 0], false);
    let (code, accepted) = sys
        .post(0, "/api/v1/generate", &body, &[("Prefer", "respond-async")])
        .await;
    assert_eq!(code, 202, "{accepted}");
    let id = accepted["request_id"].as_str().expect("id").to_string();
    let row = format!("#jobs tr[data-job-id=\"{id}\"]");
    shown(&client, &row, SHOW_LIMIT, "the job's row").await;
    shown(
        &client,
        &format!("{row}[data-status=\"completed\"]"),
        JOB_LIMIT,
        "the job completing",
    )
    .await;
    shown(
        &client,
        &format!("{row} img.thumb[src^=\"blob:\"]"),
        SHOW_LIMIT,
        "the thumbnail",
    )
    .await;
    shown(
        &client,
        &format!("{row} .timeline i.done:nth-child(4)"),
        SHOW_LIMIT,
        "the stage timeline",
    )
    .await;
    shown(
        &client,
        "#latency-chart polyline[data-stage=\"analysis\"]",
        SHOW_LIMIT,
        "the latency chart",
    )
    .await;
    let job = sys.wait_terminal(&id, JOB_LIMIT).await;
    assert_eq!(job["status"], "completed", "{job}");
    let shot = save(&client, &format!("console-{name}.png")).await;
    eprintln!("console screenshot: {}", shot.display());

    // The job page: inputs, variations, the video playing, the report link.
    client
        .find(Locator::Css(&format!("{row} a[href^=\"#/jobs/\"]")))
        .await
        .expect("link")
        .click()
        .await
        .expect("clicked");
    shown(
        &client,
        "#job-page:not([hidden]) #job-inputs img[src^=\"blob:\"]",
        SHOW_LIMIT,
        "the input",
    )
    .await;
    shown(
        &client,
        "#job-variations img[src^=\"blob:\"]",
        SHOW_LIMIT,
        "the variations",
    )
    .await;
    shown(&client, "#job-video[src^=\"blob:\"]", SHOW_LIMIT, "the video").await;
    shown(&client, "#job-report", SHOW_LIMIT, "the report link").await;
    let deadline = Instant::now() + SHOW_LIMIT;
    loop {
        let playing = client
            .execute(
                "const v = document.getElementById('job-video'); return !!v && v.readyState >= 2 && v.currentTime > 0;",
                vec![],
            )
            .await
            .expect("script");
        if playing == Value::Bool(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the video never played");
        tokio::time::sleep(POLL).await;
    }
    let facts = client
        .find(Locator::Css("dd[data-fact=\"status\"]"))
        .await
        .expect("status fact")
        .text()
        .await
        .expect("text");
    assert_eq!(facts, "completed");
    let shot = save(&client, &format!("console-job-{name}.png")).await;
    eprintln!("job page screenshot: {}", shot.display());

    let errors = browser_errors(&client).await;
    assert!(errors.is_empty(), "the console logged errors: {errors:#?}");
    client.close().await.expect("closed");
    assert!(
        started.elapsed() < BROWSER_BUDGET,
        "the browser part took {:?}, over its budget of {BROWSER_BUDGET:?}",
        started.elapsed()
    );
}

on_both_targets!(console_shows_a_job_from_submission_to_completion);
