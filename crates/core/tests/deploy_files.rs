//! Static checks of the deployment files (no Docker engine or cluster needed):
//! docker-compose.yml, Dockerfile and deploy/k8s/*.yaml name real binaries, real
//! settings keys and matching ports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use atelier_core::settings::Settings;
use serde::Deserialize;
use serde_yaml::Value;

const STAGES: [&str; 4] = ["analysis", "generation", "upscaling", "postprocess"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `[[bin]]` name declared in crates/*/Cargo.toml.
fn binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("crates")).expect("crates/") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let table: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        for bin in table.get("bin").and_then(|b| b.as_array()).into_iter().flatten() {
            if let Some(name) = bin.get("name").and_then(|n| n.as_str()) {
                names.insert(name.to_string());
            }
        }
    }
    for expected in ["atelier", "atelier-gateway", "atelier-status"] {
        assert!(
            names.contains(expected),
            "no [[bin]] named {expected} in crates/*/Cargo.toml"
        );
    }
    for stage in STAGES {
        assert!(
            names.contains(&format!("atelier-{stage}")),
            "no [[bin]] for stage {stage}"
        );
    }
    names
}

/// Loads the settings with these `ATELIER__` variables: unknown keys and
/// unparsable values are refused by `deny_unknown_fields` and the typed fields.
fn assert_settings_accept(origin: &str, vars: &BTreeMap<String, String>) -> Settings {
    let vars = vars.iter().map(|(k, v)| (k.clone(), v.clone()));
    Settings::load_from(Path::new("/nonexistent"), None, vars)
        .unwrap_or_else(|e| panic!("{origin}: ATELIER__ variables are not valid settings: {e:?}"))
}

fn atelier_vars(map: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    map.into_iter()
        .filter(|(k, _)| k.starts_with("ATELIER__"))
        .collect()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A compose `environment`, as a map or a `KEY=VALUE` list.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|item| {
                let s = scalar(item);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The program a compose `command`/`entrypoint` or a k8s `command` runs.
fn program(v: &Value) -> Option<String> {
    match v {
        Value::Sequence(list) => list.first().map(scalar),
        Value::String(s) => s.split_whitespace().next().map(str::to_string),
        _ => None,
    }
}

fn port_of(bind: &str) -> &str {
    bind.rsplit_once(':').map_or(bind, |(_, p)| p)
}

fn compose() -> Value {
    let mut doc: Value =
        serde_yaml::from_str(&read("docker-compose.yml")).expect("docker-compose.yml parses");
    doc.apply_merge().expect("merge keys resolve");
    // Merge keys may sit one level down (services inherit a worker template).
    if let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) {
        for (_, service) in services.iter_mut() {
            service.apply_merge().expect("merge keys resolve");
        }
    }
    doc
}

#[test]
fn the_check_refuses_unknown_settings_keys() {
    let bad = BTreeMap::from([("ATELIER__GATEWAY__PORT".to_string(), "8080".to_string())]);
    assert!(Settings::load_from(Path::new("/nonexistent"), None, bad).is_err());
}

#[test]
fn compose_services_run_real_binaries_with_real_settings() {
    let bins = binaries();
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services:");
    let mut commanded = BTreeSet::new();
    for (name, service) in services {
        let name = scalar(name);
        for key in ["command", "entrypoint"] {
            if let Some(prog) = service.get(key).and_then(program) {
                assert!(
                    bins.contains(&prog),
                    "compose service {name}: {key} runs `{prog}`, not a [[bin]] ({bins:?})"
                );
                commanded.insert(prog);
            }
        }
        let vars = atelier_vars(compose_env(service));
        if !vars.is_empty() {
            assert_settings_accept(&format!("compose service {name}"), &vars);
        }
        // Every dependency it waits on has a healthcheck.
        if let Some(deps) = service.get("depends_on").and_then(Value::as_mapping) {
            for (dep, cond) in deps {
                assert_eq!(cond["condition"], "service_healthy", "{name} -> {dep:?}");
                assert!(
                    services[dep].get("healthcheck").is_some(),
                    "{name} waits on {dep:?}, which has no healthcheck"
                );
            }
        }
    }
    for service in ["gateway", "status"].into_iter().chain(STAGES) {
        assert!(
            commanded.contains(&format!("atelier-{service}")),
            "no compose service runs atelier-{service}"
        );
    }
    for (infra, image) in [("rabbitmq", "rabbitmq:3-management"), ("postgres", "postgres:16")] {
        assert_eq!(services[infra]["image"], image);
        assert!(
            services[infra].get("healthcheck").is_some(),
            "{infra} has no healthcheck"
        );
    }
}

#[test]
fn compose_ports_match_the_bind_settings() {
    let doc = compose();
    for (service, key, default_port) in [
        ("gateway", "ATELIER__GATEWAY__BIND", "8080"),
        ("status", "ATELIER__STATUS__BIND", "50051"),
    ] {
        let s = &doc["services"][service];
        let env = compose_env(s);
        let bind = env.get(key).unwrap_or_else(|| panic!("{service} sets no {key}"));
        let port = port_of(bind);
        assert_eq!(port, default_port, "{service}: {key}={bind}");
        assert!(
            !bind.starts_with("127."),
            "{service} must listen beyond loopback in a container: {bind}"
        );
        let published: Vec<String> = s["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .map(scalar)
            .collect();
        assert!(
            published
                .iter()
                .any(|p| port_of(p.trim_end_matches("/tcp")) == port),
            "{service} publishes {published:?}, but listens on {port}"
        );
        let check = serde_yaml::to_string(&s["healthcheck"]["test"]).expect("healthcheck");
        assert!(
            check.contains(port),
            "{service}'s healthcheck does not probe port {port}: {check}"
        );
    }
    let check = serde_yaml::to_string(&doc["services"]["gateway"]["healthcheck"]["test"]).expect("test");
    assert!(check.contains("/readyz"), "gateway healthcheck: {check}");
}

#[test]
fn compose_services_share_one_blob_volume() {
    let doc = compose();
    assert!(doc["volumes"].get("blobs").is_some(), "no named volume `blobs`");
    let mut mounts = BTreeSet::new();
    for (name, service) in doc["services"].as_mapping().expect("services") {
        if !service
            .get("command")
            .and_then(program)
            .is_some_and(|p| p.starts_with("atelier"))
        {
            continue;
        }
        let mount = service["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(scalar)
            .find(|v| v.starts_with("blobs:"))
            .unwrap_or_else(|| panic!("{name:?} does not mount the blobs volume"));
        let path = mount.split(':').nth(1).expect("mount path").to_string();
        let url = compose_env(service)
            .remove("ATELIER__BLOBS__URL")
            .unwrap_or_default();
        assert_eq!(
            url,
            format!("file://{path}"),
            "{name:?}: ATELIER__BLOBS__URL is not the mounted volume"
        );
        mounts.insert(path);
    }
    assert_eq!(mounts.len(), 1, "blobs mounted at different paths: {mounts:?}");
}

#[test]
fn dockerfile_builds_with_the_script_packages_and_copies_every_binary() {
    let dockerfile = read("Dockerfile");
    for bin in binaries() {
        let copied = dockerfile.lines().any(|l| {
            l.starts_with("COPY --from=builder") && l.trim_end().ends_with(&format!("/usr/local/bin/{bin}"))
        });
        assert!(copied, "the Dockerfile does not copy {bin} to /usr/local/bin");
    }
    let common = read("scripts/lib/common.sh");
    let start = common
        .find("BUILD_PACKAGES=(")
        .expect("BUILD_PACKAGES in common.sh")
        + "BUILD_PACKAGES=(".len();
    let end = start + common[start..].find(')').expect("closing paren");
    let words: BTreeSet<&str> = dockerfile.split_whitespace().collect();
    for package in common[start..end].split_whitespace() {
        assert!(
            words.contains(package),
            "the Dockerfile's builder lacks build package {package}"
        );
    }
    for runtime in [
        "libavcodec59",
        "libavformat59",
        "libavutil57",
        "libswscale6",
        "libssl3",
        "ca-certificates",
        "curl",
    ] {
        assert!(words.contains(runtime), "the runtime image lacks {runtime}");
    }
    assert!(dockerfile.contains("FROM rust:1.95-bookworm AS builder"));
    assert!(dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(
        !user.contains("root") && user.trim() != "USER 0",
        "runs as root: {user}"
    );
}

#[test]
fn k8s_manifests_parse_and_name_real_binaries_settings_and_queues() {
    let bins = binaries();
    let dir = root().join("deploy/k8s");
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/k8s");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                assert!(
                    value.get("kind").is_some(),
                    "{}: a document without kind",
                    file.display()
                );
                docs.push(value);
            }
        }
    }
    let of_kind = |kind: &'static str| docs.iter().filter(move |d| d["kind"] == kind);

    let mut deployments = BTreeMap::new();
    for d in of_kind("Deployment") {
        let name = scalar(&d["metadata"]["name"]);
        let containers = d["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .expect("containers");
        for c in containers {
            let prog = program(&c["command"])
                .unwrap_or_else(|| panic!("Deployment {name}: a container without command"));
            assert!(
                bins.contains(&prog),
                "Deployment {name} runs `{prog}`, not a [[bin]]"
            );
            deployments.insert(name.clone(), prog);
        }
    }
    for service in ["gateway", "status"].into_iter().chain(STAGES) {
        let bin = format!("atelier-{service}");
        assert!(
            deployments.values().any(|p| *p == bin),
            "no Deployment runs {bin}"
        );
    }

    let mut config = BTreeMap::new();
    for d in of_kind("ConfigMap").chain(of_kind("Secret")) {
        for section in ["data", "stringData"] {
            if let Some(map) = d.get(section).and_then(Value::as_mapping) {
                config.extend(atelier_vars(map.iter().map(|(k, v)| (scalar(k), scalar(v)))));
            }
        }
    }
    assert!(!config.is_empty(), "no ATELIER__ variables in the ConfigMap");
    let settings = assert_settings_accept("deploy/k8s ConfigMap and Secret", &config);
    for (service, bind) in [
        ("atelier-gateway", &settings.gateway.bind),
        ("atelier-status", &settings.status.bind),
    ] {
        let svc = of_kind("Service")
            .find(|s| s["metadata"]["name"] == service)
            .unwrap_or_else(|| panic!("no Service {service}"));
        let ports: Vec<String> = svc["spec"]["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .map(|p| scalar(&p["port"]))
            .collect();
        assert!(
            ports.iter().any(|p| p == port_of(bind)),
            "Service {service} ports {ports:?}, bind {bind}"
        );
    }

    let mut scaled = BTreeMap::new();
    for so in of_kind("ScaledObject") {
        let target = scalar(&so["spec"]["scaleTargetRef"]["name"]);
        assert!(
            deployments.contains_key(&target),
            "ScaledObject targets unknown Deployment {target}"
        );
        let trigger = &so["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "rabbitmq");
        scaled.insert(
            deployments[&target].clone(),
            scalar(&trigger["metadata"]["queueName"]),
        );
    }
    for stage in STAGES {
        let queue = scaled
            .get(&format!("atelier-{stage}"))
            .unwrap_or_else(|| panic!("no ScaledObject for {stage}"));
        assert_eq!(*queue, format!("{}.{stage}", settings.broker.prefix));
    }
}
