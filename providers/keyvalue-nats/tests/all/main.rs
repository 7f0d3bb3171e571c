//! Tests of the keyvalue-nats provider and of provider supervision by the
//! host, against a real nats-server: one binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod operations;
mod supervision;

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_host::Host;
use trellis_protocol::{ContractId, LinkDefinition, ProviderDescription};
pub use trellis_test_support::host::TestLattice;
pub use trellis_test_support::lattice::body;

/// The provider binary built by this package.
pub const BINARY: &str = env!("CARGO_BIN_EXE_keyvalue-nats");

/// Starts this provider on `host` from its plain binary (development mode).
pub async fn start_provider(host: &Host) -> ProviderDescription {
    let config = BTreeMap::from([("contract_id".to_owned(), "wasi:keyvalue".to_owned())]);
    host.start_provider(BINARY, "default", config, BTreeMap::new())
        .await
        .unwrap()
}

/// Starts kvcounter on `host` and links it to `provider_id`.
pub async fn start_kvcounter(lattice: &TestLattice, host: &Host, provider_id: &str) -> KeyPair {
    let actor = generate(KeyKind::Actor);
    let wasm = std::fs::read(trellis_test_support::example_component("kvcounter")).unwrap();
    let signed = lattice.sign(&wasm, &actor, &["wasi:http", "wasi:keyvalue"]);
    host.start_actor_bytes(signed, "kvcounter".into(), 4, BTreeMap::new())
        .await
        .unwrap();
    let link = LinkDefinition::new(
        actor.public_key(),
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        provider_id,
    )
    .with_config("bucket", "kvtest");
    host.put_link(link).await.unwrap();
    actor
}

/// GETs `/counter/{name}` until it answers 200 (the provider needs a moment
/// to start), then returns the count.
pub async fn count(lattice: &TestLattice, actor_id: &str, name: &str) -> u64 {
    let client = lattice.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = client
            .get(actor_id, &format!("/counter/{name}"))
            .await
            .unwrap();
        if response.status == 200 {
            let json: serde_json::Value = serde_json::from_str(&body(&response)).unwrap();
            return json["count"].as_u64().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kvcounter kept failing: {}",
            body(&response)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
