//! Integration tests of the `trellis` binary: one binary, one module per topic.

// A panic in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod claims;
mod ctl;
mod e2e;
mod keys;
mod par;
mod registry;
mod wadm;

use std::path::PathBuf;

pub fn trellis() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("trellis").unwrap();
    // Keep settings of the developer's shell out of the tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("TRELLIS_") {
            cmd.env_remove(key);
        }
    }
    // Keys the CLI makes on first use go to a home of this test process,
    // never to the developer's ~/.trellis.
    cmd.env("TRELLIS_HOME", test_home());
    cmd
}

/// The `TRELLIS_HOME` of this test process: a temporary directory.
pub fn test_home() -> &'static std::path::Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// Runs `trellis -o json <args>` and parses its stdout; returns the exit
/// success flag with it.
pub fn trellis_json(args: &[&str]) -> (bool, serde_json::Value) {
    let out = trellis().arg("-o").arg("json").args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), value)
}

/// The `hello` example actor, built for `wasm32-wasip2` once per test run.
pub fn hello_component() -> PathBuf {
    trellis_test_support::example_component("hello")
}
