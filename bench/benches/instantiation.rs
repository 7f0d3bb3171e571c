//! Warm instantiation of an actor: what every invocation pays before the
//! guest runs. The component is compiled and pre-linked once (as the host
//! does when an actor starts); each iteration then makes a fresh,
//! deny-by-default store and instantiates the component in it from the
//! pooling allocator, exactly as `Runtime::handle_http` does.
//!
//! The component is the `hello` example, read from
//! `$TRELLIS_BENCH_COMPONENT` (defaults to
//! `actors-examples/target/wasm32-wasip2/release/hello.wasm`, which
//! `bench/run.sh` builds). The store's capabilities come from the
//! in-memory backend, so no nats-server is needed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use trellis_claims::keys::{KeyKind, generate};
use trellis_host::RuntimeLimits;
use trellis_host::runtime::memory::InMemoryCapabilities;
use trellis_host::runtime::{CapabilityContext, Runtime};

fn component_path() -> PathBuf {
    std::env::var_os("TRELLIS_BENCH_COMPONENT").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../actors-examples/target/wasm32-wasip2/release/hello.wasm")
        },
        PathBuf::from,
    )
}

fn instantiation(c: &mut Criterion) {
    let path = component_path();
    let wasm = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build actors-examples (bench/run.sh does) or set TRELLIS_BENCH_COMPONENT",
            path.display()
        )
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (runtime, component, caps) = rt.block_on(async {
        let caps = CapabilityContext {
            actor_id: Arc::from(generate(KeyKind::Actor).public_key()),
            caps: Arc::default(),
            backend: Arc::new(InMemoryCapabilities::new()),
        };
        let runtime = Runtime::new(RuntimeLimits::default()).unwrap();
        let component = runtime.prepare(Arc::new(wasm), "hello").await.unwrap();
        (runtime, component, caps)
    });

    let mut group = c.benchmark_group("warm instantiation (hello)");
    group.bench_function("new store + instantiate", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut store = runtime.new_store(&caps.actor_id, caps.clone());
                component.instantiate(&mut store).await.unwrap();
            })
        })
    });
    group.bench_function("instantiate in a ready store", |b| {
        b.iter_batched(
            || runtime.new_store(&caps.actor_id, caps.clone()),
            |mut store| {
                rt.block_on(component.instantiate(&mut store)).unwrap();
                store
            },
            // One store at a time, so the pool never runs dry.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, instantiation);
criterion_main!(benches);
