//! Tests of the keyvalue-nats provider and of provider supervision by the
//! host, against a real nats-server: one binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod operations;
mod supervision;

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_host::Host;
use trellis_protocol::contracts::{self, Answer, ContractError, ErrorOf, Operation};
use trellis_protocol::{
    ContractId, DecodeLimits, Entity, EntityKind, LinkDefinition, ProviderDescription, RpcError,
};
use trellis_provider_keyvalue_nats::KeyvalueNats;
use trellis_provider_sdk::LinkedProvider;
pub use trellis_test_support::host::TestLattice;
pub use trellis_test_support::lattice::body;

/// The provider binary built by this package.
pub const BINARY: &str = env!("CARGO_BIN_EXE_keyvalue-nats");

/// The provider with the SDK's link table, driven in-process.
pub type Linked = LinkedProvider<KeyvalueNats>;

/// A provider with no links, storing through the NATS server at `url`.
pub async fn linked(url: &str) -> Linked {
    LinkedProvider::new(KeyvalueNats::new(async_nats::connect(url).await.unwrap()))
}

/// A link from `actor` (link name `default`) to the provider, with `config`.
pub fn link(actor: &str, config: &[(&str, &str)]) -> LinkDefinition {
    config.iter().fold(
        LinkDefinition::new(
            actor,
            ContractId::new("wasi:keyvalue").unwrap(),
            "default",
            "VPROVIDER",
        ),
        |l, (k, v)| l.with_config(*k, *v),
    )
}

/// Calls `request` on `linked` as `actor` over link name `default`, as the
/// SDK does once the invocation is verified: the typed answer, or the error
/// of the invocation itself (a denial, an unknown operation).
pub async fn invoke<O: Operation>(
    linked: &Linked,
    actor: &str,
    request: O,
) -> Result<Answer<O>, RpcError> {
    let origin = Entity {
        kind: EntityKind::Actor,
        id: actor.to_owned(),
        contract_id: Some("wasi:keyvalue".to_owned()),
        link_name: Some("default".to_owned()),
    };
    let payload = contracts::encode_request(&request).unwrap();
    let bytes = linked.call(&origin, O::NAME, &payload).await?;
    Ok(contracts::decode_answer::<O>(&bytes, &DecodeLimits::default()).unwrap())
}

/// [`invoke`], with the invocation's error folded into the contract's
/// error as the host's stub does.
pub async fn call_as<O: Operation>(linked: &Linked, actor: &str, request: O) -> Answer<O> {
    invoke(linked, actor, request)
        .await
        .unwrap_or_else(|e| Err(<ErrorOf<O> as ContractError>::from_rpc(e)))
}

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
