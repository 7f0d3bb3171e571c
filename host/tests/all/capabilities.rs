//! Capability imports are forwarded, signed, to the linked provider.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_claims::invocation::{InvocationVerifier, VerifierSettings};
use trellis_claims::keys::{KeyKind, generate};
use trellis_host::HostConfig;
use trellis_protocol::contracts::keyvalue::{self as kv, KvError};
use trellis_protocol::contracts::{self, Operation as _};
use trellis_protocol::{ContractId, DecodeLimits, Invocation, InvocationResponse, LinkDefinition};

use crate::{TestLattice, body, example, no_annotations};

/// Serves `wasi:keyvalue` increments on `subject` like a provider would,
/// verifying every invocation token; returns the origins it saw.
fn spawn_counter_provider(
    nats: async_nats::Client,
    subject: String,
    verifier: InvocationVerifier,
    provider_id: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sub = nats.subscribe(subject).await.unwrap();
        let mut counters: HashMap<String, u64> = HashMap::new();
        while let Some(message) = sub.next().await {
            let invocation =
                Invocation::decode(&message.payload, &DecodeLimits::default()).unwrap();
            let response = match verifier.verify(
                &invocation.token,
                &invocation.id,
                &provider_id,
                &invocation.payload,
            ) {
                Err(e) => InvocationResponse::error(
                    invocation.id,
                    trellis_protocol::RpcErrorKind::Denied,
                    e.to_string(),
                ),
                Ok(_) => {
                    let answer: contracts::Answer<kv::Increment> =
                        if invocation.operation == kv::Increment::NAME {
                            let request: kv::Increment = contracts::decode_request(
                                &invocation.payload,
                                &DecodeLimits::default(),
                            )
                            .unwrap();
                            let n = counters
                                .entry(format!("{}/{}", invocation.origin.id, request.key))
                                .or_default();
                            *n += request.delta;
                            Ok(*n)
                        } else {
                            Err(KvError::other(format!(
                                "unexpected {}",
                                invocation.operation
                            )))
                        };
                    InvocationResponse::ok(
                        invocation.id,
                        contracts::encode_answer::<kv::Increment>(&answer).unwrap(),
                    )
                }
            };
            nats.publish(message.reply.unwrap(), response.encode().unwrap().into())
                .await
                .unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyvalue_calls_reach_the_linked_provider_signed_by_the_host() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(
        &example("kvcounter"),
        &actor,
        &["wasi:http", "wasi:keyvalue"],
    );
    host.start_actor_bytes(wasm, "kvcounter".into(), 2, no_annotations())
        .await
        .unwrap();
    let provider = generate(KeyKind::Provider).public_key();
    let client = lattice.client().await;
    let subject = client.lattice.rpc(&provider, Some("default")).unwrap();
    let verifier = InvocationVerifier::new(
        lattice.name.clone(),
        [lattice.cluster.public_key()],
        VerifierSettings::default(),
    );
    let serving = spawn_counter_provider(client.nats.clone(), subject, verifier, provider.clone());
    client.nats.flush().await.unwrap();
    host.put_link(LinkDefinition::new(
        actor.public_key(),
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        provider,
    ))
    .await
    .unwrap();

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
    serving.abort();
    host.stop(None).await;
}

#[tokio::test]
async fn a_provider_that_never_answers_gives_an_error_within_the_call_timeout() {
    let lattice = TestLattice::new();
    let config = HostConfig {
        provider_call_timeout: Duration::from_millis(500),
        ..lattice.config()
    };
    let host = trellis_host::Host::start(config).await.unwrap();
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(
        &example("kvcounter"),
        &actor,
        &["wasi:http", "wasi:keyvalue"],
    );
    host.start_actor_bytes(wasm, "kvcounter".into(), 1, no_annotations())
        .await
        .unwrap();
    let provider = generate(KeyKind::Provider).public_key();
    let client = lattice.client().await;
    // Something listens but never answers.
    let _silent = client
        .nats
        .subscribe(client.lattice.rpc(&provider, Some("default")).unwrap())
        .await
        .unwrap();
    client.nats.flush().await.unwrap();
    host.put_link(LinkDefinition::new(
        actor.public_key(),
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        provider,
    ))
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let response = client
        .get(&actor.public_key(), "/counter/visits")
        .await
        .unwrap();
    assert_eq!(response.status, 500);
    assert!(started.elapsed() < Duration::from_secs(5));
    host.stop(None).await;
}
