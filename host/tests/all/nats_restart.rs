//! NATS restarts: the host reconnects and serves again, and no invocation
//! hangs past its timeout.

use std::time::{Duration, Instant};

use trellis_claims::keys::{KeyKind, generate};

use crate::{TestLattice, body, eventually, example, no_annotations};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_serves_again_within_five_seconds_of_a_nats_restart() {
    let mut lattice = TestLattice::new();
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    host.start_actor_bytes(
        lattice.sign(&example("hello"), &actor, &[]),
        "hello".into(),
        4,
        no_annotations(),
    )
    .await
    .unwrap();
    let client = lattice.client().await;
    assert_eq!(
        body(
            &client
                .get(&actor.public_key(), "/?name=before")
                .await
                .unwrap()
        ),
        "Hello, before!"
    );

    lattice.nats.restart();
    let restarted = Instant::now();
    let id = actor.public_key();
    let served = eventually(Duration::from_secs(5), || {
        let client = &client;
        let id = &id;
        async move {
            let bytes = client.http_invocation(id, "/?name=after");
            let subject = client.lattice.rpc(id, None).unwrap();
            let started = Instant::now();
            let reply = tokio::time::timeout(
                Duration::from_secs(2),
                client.nats.request(subject, bytes.into()),
            )
            .await;
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "an invocation hung past its timeout"
            );
            matches!(reply, Ok(Ok(_)))
        }
    })
    .await;
    assert!(served, "not served within 5 s of the restart");
    assert!(restarted.elapsed() < Duration::from_secs(6));
    assert_eq!(
        body(
            &client
                .get(&actor.public_key(), "/?name=after")
                .await
                .unwrap()
        ),
        "Hello, after!"
    );
    host.stop(None).await;
}
