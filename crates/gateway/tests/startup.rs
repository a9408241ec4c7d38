//! `atelier-gateway` as a process: bad settings and unreachable dependencies end
//! it with a clear error instead of a hang or a panic. (Also makes cargo build
//! the binary the end-to-end tests start.)

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atelier-gateway"))
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

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn a_bad_setting_is_named() {
    let (ok, stderr) = run(&[("ATELIER__GATEWAY__SYNC_WAIT_SECOND", "2")]);
    assert!(!ok, "started with an unknown key");
    assert!(stderr.contains("sync_wait_second"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_an_error_not_a_hang() {
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{}/postgres", closed_port());
    let (ok, stderr) = run(&[
        ("ATELIER__DATABASE__URL", url.as_str()),
        ("ATELIER__DATABASE__CONNECT_TIMEOUT_MS", "2000"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("job store"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}
