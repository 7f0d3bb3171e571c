//! The lattice's artifact store: an actor pushed over NATS starts by
//! reference on a host that has no file of it; bad artifacts are refused,
//! each with its own error kind, while the host keeps serving.

use std::time::Duration;

use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_host::{ErrorKind, HostConfig, RuntimeLimits};
use trellis_lattice_client::artifacts::{self, ArtifactErrorKind};

use crate::{TestLattice, body, example, no_annotations};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Pushes `bytes` as `object` into `lattice`'s store, as `trellis push`
/// does.
async fn push(lattice: &TestLattice, object: &str, bytes: &[u8]) -> String {
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let store = artifacts::open(&nats, &lattice.name, true, TIMEOUT)
        .await
        .unwrap();
    let mut reader = bytes;
    artifacts::put(&store, object, &mut reader, TIMEOUT)
        .await
        .unwrap()
        .digest
}

/// A signed hello, pushed as `hello:0.1.0`; its key and digest.
async fn push_hello(lattice: &TestLattice) -> (KeyPair, String) {
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);
    let digest = push(lattice, "hello:0.1.0", &wasm).await;
    (actor, digest)
}

/// A host with no artifact directories at all: it can only pull.
fn no_files(lattice: &TestLattice) -> HostConfig {
    HostConfig {
        artifact_dirs: Vec::new(),
        provider_cache_dir: tempfile::tempdir().unwrap().keep(),
        ..lattice.config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_actor_starts_by_reference_on_a_host_with_no_file_of_it() {
    let lattice = TestLattice::new();
    let (actor, digest) = push_hello(&lattice).await;
    let host = trellis_host::Host::start(no_files(&lattice)).await.unwrap();

    // Concurrent starts of the same reference pull it once.
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.start_actor("hello:0.1.0", 1, no_annotations()).await })
        })
        .collect();
    for start in starts {
        assert_eq!(start.await.unwrap().unwrap().id, actor.public_key());
    }
    assert_eq!(host.artifact_pulls(), 1);
    let client = lattice.client().await;
    let answer = client.get(&actor.public_key(), "/?name=Ada").await.unwrap();
    assert_eq!(body(&answer), "Hello, Ada!");

    // Pinned to its digest it starts from the cache, with no second pull.
    host.stop_actor(&actor.public_key()).await.unwrap();
    host.start_actor(
        &format!("lattice://hello:0.1.0@{digest}"),
        1,
        no_annotations(),
    )
    .await
    .unwrap();
    assert_eq!(host.artifact_pulls(), 1);
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_artifact_survives_a_nats_server_restart() {
    let mut lattice = TestLattice::new();
    let (actor, _) = push_hello(&lattice).await;
    lattice.nats.restart();
    let host = trellis_host::Host::start(no_files(&lattice)).await.unwrap();
    let started = host
        .start_actor("hello:0.1.0", 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(started.id, actor.public_key());
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_artifacts_are_refused_by_kind_and_the_host_keeps_serving() {
    let lattice = TestLattice::new();
    let (actor, digest) = push_hello(&lattice).await;
    // An unsigned component, and one over the size limit.
    push(&lattice, "unsigned:1", &example("hello")).await;
    let host = trellis_host::Host::start(HostConfig {
        limits: RuntimeLimits {
            max_component_bytes: example("hello").len() + 64 * 1024,
            ..RuntimeLimits::default()
        },
        ..no_files(&lattice)
    })
    .await
    .unwrap();
    host.start_actor("hello:0.1.0", 1, no_annotations())
        .await
        .unwrap();
    push(
        &lattice,
        "big:1",
        &vec![0u8; example("hello").len() + 128 * 1024],
    )
    .await;

    let refused = |reference: String| {
        let host = host.clone();
        async move {
            host.start_actor(&reference, 1, no_annotations())
                .await
                .unwrap_err()
        }
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = refused(format!("hello:0.1.0@{wrong}")).await;
    assert_eq!(err.kind(), ErrorKind::Artifact);
    assert_eq!(err.artifact_kind(), Some(ArtifactErrorKind::DigestMismatch));

    let err = refused("big:1".into()).await;
    assert_eq!(err.kind(), ErrorKind::Artifact);
    assert_eq!(err.artifact_kind(), Some(ArtifactErrorKind::TooLarge));

    let err = refused("unsigned:1".into()).await;
    assert_eq!(err.kind(), ErrorKind::Claims);

    let err = refused("missing:1".into()).await;
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let err = refused("Not A Reference".into()).await;
    assert_eq!(err.kind(), ErrorKind::BadRequest);

    // The good one still answers, and still has its digest.
    let client = lattice.client().await;
    let answer = client.get(&actor.public_key(), "/?name=Ada").await.unwrap();
    assert_eq!(body(&answer), "Hello, Ada!");
    assert!(digest.starts_with("sha256:"));
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_is_bounded_by_the_pull_timeout() {
    let lattice = TestLattice::new();
    push_hello(&lattice).await;
    let host = trellis_host::Host::start(HostConfig {
        pull_timeout: Duration::from_millis(500),
        ..no_files(&lattice)
    })
    .await
    .unwrap();
    // The NATS server stops answering: the pull must give up on time.
    lattice.nats.signal("STOP");
    let started = std::time::Instant::now();
    let err = host
        .start_actor("hello:0.1.0", 1, no_annotations())
        .await
        .unwrap_err();
    lattice.nats.signal("CONT");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    host.stop(None).await;
}

/// With the per-role NATS users of `docs/security.md`, an operator can
/// push to the lattice's artifact store, a host can pull from it, and a
/// provider's user can do neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nats_users_can_push_and_pull_and_providers_cannot() {
    use trellis_test_support::{NatsServer, documented_nats_config, nats_user};
    let mut lattice = TestLattice::new();
    // The documented configuration names the lattice `default`.
    lattice.name = "default".to_owned();
    lattice.nats = NatsServer::start_with_config(&documented_nats_config());
    let connect_as = |user: &'static str, password: &'static str| {
        let url = lattice.nats.url();
        async move {
            async_nats::ConnectOptions::new()
                .user_and_password(user.to_owned(), password.to_owned())
                .connect(url)
                .await
                .unwrap()
        }
    };
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);
    let operator = connect_as("operator", "operator-secret").await;
    let store = artifacts::open(&operator, "default", true, TIMEOUT)
        .await
        .unwrap();
    let mut reader = wasm.as_slice();
    artifacts::put(&store, "hello:1", &mut reader, TIMEOUT)
        .await
        .unwrap();

    let provider = connect_as("provider", "provider-secret").await;
    let refused = artifacts::open(&provider, "default", true, Duration::from_secs(2)).await;
    assert!(
        refused.is_err(),
        "a provider's user opened the artifact store"
    );

    let host = trellis_host::Host::start(HostConfig {
        nats: trellis_host::NatsConfig {
            urls: vec![lattice.nats.url()],
            auth: nats_user("host", "host-secret"),
            ..lattice.config().nats
        },
        ctl_nats_auth: Some(nats_user("host-ctl", "host-ctl-secret")),
        provider_nats_auth: Some(nats_user("provider", "provider-secret")),
        ..no_files(&lattice)
    })
    .await
    .unwrap();
    let started = host
        .start_actor("hello:1", 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(started.id, actor.public_key());
    host.stop(None).await;
}
