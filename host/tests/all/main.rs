//! Integration tests of the host against a real `nats-server`: one binary,
//! one module per topic.

// A panic in a test is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::new_without_default,
    missing_docs
)]

mod artifact_store;
mod artifacts;
mod balancing;
mod capabilities;
mod control;
mod ctl_security;
mod denials;
mod events;
mod lattice_data;
mod limits;
mod nats_permissions;
mod nats_restart;
mod policy;
mod registry;
mod secrets;
mod standalone;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use trellis_test_support::host::TestLattice;
pub use trellis_test_support::lattice::{TestClient, body};
pub use trellis_test_support::{NatsServer, example_component};

/// Writes `wasm` to a temporary file and returns its path.
pub fn write_temp(dir: &Path, name: &str, wasm: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, wasm).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The hello actor, signed by the lattice's issuer, in `dir`.
pub fn signed_hello(
    lattice: &TestLattice,
    dir: &std::path::Path,
) -> (trellis_claims::keys::KeyPair, String) {
    let actor = trellis_claims::keys::generate(trellis_claims::keys::KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);
    (actor, write_temp(dir, "hello.wasm", &wasm))
}

/// Reads an example actor.
pub fn example(name: &str) -> Vec<u8> {
    std::fs::read(example_component(name)).unwrap()
}

pub fn no_annotations() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Waits until `check` holds, polling every 50 ms for up to `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
