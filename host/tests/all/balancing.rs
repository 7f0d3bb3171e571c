//! Load balancing across hosts and failover when one stops.

use std::sync::Arc;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, generate};

use crate::{TestLattice, body, example, no_annotations, write_temp};

/// Two hosts of `lattice`, each running the hello actor with up to
/// `instances` instances; returns them and the actor's id.
async fn hello_on_two_hosts(
    lattice: &TestLattice,
    instances: u32,
) -> (trellis_host::Host, trellis_host::Host, String) {
    let (a, b) = (lattice.host().await, lattice.host().await);
    let dir = tempfile::tempdir().unwrap();
    let actor = generate(KeyKind::Actor);
    let path = write_temp(
        dir.path(),
        "hello.wasm",
        &lattice.sign(&example("hello"), &actor, &["wasi:http"]),
    );
    a.start_actor(&path, instances, no_annotations())
        .await
        .unwrap();
    b.start_actor(&path, instances, no_annotations())
        .await
        .unwrap();
    (a, b, actor.public_key())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_are_balanced_over_two_hosts_and_survive_one_stopping() {
    let lattice = TestLattice::new();
    let (a, b, actor_id) = hello_on_two_hosts(&lattice, 16).await;
    let client = Arc::new(lattice.client().await);

    // 1,000 invocations, 50 at a time.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let client = client.clone();
        let actor_id = actor_id.clone();
        tasks.spawn(async move {
            client
                .get(&actor_id, &format!("/?name=n{i}"))
                .await
                .map(|r| (i, r))
        });
        if tasks.len() >= 50 {
            let (i, response) = tasks.join_next().await.unwrap().unwrap().unwrap();
            assert_eq!(body(&response), format!("Hello, n{i}!"));
        }
    }
    while let Some(result) = tasks.join_next().await {
        let (i, response) = result.unwrap().unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(body(&response), format!("Hello, n{i}!"));
    }
    let served_a = a.invocations_served(&actor_id).await.unwrap();
    let served_b = b.invocations_served(&actor_id).await.unwrap();
    assert_eq!(served_a + served_b, 1000);
    assert!(
        served_a >= 100 && served_b >= 100,
        "poorly balanced: {served_a} / {served_b}"
    );

    // One host stops; the other keeps serving.
    a.stop(Some(Duration::from_secs(5))).await;
    for i in 0..100 {
        let response = client
            .get(&actor_id, &format!("/?name=after{i}"))
            .await
            .unwrap();
        assert_eq!(body(&response), format!("Hello, after{i}!"));
    }
    assert_eq!(
        b.invocations_served(&actor_id).await.unwrap(),
        served_b + 100
    );
    b.stop(None).await;
}

/// One captured invocation sent again and again to an actor that runs on
/// two hosts (one queue group) runs at most once per host: each host's
/// replay cache refuses the copies it gets, but the caches are not shared.
/// This is the outcome `docs/protocol.md` §4.7 documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_invocation_runs_at_most_once_per_host_of_its_queue_group() {
    let lattice = TestLattice::new();
    let (a, b, actor_id) = hello_on_two_hosts(&lattice, 4).await;
    let client = lattice.client().await;
    let captured = client.http_invocation(&actor_id, "/?name=once");
    let (mut ran, mut replayed) = (0, 0);
    for _ in 0..12 {
        match client.send(&actor_id, captured.clone()).await {
            Ok(response) => {
                assert_eq!(body(&response), "Hello, once!");
                ran += 1;
            }
            Err(e) => {
                assert_eq!(e.kind, trellis_protocol::RpcErrorKind::Denied, "{e:?}");
                replayed += 1;
            }
        }
    }
    let served = a.invocations_served(&actor_id).await.unwrap()
        + b.invocations_served(&actor_id).await.unwrap();
    assert!((1..=2).contains(&ran), "ran {ran} times");
    assert_eq!(served, ran);
    assert_eq!(ran + replayed, 12);
    a.stop(None).await;
    b.stop(None).await;
}
