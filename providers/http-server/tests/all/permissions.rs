//! The demo's HTTP path under the NATS permissions of `docs/security.md`:
//! the host, its control connection and the provider each connect as the
//! user of their role, and a request still reaches the actor.

use trellis_host::{HostConfig, NatsConfig};
use trellis_test_support::host::TestLattice;
use trellis_test_support::{NatsServer, documented_nats_config, nats_user};

use crate::{Setup, StatusCode, free_address, get_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_reach_an_actor_with_each_role_on_its_documented_nats_user() {
    let mut lattice = TestLattice::new();
    lattice.nats = NatsServer::start_with_config(&documented_nats_config());
    let setup = Setup::with_lattice(lattice, |config| HostConfig {
        nats: NatsConfig {
            auth: nats_user("host", "host-secret"),
            ..config.nats.clone()
        },
        ctl_nats_auth: Some(nats_user("host-ctl", "host-ctl-secret")),
        provider_nats_auth: Some(nats_user("provider", "provider-secret")),
        ..config
    })
    .await;
    let actor = setup.start_actor("hello", 1).await;
    let address = free_address();
    setup
        .link(&actor, &[("address", address.to_string())])
        .await;
    let answer = get_until(address, &address.to_string(), "/?name=Ada", |a| {
        a.status == StatusCode::OK
    })
    .await;
    assert_eq!(answer.text(), "Hello, Ada!");
    setup.stop().await;
}
