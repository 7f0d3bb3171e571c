//! Invocation tokens: signed by the sender, vouched for by a cluster
//! issuer, bound to the payload and never accepted twice.

use std::time::Duration;

use trellis_claims::ErrorKind;
use trellis_claims::invocation::{
    DEFAULT_TOKEN_TTL, InvocationSigner, InvocationVerifier, VerifierSettings, issue_credential,
};
use trellis_claims::keys::{KeyKind, generate};

struct Lattice {
    cluster: trellis_claims::keys::KeyPair,
    verifier: InvocationVerifier,
}

fn lattice() -> Lattice {
    let cluster = generate(KeyKind::Cluster);
    let verifier = InvocationVerifier::new(
        "default",
        [cluster.public_key()],
        VerifierSettings::default(),
    );
    Lattice { cluster, verifier }
}

fn host_signer(cluster: &trellis_claims::keys::KeyPair, lattice: &str) -> InvocationSigner {
    let host = generate(KeyKind::Host);
    let credential = issue_credential(
        cluster,
        &host.public_key(),
        lattice,
        Duration::from_secs(60),
    )
    .unwrap();
    InvocationSigner::new(host, credential, DEFAULT_TOKEN_TTL).unwrap()
}

fn actor_id() -> String {
    generate(KeyKind::Actor).public_key()
}

#[test]
fn a_signed_invocation_verifies_once() {
    let l = lattice();
    let signer = host_signer(&l.cluster, "default");
    let target = actor_id();
    let token = signer
        .sign("id-1", "NORIGIN", &target, "op", b"payload")
        .unwrap();
    let sender = l
        .verifier
        .verify(&token, "id-1", &target, b"payload")
        .unwrap();
    assert_eq!(sender.sender, signer.public_key());
    assert_eq!(sender.issuer, l.cluster.public_key());
}

#[test]
fn a_replayed_invocation_is_rejected() {
    let l = lattice();
    let signer = host_signer(&l.cluster, "default");
    let target = actor_id();
    let token = signer.sign("id-1", "NORIGIN", &target, "op", b"p").unwrap();
    l.verifier.verify(&token, "id-1", &target, b"p").unwrap();
    let err = l
        .verifier
        .verify(&token, "id-1", &target, b"p")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Replayed);
}

#[test]
fn an_invocation_vouched_for_by_a_foreign_cluster_is_rejected() {
    let l = lattice();
    let foreign = generate(KeyKind::Cluster);
    let signer = host_signer(&foreign, "default");
    let target = actor_id();
    let token = signer.sign("id-1", "NORIGIN", &target, "op", b"p").unwrap();
    assert_eq!(
        l.verifier
            .verify(&token, "id-1", &target, b"p")
            .unwrap_err()
            .kind(),
        ErrorKind::UntrustedIssuer
    );
}

#[test]
fn a_credential_for_another_lattice_is_rejected() {
    let l = lattice();
    let signer = host_signer(&l.cluster, "other");
    let target = actor_id();
    let token = signer.sign("id-1", "NORIGIN", &target, "op", b"p").unwrap();
    assert_eq!(
        l.verifier
            .verify(&token, "id-1", &target, b"p")
            .unwrap_err()
            .kind(),
        ErrorKind::UntrustedIssuer
    );
}

#[test]
fn an_invocation_signed_by_a_foreign_key_with_a_stolen_credential_is_rejected() {
    let l = lattice();
    let honest = generate(KeyKind::Host);
    let credential = issue_credential(
        &l.cluster,
        &honest.public_key(),
        "default",
        Duration::from_secs(60),
    )
    .unwrap();
    // The thief presents the honest host's credential with its own key.
    let thief =
        InvocationSigner::new(generate(KeyKind::Host), credential, DEFAULT_TOKEN_TTL).unwrap();
    let target = actor_id();
    let token = thief.sign("id-1", "NORIGIN", &target, "op", b"p").unwrap();
    assert_eq!(
        l.verifier
            .verify(&token, "id-1", &target, b"p")
            .unwrap_err()
            .kind(),
        ErrorKind::BadSignature
    );
}

#[test]
fn a_changed_payload_or_target_is_a_hash_mismatch() {
    let l = lattice();
    let signer = host_signer(&l.cluster, "default");
    let target = actor_id();
    let token = signer
        .sign("id-1", "NORIGIN", &target, "op", b"pay 1")
        .unwrap();
    assert_eq!(
        l.verifier
            .verify(&token, "id-1", &target, b"pay 2")
            .unwrap_err()
            .kind(),
        ErrorKind::HashMismatch
    );
    let token = signer.sign("id-2", "NORIGIN", &target, "op", b"p").unwrap();
    assert_eq!(
        l.verifier
            .verify(&token, "id-3", &target, b"p")
            .unwrap_err()
            .kind(),
        ErrorKind::HashMismatch
    );
    let other = actor_id();
    let token = signer.sign("id-4", "NORIGIN", &target, "op", b"p").unwrap();
    assert!(l.verifier.verify(&token, "id-4", &other, b"p").is_err());
}

#[test]
fn an_expired_invocation_is_rejected() {
    let l = lattice();
    let host = generate(KeyKind::Host);
    let credential = issue_credential(
        &l.cluster,
        &host.public_key(),
        "default",
        Duration::from_secs(60),
    )
    .unwrap();
    let signer = InvocationSigner::new(host, credential, Duration::from_secs(1)).unwrap();
    let target = actor_id();
    let token = signer.sign("id-1", "NORIGIN", &target, "op", b"p").unwrap();
    let strict = InvocationVerifier::new(
        "default",
        [l.cluster.public_key()],
        VerifierSettings {
            clock_skew_secs: 0,
            ..VerifierSettings::default()
        },
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        strict
            .verify(&token, "id-1", &target, b"p")
            .unwrap_err()
            .kind(),
        ErrorKind::Expired
    );
}

#[test]
fn only_host_and_provider_keys_sign_invocations() {
    let cluster = generate(KeyKind::Cluster);
    let actor = generate(KeyKind::Actor);
    assert_eq!(
        issue_credential(
            &cluster,
            &actor.public_key(),
            "default",
            Duration::from_secs(60)
        )
        .unwrap_err()
        .kind(),
        ErrorKind::WrongKeyKind
    );
    assert_eq!(
        InvocationSigner::new(actor, String::new(), DEFAULT_TOKEN_TTL)
            .unwrap_err()
            .kind(),
        ErrorKind::WrongKeyKind
    );
}

#[test]
fn the_replay_cache_stays_bounded() {
    let l = lattice();
    let verifier = InvocationVerifier::new(
        "default",
        [l.cluster.public_key()],
        VerifierSettings {
            replay_cache_capacity: 10,
            ..VerifierSettings::default()
        },
    );
    let signer = host_signer(&l.cluster, "default");
    let target = actor_id();
    for i in 0..100 {
        let id = format!("id-{i}");
        let token = signer.sign(&id, "NORIGIN", &target, "op", b"p").unwrap();
        verifier.verify(&token, &id, &target, b"p").unwrap();
    }
    // The most recent ids are still refused.
    let token = signer
        .sign("id-99", "NORIGIN", &target, "op", b"p")
        .unwrap();
    assert_eq!(
        verifier
            .verify(&token, "id-99", &target, b"p")
            .unwrap_err()
            .kind(),
        ErrorKind::Replayed
    );
}

#[test]
fn a_token_for_another_operation_is_a_hash_mismatch() {
    let l = lattice();
    let signer = host_signer(&l.cluster, "default");
    let target = actor_id();
    let token = signer
        .sign("id-1", "NORIGIN", &target, "wasi:keyvalue/store.call", b"p")
        .unwrap();
    let err = l
        .verifier
        .verify_call(
            &token,
            "id-1",
            "NORIGIN",
            &target,
            "trellis:sqldb/query.execute",
            b"p",
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HashMismatch);
}

#[test]
fn a_token_for_another_origin_is_a_hash_mismatch() {
    let l = lattice();
    let signer = host_signer(&l.cluster, "default");
    let target = actor_id();
    let (alice, mallory) = (actor_id(), actor_id());
    let token = signer.sign("id-1", &alice, &target, "op", b"p").unwrap();
    let err = l
        .verifier
        .verify_call(&token, "id-1", &mallory, &target, "op", b"p")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HashMismatch);
}

#[test]
fn a_provider_cannot_speak_for_an_actor() {
    let l = lattice();
    let provider = generate(KeyKind::Provider);
    let credential = issue_credential(
        &l.cluster,
        &provider.public_key(),
        "default",
        Duration::from_secs(60),
    )
    .unwrap();
    let signer = InvocationSigner::new(provider, credential, DEFAULT_TOKEN_TTL).unwrap();
    let target = generate(KeyKind::Provider).public_key();
    let actor = actor_id();
    let token = signer.sign("id-1", &actor, &target, "op", b"p").unwrap();
    let err = l
        .verifier
        .verify_call(&token, "id-1", &actor, &target, "op", b"p")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKeyKind);
}
