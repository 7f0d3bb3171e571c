//! Load balancing across hosts and failover when one stops.

use std::sync::Arc;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, generate};

use crate::{TestLattice, body, example, no_annotations, write_temp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_are_balanced_over_two_hosts_and_survive_one_stopping() {
    let lattice = TestLattice::new();
    let (a, b) = (lattice.host().await, lattice.host().await);
    let dir = tempfile::tempdir().unwrap();
    let actor = generate(KeyKind::Actor);
    let path = write_temp(
        dir.path(),
        "hello.wasm",
        &lattice.sign(&example("hello"), &actor, &["wasi:http"]),
    );
    a.start_actor(&path, 16, no_annotations()).await.unwrap();
    b.start_actor(&path, 16, no_annotations()).await.unwrap();
    let actor_id = actor.public_key();
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
