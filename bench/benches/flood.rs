//! Real invocations under a flood of garbage: the latency of sequential
//! `hello` invocations through the lattice (a signed client, a
//! `nats-server` and an in-process host on this machine) without a flood,
//! and while another client, on its own thread and connection, publishes
//! 1 MiB messages of pseudo-random bytes:
//!
//! - on the actor's RPC subject as fast as it can;
//! - on the same subject at 120 MiB/s, about what one sender on a
//!   1 Gbit/s link can send;
//! - as fast as it can on a subject nothing subscribes to, which measures
//!   what the flood costs the machine (CPU and memory bandwidth shared by
//!   the flooder, `nats-server` and the host) with no part of it reaching
//!   the host.
//!
//! `cargo bench -p trellis-bench --bench flood` prints p50 and p99 of each,
//! with how many MiB of garbage were sent. Needs `nats-server` (as the
//! tests do: `TRELLIS_TEST_NATS_SERVER` or on `PATH`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use trellis_claims::keys::{KeyKind, generate};
use trellis_test_support::example_component;
use trellis_test_support::host::TestLattice;
use trellis_test_support::lattice::{TestClient, body};

const CALLS: usize = 2_000;
const GARBAGE_BYTES: usize = 1024 * 1024;

/// Where and how fast the flooder sends.
#[derive(Clone, Copy)]
enum Flood {
    Subject { per_second: Option<u64> },
    Nowhere,
}

async fn latencies(client: &TestClient, actor_id: &str, calls: usize) -> Vec<Duration> {
    let mut all = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        let answer = client.get(actor_id, "/?name=Ada").await.unwrap();
        all.push(started.elapsed());
        assert_eq!(body(&answer), "Hello, Ada!");
    }
    all.sort();
    all
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p).div_ceil(100).saturating_sub(1)]
}

/// Runs `measure` while a flooder thread sends garbage to `subject`;
/// returns what `measure` returned and the MiB sent.
async fn flooded<T>(
    url: String,
    subject: String,
    per_second: Option<u64>,
    measure: impl Future<Output = T>,
) -> (T, u64) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let flooder = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let nats = async_nats::connect(url).await.unwrap();
            let inbox = nats.new_inbox();
            let garbage = bytes::Bytes::from(trellis_test_support::garbage(GARBAGE_BYTES));
            let begun = Instant::now();
            let mut sent = 0_u64;
            while !*stopped.borrow_and_update() {
                if let Some(rate) = per_second {
                    let due = begun + Duration::from_secs_f64(sent as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                tokio::select! {
                    published = nats.publish_with_reply(subject.clone(), inbox.clone(), garbage.clone()) => {
                        published.unwrap();
                        sent += 1;
                    }
                    _ = stopped.changed() => break,
                }
            }
            nats.flush().await.unwrap();
            sent
        })
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let result = measure.await;
    stop.send_replace(true);
    (result, flooder.join().unwrap())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let lattice = TestLattice::new();
        let host = lattice.host().await;
        let hello = generate(KeyKind::Actor);
        let wasm = std::fs::read(example_component("hello")).unwrap();
        let wasm = lattice.sign(&wasm, &hello, &[]);
        host.start_actor_bytes(wasm, "hello".into(), 4, Default::default())
            .await
            .unwrap();
        let client = lattice.client().await;
        let id = hello.public_key();
        let subject = client.lattice.rpc(&id, None).unwrap();
        latencies(&client, &id, 200).await;

        println!("{CALLS} sequential hello invocations per row, 1 MiB garbage messages");
        println!(
            "{:<44} {:>10} {:>10} {:>12}",
            "flood", "p50", "p99", "garbage"
        );
        let row = |name: &str, sorted: &[Duration], mib: Option<u64>| {
            println!(
                "{name:<44} {:>10.3?} {:>10.3?} {:>12}",
                percentile(sorted, 50),
                percentile(sorted, 99),
                mib.map_or_else(|| "-".to_owned(), |m| format!("{m} MiB")),
            );
        };
        let quiet = latencies(&client, &id, CALLS).await;
        row("none", &quiet, None);
        for (name, flood) in [
            (
                "actor's subject, as fast as one client can",
                Flood::Subject { per_second: None },
            ),
            (
                "actor's subject, 120 MiB/s",
                Flood::Subject {
                    per_second: Some(120),
                },
            ),
            ("a subject nobody serves, as fast as it can", Flood::Nowhere),
        ] {
            let (to, rate) = match flood {
                Flood::Subject { per_second } => (subject.clone(), per_second),
                Flood::Nowhere => ("trellis.bench.nowhere".to_owned(), None),
            };
            let (sorted, mib) =
                flooded(lattice.nats.url(), to, rate, latencies(&client, &id, CALLS)).await;
            row(name, &sorted, Some(mib));
        }
        println!(
            "hello invocations served: {} (garbage never reaches the actor)",
            host.invocations_served(&id).await.unwrap_or(0)
        );
        host.stop(None).await;
    });
}
