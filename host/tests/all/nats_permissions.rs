//! A nats-server run with the configuration of `docs/security.md`: each
//! role gets only the subjects it needs, and the lattice works with it.

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_claims::invocation::CtlScope;
use trellis_host::{Host, HostConfig, NatsConfig};
use trellis_lattice_client::CtlClient;
use trellis_protocol::subject::CtlOperation;
use trellis_protocol::{Lattice, ctl::StartActorRequest};
use trellis_test_support::lattice::TestClient;
use trellis_test_support::{NatsServer, documented_nats_config, nats_user};

use crate::{TestLattice, body, signed_hello};

/// A connection to `server` as a user.
async fn connect_as(server: &NatsServer, name: &str, password: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .user_and_password(name.to_owned(), password.to_owned())
        .connect(server.url())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_permissions_keep_rpc_users_off_the_control_plane() {
    let mut lattice = TestLattice::new();
    lattice.nats = NatsServer::start_with_config(&documented_nats_config());
    let config = HostConfig {
        nats: NatsConfig {
            urls: vec![lattice.nats.url()],
            auth: nats_user("host", "host-secret"),
            ..lattice.config().nats
        },
        ctl_nats_auth: Some(nats_user("host-ctl", "host-ctl-secret")),
        provider_nats_auth: Some(nats_user("provider", "provider-secret")),
        ..lattice.config()
    };
    let host = Host::start(config).await.unwrap();

    // An operator drives the host through the control interface.
    let operator = connect_as(&lattice.nats, "operator", "operator-secret").await;
    let l = Lattice::new(lattice.name.clone()).unwrap();
    let ctl = CtlClient::new(operator, l.clone()).with_signer(lattice.ctl_signer(CtlScope::Full));
    assert_eq!(ctl.ping(Duration::from_secs(1)).await.unwrap().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let (actor, path) = signed_hello(&lattice, dir.path());
    let request = StartActorRequest {
        actor_ref: path,
        max_instances: 1,
        annotations: BTreeMap::new(),
    };
    ctl.start_actor(host.id(), &request).await.unwrap();

    // A provider's credentials carry invocations to the actor…
    let provider = connect_as(&lattice.nats, "provider", "provider-secret").await;
    let client = TestClient::with_nats(provider, &lattice.name, &lattice.cluster);
    let answer = client.get(&actor.public_key(), "/?name=rpc").await.unwrap();
    assert_eq!(body(&answer), "Hello, rpc!");

    // …but cannot reach the control interface, even with a valid control
    // token: the server drops the publish.
    let as_provider = CtlClient::new(client.nats.clone(), l.clone())
        .with_signer(lattice.ctl_signer(CtlScope::Full))
        .with_timeout(Duration::from_millis(500));
    let stop = as_provider.stop_host(host.id(), None).await;
    assert!(stop.is_err(), "a provider user reached host.stop");
    let subject = l
        .ctl(&CtlOperation::HostStop {
            host_id: host.id().to_owned(),
        })
        .unwrap();
    let _ = client.nats.publish(subject, "{}".into()).await;
    // Nor write into the lattice bucket.
    let js = async_nats::jetstream::new(client.nats.clone());
    let bucket = tokio::time::timeout(
        Duration::from_secs(2),
        js.get_key_value(format!("TRELLIS_LATTICE_{}", lattice.name)),
    )
    .await;
    assert!(
        !matches!(bucket, Ok(Ok(_))),
        "a provider user opened the lattice bucket"
    );

    // The host still runs and serves.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ctl.ping(Duration::from_secs(1)).await.unwrap().len(), 1);
    assert_eq!(host.inventory().await.actors.len(), 1);
    host.stop(None).await;
}
