//! The worker binaries as processes: bad settings and an unreachable broker end
//! them with a clear error instead of a hang or a panic. (Also makes cargo build
//! the binaries the gateway's end-to-end tests start.)

use std::process::Command;

const BINARIES: [&str; 4] = [
    env!("CARGO_BIN_EXE_atelier-analysis"),
    env!("CARGO_BIN_EXE_atelier-generation"),
    env!("CARGO_BIN_EXE_atelier-upscaling"),
    env!("CARGO_BIN_EXE_atelier-postprocess"),
];

fn run(binary: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(binary)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .env_remove("ATELIER_ENV")
        .output()
        .expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_setting_is_named() {
    for binary in BINARIES {
        let (ok, stderr) = run(binary, &[("ATELIER__WORKER__CONCURENCY", "2")]);
        assert!(!ok, "{binary} started with an unknown key");
        assert!(stderr.contains("concurency"), "{binary}: {stderr}");
    }
}

#[test]
fn an_unreachable_broker_is_an_error_not_a_hang() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("amqp://guest:guest@127.0.0.1:{closed}/%2f");
    for binary in BINARIES {
        let (ok, stderr) = run(binary, &[("ATELIER__BROKER__URL", url.as_str())]);
        assert!(!ok, "{binary} started without a broker");
        assert!(stderr.to_lowercase().contains("broker"), "{binary}: {stderr}");
    }
}

/// The shared libraries `binary` loads, as `ldd` lists them.
fn linked(binary: &str) -> String {
    let out = Command::new("ldd").arg(binary).output().expect("ldd runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn only_the_postprocess_worker_links_ffmpeg() {
    // FFmpeg's libraries cost every process tens of milliseconds to load; only
    // the stage that encodes video may pay for them.
    let [analysis, generation, upscaling, postprocess] = BINARIES;
    for binary in [analysis, generation, upscaling] {
        let libs = linked(binary);
        assert!(!libs.contains("libavcodec"), "{binary} links FFmpeg:\n{libs}");
    }
    assert!(
        linked(postprocess).contains("libavcodec"),
        "postprocess encodes video in-process"
    );
}
