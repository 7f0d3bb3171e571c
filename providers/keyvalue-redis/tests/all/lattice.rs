//! End to end: the provider binary started by a real host, called by the
//! kvcounter actor over NATS.

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, generate};
use trellis_protocol::{ContractId, LinkDefinition};
use trellis_test_support::example_component;
use trellis_test_support::host::TestLattice;
use trellis_test_support::lattice::body;

use crate::{delete_prefix, redis_url, unique_prefix};

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        delete_prefix(&redis_url(), &self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvcounter_counts_through_the_provider_binary_into_redis() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(prefix.clone());
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let provider = host
        .start_provider(
            env!("CARGO_BIN_EXE_keyvalue-redis"),
            "default",
            BTreeMap::from([("contract_id".into(), "wasi:keyvalue".into())]),
            BTreeMap::new(),
        )
        .await
        .unwrap();

    let actor = generate(KeyKind::Actor);
    let wasm = std::fs::read(example_component("kvcounter")).unwrap();
    host.start_actor_bytes(
        lattice.sign(&wasm, &actor, &["wasi:http", "wasi:keyvalue"]),
        "kvcounter".into(),
        1,
        BTreeMap::new(),
    )
    .await
    .unwrap();

    // A link put before the provider subscribes is not delivered to it,
    // so wait until it answers its health subject.
    host.wait_for_provider(&provider.id, "default", Duration::from_secs(8))
        .await
        .unwrap();

    host.put_link(
        LinkDefinition::new(
            actor.public_key(),
            ContractId::new("wasi:keyvalue").unwrap(),
            "default",
            provider.id.clone(),
        )
        .with_config("url", redis_url())
        .with_config("prefix", prefix.clone()),
    )
    .await
    .unwrap();

    // The link reaches the provider asynchronously: poll another counter
    // until it works.
    let client = lattice.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = client
            .get(&actor.public_key(), "/counter/ready")
            .await
            .unwrap();
        if response.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the provider never served the actor: {} {}",
            response.status,
            body(&response)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for expected in 1..=3 {
        let response = client
            .get(&actor.public_key(), "/counter/visits")
            .await
            .unwrap();
        assert_eq!(response.status, 200, "{}", body(&response));
        let json: serde_json::Value = serde_json::from_str(&body(&response)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "visits", "count": expected})
        );
    }

    // The counter is in Redis, under the link's prefix.
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}counter:visits"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("3"));

    host.stop(None).await;
}
