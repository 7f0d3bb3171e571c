//! Warm restarts: how long a restarted host, with a warm compiled cache,
//! takes from starting an actor it ran before to that actor's first
//! `200`; the same with the cache cold (compiling); and how long
//! `Host::start` itself took before. The `hello` component, a
//! `nats-server` the bench starts, in-process hosts.
//!
//! `cargo bench -p trellis-bench --bench restart` prints the median and
//! the extremes of 10 restarts each.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use trellis_claims::keys::{KeyKind, generate};
use trellis_host::{Host, HostConfig};
use trellis_test_support::example_component;
use trellis_test_support::host::TestLattice;
use trellis_test_support::lattice::body;

const RESTARTS: usize = 10;

/// Starts a host on `cache`, starts `wasm` and waits for its first
/// answer: how long the host took to start, and then the actor to answer.
async fn first_answer(
    lattice: &TestLattice,
    cache: &std::path::Path,
    wasm: &[u8],
    id: &str,
) -> (Duration, Duration) {
    let client = lattice.client().await;
    let started = Instant::now();
    let host = Host::start(HostConfig {
        compiled_cache: true,
        provider_cache_dir: cache.to_path_buf(),
        ..lattice.config()
    })
    .await
    .unwrap();
    let host_started = started.elapsed();
    let actor_started = Instant::now();
    host.start_actor_bytes(wasm.to_vec(), "hello".into(), 1, Default::default())
        .await
        .unwrap();
    let answer = client.get(id, "/?name=Ada").await.unwrap();
    let answered = actor_started.elapsed();
    assert_eq!(body(&answer), "Hello, Ada!");
    host.stop(None).await;
    (host_started, answered)
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "median {:>9.1?}   min {:>9.1?}   max {:>9.1?}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let lattice = TestLattice::new();
        let actor = generate(KeyKind::Actor);
        let wasm = lattice.sign(
            &std::fs::read(example_component("hello")).unwrap(),
            &actor,
            &[],
        );
        let id = actor.public_key();
        let (mut hosts, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RESTARTS {
            let cache = tempfile::tempdir().unwrap();
            let (host, answered) = first_answer(&lattice, cache.path(), &wasm, &id).await;
            hosts.push(host);
            cold.push(answered);
            let (host, answered) = first_answer(&lattice, cache.path(), &wasm, &id).await;
            hosts.push(host);
            warm.push(answered);
        }
        println!(
            "hello ({} bytes), {RESTARTS} restarts each; actor start to its first 200:",
            wasm.len()
        );
        println!("cold compiled cache (compiles)   {}", summary(cold));
        println!("warm compiled cache (restart)    {}", summary(warm));
        println!("and before it, Host::start:      {}", summary(hosts));
    });
}
