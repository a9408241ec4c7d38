//! `atelier-status` as a process: a bad database schema name or an unreachable
//! database ends it with a clear error. (Also makes cargo build the binary the
//! gateway's end-to-end tests start.)

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atelier-status"))
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
fn a_bad_schema_name_is_refused() {
    let (ok, stderr) = run(&[("ATELIER__DATABASE__SCHEMA", "Robert'); DROP TABLE jobs;--")]);
    assert!(!ok);
    assert!(stderr.contains("database.schema"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_an_error_not_a_hang() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{closed}/postgres");
    let (ok, stderr) = run(&[
        ("ATELIER__DATABASE__URL", url.as_str()),
        ("ATELIER__DATABASE__CONNECT_TIMEOUT_MS", "2000"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("job store"), "{stderr}");
}
