//! Provider credentials renew: with a 3 s credential lifetime and 1 s of
//! clock skew, every http-server → actor invocation for 30 s still carries
//! a valid credential, as does every actor → keyvalue-redis call.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, generate};
use trellis_host::HostConfig;
use trellis_protocol::{ContractId, LinkDefinition};
use trellis_test_support::{example_component, redis_url};

use crate::{Setup, StatusCode, free_address, get, get_until};

/// How long traffic runs.
const TRAFFIC: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_credentials_renew_under_continuous_traffic() {
    let setup = Setup::with_config(|config| HostConfig {
        provider_credential_ttl: Duration::from_secs(3),
        clock_skew: Duration::from_secs(1),
        ..config
    })
    .await;
    // keyvalue-redis, built beside http-server by `cargo test --workspace`.
    let keyvalue = Path::new(env!("CARGO_BIN_EXE_http-server")).with_file_name("keyvalue-redis");
    assert!(
        keyvalue.is_file(),
        "{} is missing: build the workspace's binaries first",
        keyvalue.display()
    );
    let kv = setup
        .host
        .start_provider(
            keyvalue.to_str().unwrap(),
            "default",
            BTreeMap::from([("contract_id".into(), "wasi:keyvalue".into())]),
            Default::default(),
        )
        .await
        .unwrap();
    let actor = generate(KeyKind::Actor);
    let wasm = setup.lattice.sign(
        &std::fs::read(example_component("kvcounter")).unwrap(),
        &actor,
        &["wasi:http", "wasi:keyvalue"],
    );
    setup
        .host
        .start_actor_bytes(wasm, "kvcounter".into(), 4, BTreeMap::new())
        .await
        .unwrap();
    let prefix = format!(
        "trellis-test-renewal-{}:",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let store = LinkDefinition::new(
        actor.public_key(),
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        kv.id,
    )
    .with_config("url", redis_url())
    .with_config("prefix", prefix);
    setup.host.put_link(store).await.unwrap();
    let address = free_address();
    setup
        .link(&actor.public_key(), &[("address", address.to_string())])
        .await;
    get_until(address, &address.to_string(), "/counter/renewal", |a| {
        a.status == StatusCode::OK
    })
    .await;

    // Ten credential lifetimes of traffic, not one failure.
    let started = tokio::time::Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < TRAFFIC {
        let answer = get(address, "/counter/renewal").await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "call {calls} after {:?}: {answer:?}",
            started.elapsed()
        );
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(calls > 100, "only {calls} calls in {TRAFFIC:?}");
    setup.stop().await;
}
