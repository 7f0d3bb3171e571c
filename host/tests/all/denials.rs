//! Deny by default: refused actors and invocations, each for its own reason.

use std::time::Duration;

use trellis_claims::jwt::now_secs;
use trellis_claims::keys::{KeyKind, generate};
use trellis_host::ErrorKind;
use trellis_protocol::{ContractId, LinkDefinition, RpcErrorKind};

use crate::{TestClient, TestLattice, body, example, no_annotations};

fn claims_kind(err: &trellis_host::Error) -> trellis_claims::ErrorKind {
    assert_eq!(err.kind(), ErrorKind::Claims, "{err}");
    err.claims_kind().unwrap()
}

#[tokio::test]
async fn an_unsigned_actor_is_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let err = host
        .start_actor_bytes(example("hello"), "hello".into(), 1, no_annotations())
        .await
        .unwrap_err();
    assert_eq!(claims_kind(&err), trellis_claims::ErrorKind::NoClaims);
    host.stop(None).await;
}

#[tokio::test]
async fn a_tampered_actor_is_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let mut wasm = lattice.sign(&example("hello"), &generate(KeyKind::Actor), &["wasi:http"]);
    // Flip a byte in the middle of the component, well inside its code.
    let at = wasm.len() / 2;
    wasm[at] ^= 0xff;
    let err = host
        .start_actor_bytes(wasm, "hello".into(), 1, no_annotations())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.claims_kind(),
            Some(trellis_claims::ErrorKind::HashMismatch)
        ) || err.kind() == ErrorKind::InvalidComponent,
        "{err}"
    );
    host.stop(None).await;
}

#[tokio::test]
async fn expired_claims_are_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let wasm = lattice.sign_with(
        &example("hello"),
        &generate(KeyKind::Actor),
        &[],
        &lattice.issuer,
        Some(now_secs() - 3600),
    );
    let err = host
        .start_actor_bytes(wasm, "hello".into(), 1, no_annotations())
        .await
        .unwrap_err();
    assert_eq!(claims_kind(&err), trellis_claims::ErrorKind::Expired);
    host.stop(None).await;
}

#[tokio::test]
async fn an_untrusted_issuer_is_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let stranger = generate(KeyKind::Account);
    let wasm = lattice.sign_with(
        &example("hello"),
        &generate(KeyKind::Actor),
        &[],
        &stranger,
        None,
    );
    let err = host
        .start_actor_bytes(wasm, "hello".into(), 1, no_annotations())
        .await
        .unwrap_err();
    assert_eq!(
        claims_kind(&err),
        trellis_claims::ErrorKind::UntrustedIssuer
    );
    host.stop(None).await;
}

#[tokio::test]
async fn garbage_bytes_are_refused_as_an_invalid_component() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let err = host
        .start_actor_bytes(
            b"definitely not wasm".to_vec(),
            "junk".into(),
            1,
            no_annotations(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidComponent);
    host.stop(None).await;
}

async fn kv_status(lattice: &TestLattice, caps: &[&str], link: bool) -> (u16, String) {
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("kvcounter"), &actor, caps);
    host.start_actor_bytes(wasm, "kvcounter".into(), 1, no_annotations())
        .await
        .unwrap();
    if link {
        let provider = generate(KeyKind::Provider).public_key();
        let link = LinkDefinition::new(
            actor.public_key(),
            ContractId::new("wasi:keyvalue").unwrap(),
            "default",
            provider,
        );
        host.put_link(link).await.unwrap();
    }
    let client = lattice.client().await;
    let response = client
        .get(&actor.public_key(), "/counter/visits")
        .await
        .unwrap();
    // The host keeps serving after a denial.
    let again = client
        .get(&actor.public_key(), "/counter/visits")
        .await
        .unwrap();
    assert_eq!(again.status, response.status);
    host.stop(None).await;
    (response.status, body(&response))
}

#[tokio::test]
async fn an_actor_without_the_keyvalue_claim_is_denied() {
    let lattice = TestLattice::new();
    let (status, body) = kv_status(&lattice, &["wasi:http"], true).await;
    assert_eq!(status, 500);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    // kvcounter reports the store's typed `access-denied` as kind `denied`.
    assert_eq!(json["kind"], "denied", "{body}");
}

#[tokio::test]
async fn an_actor_with_the_claim_but_no_link_is_denied() {
    let lattice = TestLattice::new();
    let (status, body) = kv_status(&lattice, &["wasi:http", "wasi:keyvalue"], false).await;
    assert_eq!(status, 500);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["kind"], "denied", "{body}");
}

#[tokio::test]
async fn an_invocation_signed_by_a_foreign_key_is_rejected() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    host.start_actor_bytes(
        lattice.sign(&example("hello"), &actor, &[]),
        "hello".into(),
        1,
        no_annotations(),
    )
    .await
    .unwrap();
    let foreign = TestClient::new(
        &lattice.nats.url(),
        &lattice.name,
        &generate(KeyKind::Cluster),
    )
    .await;
    let err = foreign.get(&actor.public_key(), "/").await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);
    // A trusted client is still served.
    let ok = lattice
        .client()
        .await
        .get(&actor.public_key(), "/?name=Ada")
        .await
        .unwrap();
    assert_eq!(body(&ok), "Hello, Ada!");
    host.stop(None).await;
}

#[tokio::test]
async fn a_replayed_invocation_is_rejected() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    host.start_actor_bytes(
        lattice.sign(&example("hello"), &actor, &[]),
        "hello".into(),
        1,
        no_annotations(),
    )
    .await
    .unwrap();
    let client = lattice.client().await;
    let bytes = client.http_invocation(&actor.public_key(), "/?name=Ada");
    let first = client
        .send(&actor.public_key(), bytes.clone())
        .await
        .unwrap();
    assert_eq!(body(&first), "Hello, Ada!");
    let replay = client.send(&actor.public_key(), bytes).await.unwrap_err();
    assert_eq!(replay.kind, RpcErrorKind::Denied);
    host.stop(Some(Duration::from_secs(1))).await;
}
