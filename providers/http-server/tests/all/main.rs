//! Integration tests of the http-server provider: real HTTP requests to the
//! provider binary, started by a real host on a real `nats-server`, reaching
//! real example actors. One binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod errors;
mod forwarding;
mod listeners;
mod load;
mod permissions;
mod renewal;

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, generate};
use trellis_host::{Host, HostConfig};
use trellis_protocol::provider::HealthCheck;
use trellis_protocol::{ContractId, LinkDefinition};
use trellis_test_support::example_component;
use trellis_test_support::host::TestLattice;
pub use trellis_test_support::http::*;

/// A lattice with one host running the http-server provider.
pub struct Setup {
    pub lattice: TestLattice,
    pub host: Host,
    pub provider_id: String,
}

impl Setup {
    /// A lattice and host with the test defaults.
    pub async fn new() -> Self {
        Self::with_config(|c| c).await
    }

    /// A lattice and a host whose configuration `f` adjusts; the provider
    /// is started and serving when this returns.
    pub async fn with_config(f: impl FnOnce(HostConfig) -> HostConfig) -> Self {
        Self::with_lattice(TestLattice::new(), f).await
    }

    /// A host of `lattice` whose configuration `f` adjusts, with the
    /// provider started and serving.
    pub async fn with_lattice(
        lattice: TestLattice,
        f: impl FnOnce(HostConfig) -> HostConfig,
    ) -> Self {
        Self::with_provider_config(lattice, f, &[]).await
    }

    /// A host of `lattice` whose configuration `f` adjusts, running the
    /// provider with `provider_config` in its start configuration.
    pub async fn with_provider_config(
        lattice: TestLattice,
        f: impl FnOnce(HostConfig) -> HostConfig,
        provider_config: &[(&str, &str)],
    ) -> Self {
        let host = Host::start(f(lattice.config())).await.unwrap();
        let mut config = BTreeMap::from([("contract_id".to_owned(), "wasi:http".to_owned())]);
        for (key, value) in provider_config {
            config.insert((*key).to_owned(), (*value).to_owned());
        }
        let provider = host
            .start_provider(
                env!("CARGO_BIN_EXE_http-server"),
                "default",
                config,
                Default::default(),
            )
            .await
            .unwrap();
        let setup = Self {
            lattice,
            host,
            provider_id: provider.id,
        };
        // Once it answers a health check it has subscribed to link changes,
        // so links put from now on reach it.
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        while setup.try_health().await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the provider did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        setup
    }

    /// Starts example actor `name`, signed, with up to `max_instances`
    /// instances; returns its id.
    pub async fn start_actor(&self, name: &str, max_instances: u32) -> String {
        let key = generate(KeyKind::Actor);
        let wasm = self.lattice.sign(
            &std::fs::read(example_component(name)).unwrap(),
            &key,
            &["wasi:http"],
        );
        self.host
            .start_actor_bytes(wasm, name.into(), max_instances, BTreeMap::new())
            .await
            .unwrap();
        key.public_key()
    }

    /// Links `actor_id` to the provider with `config`.
    pub async fn link(&self, actor_id: &str, config: &[(&str, String)]) {
        let mut link = LinkDefinition::new(
            actor_id,
            ContractId::new("wasi:http").unwrap(),
            "default",
            self.provider_id.clone(),
        );
        for (key, value) in config {
            link = link.with_config(*key, value.clone());
        }
        self.host.put_link(link).await.unwrap();
    }

    /// Deletes the link of `actor_id`.
    pub async fn unlink(&self, actor_id: &str) {
        self.host
            .delete_link(actor_id, &ContractId::new("wasi:http").unwrap(), "default")
            .await
            .unwrap();
    }

    /// Asks the provider for its health directly.
    pub async fn try_health(&self) -> Option<HealthCheck> {
        self.host
            .provider_health(&self.provider_id, "default", Duration::from_secs(2))
            .await
            .ok()
    }

    pub async fn stop(self) {
        self.host.stop(None).await;
    }
}
