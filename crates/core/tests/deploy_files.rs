//! Static checks of the deployment files (no Docker engine or cluster needed):
//! docker-compose.yml, Dockerfile and deploy/k8s/*.yaml name real binaries, real
//! settings keys and matching ports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use atelier_core::settings::{OpsSettings, Settings};
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

/// What compose makes of `${VAR:-default}` (the default) and `${VAR:?message}`
/// (a required value: a placeholder here) when the variable is unset.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closing brace");
        let expr = &rest[start + 2..end];
        if let Some((_, default)) = expr.split_once(":-") {
            out.push_str(default);
        } else if expr.contains(":?") {
            out.push_str("required");
        } else {
            panic!("${{{expr}}} has neither a default nor `:?`: an unset variable would be empty");
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A compose `environment`, as a map or a `KEY=VALUE` list, interpolated.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| (scalar(k), interpolate(&scalar(v))))
            .collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|item| {
                let s = scalar(item);
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                (k.to_string(), interpolate(v))
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
    let rabbit = scalar(&services["rabbitmq"]["image"]);
    assert!(
        rabbit.starts_with("rabbitmq:4.") && rabbit.ends_with("-management"),
        "RabbitMQ must be a pinned 4.x tag with the management plugin: {rabbit}"
    );
    assert_eq!(services["postgres"]["image"], "postgres:16");
    for infra in ["rabbitmq", "postgres"] {
        assert!(
            services[infra].get("healthcheck").is_some(),
            "{infra} has no healthcheck"
        );
    }
}

/// Atelier services: those whose command is one of our binaries.
fn atelier_services(doc: &Value) -> Vec<(String, &Value)> {
    doc["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter(|(_, s)| {
            s.get("command")
                .and_then(program)
                .is_some_and(|p| p.starts_with("atelier"))
        })
        .map(|(n, s)| (scalar(n), s))
        .collect()
}

#[test]
fn compose_builds_one_image_that_every_atelier_service_runs() {
    let doc = compose();
    let services = atelier_services(&doc);
    let builders: Vec<&String> = services
        .iter()
        .filter(|(_, s)| s.get("build").is_some())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        builders.len(),
        1,
        "exactly one service builds the image: {builders:?}"
    );
    let image = &services
        .iter()
        .find(|(n, _)| n == builders[0])
        .expect("builder")
        .1["image"];
    for (name, service) in &services {
        assert_eq!(&service["image"], image, "{name} runs another image");
        if service.get("build").is_none() {
            assert_eq!(
                service["pull_policy"], "never",
                "{name} would try to pull the locally built image"
            );
        }
    }
}

#[test]
fn compose_publishes_on_loopback_only_and_has_no_default_password() {
    let doc = compose();
    let text = read("docker-compose.yml");
    assert!(
        !text.contains("guest"),
        "the broker's default guest user in compose"
    );
    for (name, service) in doc["services"].as_mapping().expect("services") {
        for port in service["ports"].as_sequence().into_iter().flatten().map(scalar) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name:?} publishes {port} beyond 127.0.0.1"
            );
        }
    }
    for (service, key, var) in [
        ("rabbitmq", "RABBITMQ_DEFAULT_PASS", "RABBITMQ_PASSWORD"),
        ("postgres", "POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
    ] {
        let raw = scalar(&doc["services"][service]["environment"][key]);
        assert!(
            raw.starts_with(&format!("${{{var}:?")),
            "{service}: {key} must be required from .env, not defaulted: {raw}"
        );
    }
    for (name, service) in atelier_services(&doc) {
        let raw = &service["environment"];
        for key in ["ATELIER__BROKER__URL", "ATELIER__DATABASE__URL"] {
            let url = scalar(&raw[key]);
            assert!(
                url.contains(":?"),
                "{name}: {key} carries a password with a default: {url}"
            );
        }
        for key in ["GEMINI_API_KEY", "REPLICATE_API_TOKEN"] {
            assert!(
                raw.get(key).is_some(),
                "{name}: provider key {key} not passed from .env"
            );
        }
    }
    let example = read(".env.example");
    for var in [
        "RABBITMQ_PASSWORD",
        "POSTGRES_PASSWORD",
        "GEMINI_API_KEY",
        "REPLICATE_API_TOKEN",
    ] {
        assert!(
            example.lines().any(|l| l.trim() == format!("{var}=")),
            ".env.example must name {var} with an empty value"
        );
    }
}

#[test]
fn compose_grace_periods_and_gateway_file_limit() {
    let doc = compose();
    let seconds = |v: &Value| -> u64 {
        let s = scalar(v);
        s.trim_end_matches('s')
            .parse()
            .unwrap_or_else(|_| panic!("grace {s}"))
    };
    for (name, service) in atelier_services(&doc) {
        let grace = seconds(&service["stop_grace_period"]);
        let env = compose_env(service);
        if let Some(worker_grace) = env.get("ATELIER__WORKER__SHUTDOWN_GRACE_SECONDS")
            && STAGES.iter().any(|s| name == *s)
        {
            let worker_grace: u64 = worker_grace.parse().expect("seconds");
            assert!(
                grace >= worker_grace + 10,
                "{name}: stop_grace_period {grace}s leaves no room after the {worker_grace}s grace"
            );
        }
    }
    let nofile = &doc["services"]["gateway"]["ulimits"]["nofile"];
    for limit in ["soft", "hard"] {
        let n: u64 = scalar(&nofile[limit]).parse().expect("nofile");
        assert!(n >= 65_536, "gateway nofile {limit} = {n}");
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
        // The status service's healthcheck polls its ops listener instead
        // (every_service_is_probed_and_scraped_on_its_ops_listener).
        if service == "gateway" {
            let check = serde_yaml::to_string(&s["healthcheck"]["test"]).expect("healthcheck");
            assert!(
                check.contains(port),
                "{service}'s healthcheck does not probe port {port}: {check}"
            );
        }
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
    assert!(dockerfile.contains("cargo build --release --locked --features atelier-storage/s3"));
    assert!(
        dockerfile.contains("CARGO_PROFILE_RELEASE_STRIP=symbols")
            && dockerfile.contains("CARGO_PROFILE_RELEASE_DEBUG=false"),
        "release binaries in the image must be stripped"
    );
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    let uid = user["USER ".len()..].split(':').next().expect("uid").trim();
    assert!(
        uid.parse::<u32>().is_ok_and(|n| n != 0),
        "runs as root or as a name Kubernetes cannot check: {user}"
    );
    let entrypoint = "deploy/docker/entrypoint.sh";
    assert!(dockerfile.contains(&format!("COPY {entrypoint} ")));
    assert!(
        read(entrypoint).contains("exec \"$@\""),
        "the entrypoint must exec its command"
    );
}

fn kustomization() -> Value {
    serde_yaml::from_str(&read("deploy/k8s/kustomization.yaml")).expect("kustomization.yaml parses")
}

/// Every document of the files the kustomization deploys (which must be every
/// manifest in deploy/k8s: none lies there unused).
fn k8s_docs() -> Vec<Value> {
    let dir = root().join("deploy/k8s");
    let mut on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".yaml") || n.ends_with(".yml")) && n != "kustomization.yaml")
        .collect();
    let mut docs = Vec::new();
    for file in kustomization()["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .map(scalar)
    {
        assert!(
            on_disk.remove(&file),
            "kustomization.yaml lists {file}, not in deploy/k8s"
        );
        let text = read(&format!("deploy/k8s/{file}"));
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                assert!(value.get("kind").is_some(), "{file}: a document without kind");
                docs.push(value);
            }
        }
    }
    assert!(
        on_disk.is_empty(),
        "manifests not in kustomization.yaml: {on_disk:?}"
    );
    docs
}

fn of_kind<'a>(docs: &'a [Value], kind: &'static str) -> impl Iterator<Item = &'a Value> {
    docs.iter().filter(move |d| d["kind"] == kind)
}

/// `KEY=VALUE` lines of an env file (comments and blanks skipped).
fn env_file(rel: &str) -> BTreeMap<String, String> {
    read(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{rel}: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The ConfigMap's variables, the generated Secret's keys (from the committed
/// example, with placeholders for the values the operator fills in) and a
/// container's own `env`.
fn container_settings_vars(docs: &[Value], container: &Value) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for d in of_kind(docs, "ConfigMap") {
        if let Some(map) = d.get("data").and_then(Value::as_mapping) {
            vars.extend(atelier_vars(map.iter().map(|(k, v)| (scalar(k), scalar(v)))));
        }
    }
    vars.extend(atelier_vars(
        env_file("deploy/k8s/secrets.env.example")
            .into_keys()
            .map(|k| (k, "placeholder".to_string())),
    ));
    for e in container["env"].as_sequence().into_iter().flatten() {
        vars.extend(atelier_vars([(scalar(&e["name"]), scalar(&e["value"]))]));
    }
    vars
}

fn containers(deployment: &Value) -> &Vec<Value> {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
}

#[test]
fn k8s_manifests_parse_and_name_real_binaries_settings_and_queues() {
    let bins = binaries();
    let docs = k8s_docs();

    let mut deployments = BTreeMap::new();
    let mut settings_of = BTreeMap::new();
    for d in of_kind(&docs, "Deployment") {
        let name = scalar(&d["metadata"]["name"]);
        for c in containers(d) {
            // Either `command`, or `args` run by the image's entrypoint.
            let prog = program(c.get("command").unwrap_or(&c["args"]))
                .unwrap_or_else(|| panic!("Deployment {name}: a container without command or args"));
            assert!(
                bins.contains(&prog),
                "Deployment {name} runs `{prog}`, not a [[bin]]"
            );
            deployments.insert(name.clone(), prog);
            let vars = container_settings_vars(&docs, c);
            settings_of.insert(
                name.clone(),
                assert_settings_accept(&format!("Deployment {name}"), &vars),
            );
        }
    }
    for service in ["gateway", "status"].into_iter().chain(STAGES) {
        let bin = format!("atelier-{service}");
        assert!(
            deployments.values().any(|p| *p == bin),
            "no Deployment runs {bin}"
        );
    }
    let settings = &settings_of["atelier-gateway"];
    for (service, bind) in [
        ("atelier-gateway", &settings.gateway.bind),
        ("atelier-status", &settings.status.bind),
    ] {
        let svc = of_kind(&docs, "Service")
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
    for so in of_kind(&docs, "ScaledObject") {
        let target = scalar(&so["spec"]["scaleTargetRef"]["name"]);
        assert!(
            deployments.contains_key(&target),
            "ScaledObject targets unknown Deployment {target}"
        );
        let trigger = &so["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "rabbitmq");
        scaled.insert(deployments[&target].clone(), trigger["metadata"].clone());
    }
    for stage in STAGES {
        let meta = scaled
            .get(&format!("atelier-{stage}"))
            .unwrap_or_else(|| panic!("no ScaledObject for {stage}"));
        let prefix = &settings.broker.prefix;
        // The first stage consumes its bounded intake and its resume queue: both count.
        if stage == "analysis" {
            assert_eq!(meta["useRegex"], "true");
            assert_eq!(meta["operation"], "sum");
            assert_eq!(
                scalar(&meta["queueName"]),
                format!("^{prefix}\\.{stage}(\\.resume)?$")
            );
        } else {
            assert_eq!(scalar(&meta["queueName"]), format!("{prefix}.{stage}"));
        }
    }
}

/// The pod and container fields of Pod Security's `restricted` profile, a
/// writable /tmp under a read-only root, and probes on every container.
#[test]
fn k8s_pods_are_restricted_and_probed() {
    let docs = k8s_docs();
    for d in of_kind(&docs, "Deployment") {
        let name = scalar(&d["metadata"]["name"]);
        let pod = &d["spec"]["template"]["spec"];
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{name}");
        assert!(
            psc["runAsUser"].as_u64().is_some_and(|u| u > 0),
            "{name}: numeric non-root runAsUser"
        );
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        let tmp_volumes: BTreeSet<String> = pod["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter(|v| v.get("emptyDir").is_some())
            .map(|v| scalar(&v["name"]))
            .collect();
        for c in containers(d) {
            let csc = &c["securityContext"];
            assert_eq!(csc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(csc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(csc["capabilities"]["drop"][0], "ALL", "{name}");
            assert!(
                c["volumeMounts"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|m| { m["mountPath"] == "/tmp" && tmp_volumes.contains(&scalar(&m["name"])) }),
                "{name}: no emptyDir at /tmp under a read-only root"
            );
            assert!(c.get("readinessProbe").is_some(), "{name}: no readiness probe");
            assert!(c.get("livenessProbe").is_some(), "{name}: no liveness probe");
            assert!(
                c["resources"]["requests"].get("memory").is_some()
                    && c["resources"]["limits"].get("memory").is_some(),
                "{name}: memory request and limit"
            );
        }
    }
}

/// KEDA counts ready + unacked messages, one replica per `concurrency` of
/// them; a scaled-in worker has the time to finish its longest job.
#[test]
fn keda_counts_work_in_progress_and_never_cuts_a_job_short() {
    let docs = k8s_docs();
    let deployments: BTreeMap<String, &Value> = of_kind(&docs, "Deployment")
        .map(|d| (scalar(&d["metadata"]["name"]), d))
        .collect();
    let mut longest_grace = 0;
    let mut windows = Vec::new();
    for so in of_kind(&docs, "ScaledObject") {
        let target = scalar(&so["spec"]["scaleTargetRef"]["name"]);
        let deployment = deployments[&target];
        let container = &containers(deployment)[0];
        let settings = assert_settings_accept(&target, &container_settings_vars(&docs, container));
        let spec = &so["spec"];
        let meta = &spec["triggers"][0]["metadata"];
        assert_eq!(
            meta["protocol"], "http",
            "{target}: AMQP counts ready messages only"
        );
        assert_eq!(meta["mode"], "QueueLength", "{target}");
        assert_ne!(meta["excludeUnacknowledged"], "true", "{target}");
        let value: u64 = scalar(&meta["value"]).parse().expect("value");
        assert_eq!(
            value,
            u64::from(settings.worker_concurrency()),
            "{target}: the target per replica is the worker's concurrency"
        );
        let min = spec["minReplicaCount"].as_u64().expect("min");
        let max = spec["maxReplicaCount"].as_u64().expect("max");
        assert!(1 <= min && min <= max, "{target}: min {min} max {max}");
        let fallback = spec["fallback"]["replicas"].as_u64().expect("fallback replicas");
        assert!(
            min <= fallback && fallback <= max,
            "{target}: fallback {fallback}"
        );
        windows.push((
            target.clone(),
            spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
                ["stabilizationWindowSeconds"]
                .as_u64()
                .expect("scale-down stabilizationWindowSeconds"),
        ));
        let grace = settings.worker.shutdown_grace_seconds;
        longest_grace = longest_grace.max(grace);
        let termination = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("terminationGracePeriodSeconds");
        assert!(
            termination >= grace + 10,
            "{target}: terminationGracePeriodSeconds {termination} vs worker grace {grace}"
        );
    }
    assert_eq!(windows.len(), STAGES.len(), "one ScaledObject per stage");
    for (target, window) in windows {
        assert!(
            window > longest_grace,
            "{target}: scale-down window {window}s not longer than the longest stage ({longest_grace}s)"
        );
    }
    let auth = of_kind(&docs, "TriggerAuthentication")
        .next()
        .expect("TriggerAuthentication");
    let secret = scalar(&auth["spec"]["secretTargetRef"][0]["name"]);
    assert!(
        kustomization()["secretGenerator"]
            .as_sequence()
            .expect("secretGenerator")
            .iter()
            .any(|g| scalar(&g["name"]) == secret),
        "KEDA reads Secret {secret}, which nothing generates"
    );
}

#[test]
fn every_deployment_has_a_disruption_budget() {
    let docs = k8s_docs();
    for d in of_kind(&docs, "Deployment") {
        let name = scalar(&d["metadata"]["name"]);
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        let covered = of_kind(&docs, "PodDisruptionBudget").any(|pdb| {
            pdb["spec"]["selector"]["matchLabels"]
                .as_mapping()
                .expect("matchLabels")
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        });
        assert!(covered, "no PodDisruptionBudget selects {name}");
    }
}

#[test]
fn kustomization_sets_namespace_image_and_generated_secrets() {
    let k = kustomization();
    let docs = k8s_docs();
    let namespace = scalar(&k["namespace"]);
    assert!(
        of_kind(&docs, "Namespace").any(|n| scalar(&n["metadata"]["name"]) == namespace),
        "the namespace {namespace} is not created"
    );
    let images: Vec<String> = k["images"]
        .as_sequence()
        .expect("images:")
        .iter()
        .map(|i| scalar(&i["name"]))
        .collect();
    for d in of_kind(&docs, "Deployment") {
        for c in containers(d) {
            let image = scalar(&c["image"]);
            let name = image.split(':').next().expect("name");
            assert!(images.iter().any(|i| i == name), "images: does not set {image}");
        }
    }
    assert!(
        of_kind(&docs, "Secret").next().is_none(),
        "a Secret committed in deploy/k8s: generate it from an uncommitted env file"
    );
    let ignored = read(".gitignore");
    for generator in k["secretGenerator"].as_sequence().expect("secretGenerator") {
        for env in generator["envs"].as_sequence().expect("envs").iter().map(scalar) {
            assert!(
                ignored.lines().any(|l| l.trim() == format!("deploy/k8s/{env}")),
                "deploy/k8s/{env} is not git-ignored"
            );
            for (key, value) in env_file(&format!("deploy/k8s/{env}.example")) {
                assert!(value.is_empty(), "{env}.example gives {key} a value");
            }
        }
    }
}

/// The gateway and the status service drain themselves on SIGTERM (readiness
/// fails, a delay, then open requests get their grace): Kubernetes and compose
/// must wait for all of it.
#[test]
fn the_gateway_and_status_are_given_the_time_to_drain() {
    const MARGIN_SECONDS: u64 = 5;
    let docs = k8s_docs();
    let gateway = of_kind(&docs, "Deployment")
        .find(|d| d["metadata"]["name"] == "atelier-gateway")
        .expect("gateway Deployment");
    let container = &containers(gateway)[0];
    let settings = assert_settings_accept("gateway", &container_settings_vars(&docs, container));
    let drain = settings.gateway.drain_delay_seconds + settings.gateway.shutdown_grace_seconds;
    let termination = gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        termination >= drain + MARGIN_SECONDS,
        "gateway: terminationGracePeriodSeconds {termination} < drain {drain} + {MARGIN_SECONDS}"
    );
    let compose = compose();
    let stop = scalar(&compose["services"]["gateway"]["stop_grace_period"]);
    let stop: u64 = stop.trim_end_matches('s').parse().expect("seconds");
    assert!(
        stop >= drain + MARGIN_SECONDS,
        "compose gateway stop_grace_period {stop}s"
    );
    // Probes on the ops listener, which must then listen beyond loopback.
    let ops_bind = settings.ops.bind_for("gateway");
    assert!(
        !ops_bind.starts_with("127."),
        "gateway ops listener on {ops_bind}"
    );
    let ops_port = container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "ops")
        .map(|p| scalar(&p["containerPort"]))
        .expect("an `ops` container port");
    assert_eq!(ops_port, port_of(&ops_bind));
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "ops");

    let status = of_kind(&docs, "Deployment")
        .find(|d| d["metadata"]["name"] == "atelier-status")
        .expect("status Deployment");
    let termination = status["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        termination >= settings.status.drain_delay_seconds + MARGIN_SECONDS,
        "status: terminationGracePeriodSeconds {termination} < its drain"
    );
}

/// The service name (`gateway`, `status`, `analysis`, ...) a binary serves.
fn service_of(binary: &str) -> &str {
    binary.trim_start_matches("atelier-")
}

/// Every Atelier service's ops listener is where its probes, healthchecks and
/// Prometheus look: beyond loopback, on its own default port (`ops.bind`).
#[test]
fn every_service_is_probed_and_scraped_on_its_ops_listener() {
    let docs = k8s_docs();
    let mut seen = BTreeSet::new();
    for d in of_kind(&docs, "Deployment") {
        let name = scalar(&d["metadata"]["name"]);
        let container = &containers(d)[0];
        let binary = program(&container["args"]).expect("args name a binary");
        let service = service_of(&binary).to_string();
        let settings = assert_settings_accept(&name, &container_settings_vars(&docs, container));
        let bind = settings.ops.bind_for(&service);
        let port = OpsSettings::default_port(&service).to_string();
        assert_eq!(bind, format!("0.0.0.0:{port}"), "{name}: ops.bind");
        let ops = container["ports"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "ops")
            .unwrap_or_else(|| panic!("{name}: no `ops` container port"));
        assert_eq!(scalar(&ops["containerPort"]), port, "{name}");
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{name}"
        );
        assert_eq!(container["readinessProbe"]["httpGet"]["port"], "ops", "{name}");
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{name}"
        );
        assert_eq!(container["livenessProbe"]["httpGet"]["port"], "ops", "{name}");
        let annotations = &d["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{name}");
        assert_eq!(scalar(&annotations["prometheus.io/port"]), port, "{name}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{name}");
        seen.insert(service);
    }
    let expected: BTreeSet<String> = [
        "gateway",
        "status",
        "analysis",
        "generation",
        "upscaling",
        "postprocess",
    ]
    .map(str::to_string)
    .into();
    assert_eq!(seen, expected);

    let compose = compose();
    for (name, service) in atelier_services(&compose) {
        let binary = service.get("command").and_then(program).expect("command");
        let env = atelier_vars(compose_env(service));
        let settings = assert_settings_accept(&name, &env);
        let kind = service_of(&binary);
        let port = OpsSettings::default_port(kind);
        assert_eq!(
            settings.ops.bind_for(kind),
            format!("0.0.0.0:{port}"),
            "{name}: ops.bind"
        );
        // The gateway's healthcheck polls the same /readyz on its public port.
        if kind == "gateway" {
            continue;
        }
        let check = serde_yaml::to_string(&service["healthcheck"]["test"]).expect("healthcheck");
        assert!(
            check.contains(&format!("127.0.0.1:{port}/readyz")),
            "{name}'s healthcheck does not poll its ops /readyz: {check}"
        );
    }
}
