//! Invocation tokens: signed by the sender, vouched for by a cluster
//! issuer, bound to the payload and never accepted twice.

use std::time::Duration;

use trellis_claims::ErrorKind;
use trellis_claims::invocation::{
    Call, DEFAULT_TOKEN_TTL, InvocationSigner, InvocationVerifier, VerifierSettings,
    issue_credential,
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

/// A new host key with a credential for `lattice` from `cluster`.
fn host_key(
    cluster: &trellis_claims::keys::KeyPair,
    lattice: &str,
) -> (trellis_claims::keys::KeyPair, String) {
    let host = generate(KeyKind::Host);
    let credential = issue_credential(
        cluster,
        &host.public_key(),
        lattice,
        Duration::from_secs(60),
    )
    .unwrap();
    (host, credential)
}

fn host_signer(cluster: &trellis_claims::keys::KeyPair, lattice: &str) -> InvocationSigner {
    let (host, credential) = host_key(cluster, lattice);
    InvocationSigner::new(host, credential, DEFAULT_TOKEN_TTL).unwrap()
}

/// The NATS subject every invocation of these tests travels on.
const SUBJECT: &str = "trellis.rpc.default.MACTOR";

/// An invocation `id` of `operation` from `origin` to `target` on
/// [`SUBJECT`], with no link.
fn call<'a>(id: &'a str, origin: &'a str, target: &'a str, operation: &'a str) -> Call<'a> {
    Call {
        id,
        origin,
        target,
        operation,
        subject: SUBJECT,
        contract_id: None,
        link_name: None,
    }
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
        .sign(&call("id-1", "NORIGIN", &target, "op"), b"payload")
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
    let token = signer
        .sign(&call("id-1", "NORIGIN", &target, "op"), b"p")
        .unwrap();
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
    let token = signer
        .sign(&call("id-1", "NORIGIN", &target, "op"), b"p")
        .unwrap();
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
    let token = signer
        .sign(&call("id-1", "NORIGIN", &target, "op"), b"p")
        .unwrap();
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
    let token = thief
        .sign(&call("id-1", "NORIGIN", &target, "op"), b"p")
        .unwrap();
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
        .sign(&call("id-1", "NORIGIN", &target, "op"), b"pay 1")
        .unwrap();
    assert_eq!(
        l.verifier
            .verify(&token, "id-1", &target, b"pay 2")
            .unwrap_err()
            .kind(),
        ErrorKind::HashMismatch
    );
    let token = signer
        .sign(&call("id-2", "NORIGIN", &target, "op"), b"p")
        .unwrap();
    assert_eq!(
        l.verifier
            .verify(&token, "id-3", &target, b"p")
            .unwrap_err()
            .kind(),
        ErrorKind::HashMismatch
    );
    let other = actor_id();
    let token = signer
        .sign(&call("id-4", "NORIGIN", &target, "op"), b"p")
        .unwrap();
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
    let token = signer
        .sign(&call("id-1", "NORIGIN", &target, "op"), b"p")
        .unwrap();
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
        let token = signer
            .sign(&call(&id, "NORIGIN", &target, "op"), b"p")
            .unwrap();
        verifier.verify(&token, &id, &target, b"p").unwrap();
    }
    // The most recent ids are still refused.
    let token = signer
        .sign(&call("id-99", "NORIGIN", &target, "op"), b"p")
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
        .sign(
            &call("id-1", "NORIGIN", &target, "wasi:keyvalue/store.call"),
            b"p",
        )
        .unwrap();
    let err = l
        .verifier
        .verify_call(
            &token,
            &call("id-1", "NORIGIN", &target, "trellis:sqldb/query.execute"),
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
    let token = signer
        .sign(&call("id-1", &alice, &target, "op"), b"p")
        .unwrap();
    let err = l
        .verifier
        .verify_call(&token, &call("id-1", &mallory, &target, "op"), b"p")
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
    let token = signer
        .sign(&call("id-1", &actor, &target, "op"), b"p")
        .unwrap();
    let err = l
        .verifier
        .verify_call(&token, &call("id-1", &actor, &target, "op"), b"p")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKeyKind);
}

/// A token for `call` signed by a host of `l` with the `iat` and `exp`
/// given, as a sender that ignores the signer's own lifetime would make.
fn token_with_times(l: &Lattice, call: &Call<'_>, payload: &[u8], iat: u64, exp: u64) -> String {
    let (host, credential) = host_key(&l.cluster, "default");
    let mut claims = trellis_claims::Claims {
        jti: call.id.to_owned(),
        iat,
        iss: String::new(),
        sub: call.target.to_owned(),
        nbf: None,
        exp: Some(exp),
        trellis: trellis_claims::invocation::InvocationMetadata {
            origin: call.origin.to_owned(),
            target: call.target.to_owned(),
            operation: call.operation.to_owned(),
            payload_hash: trellis_claims::wasm::sha256_hex(payload),
            subject: call.subject.to_owned(),
            contract_id: call.contract_id.map(str::to_owned),
            link_name: call.link_name.map(str::to_owned),
            credential,
        },
    };
    trellis_claims::jwt::sign(&mut claims, &host, KeyKind::Host).unwrap()
}

#[test]
fn a_token_expiring_at_the_end_of_time_is_refused_every_time() {
    let l = lattice();
    let target = actor_id();
    let now = trellis_claims::jwt::now_secs();
    for id in ["id-1", "id-1", "id-2"] {
        let c = call(id, "NORIGIN", &target, "op");
        let token = token_with_times(&l, &c, b"p", now, u64::MAX);
        let err = l.verifier.verify_call(&token, &c, b"p").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LifetimeTooLong);
    }
}

#[test]
fn a_token_lifetime_over_the_maximum_is_refused() {
    let l = lattice();
    let target = actor_id();
    let now = trellis_claims::jwt::now_secs();
    let c = call("id-1", "NORIGIN", &target, "op");
    let max = trellis_claims::invocation::DEFAULT_MAX_TOKEN_LIFETIME_SECS;
    let token = token_with_times(&l, &c, b"p", now, now + max + 1);
    let err = l.verifier.verify_call(&token, &c, b"p").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LifetimeTooLong);
    // Exactly the maximum is accepted.
    let token = token_with_times(&l, &c, b"p", now, now + max);
    l.verifier.verify_call(&token, &c, b"p").unwrap();
}

#[test]
fn a_token_issued_in_the_future_is_refused() {
    let l = lattice();
    let target = actor_id();
    let now = trellis_claims::jwt::now_secs();
    let c = call("id-1", "NORIGIN", &target, "op");
    let token = token_with_times(&l, &c, b"p", now + 3_600, now + 3_630);
    let err = l.verifier.verify_call(&token, &c, b"p").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotYetValid);
}

#[test]
fn a_changed_subject_contract_or_link_name_is_a_hash_mismatch() {
    let l = lattice();
    let signer = host_signer(&l.cluster, "default");
    let provider = generate(KeyKind::Provider).public_key();
    let signed = Call {
        id: "id-1",
        origin: "MACTOR",
        target: &provider,
        operation: "wasi:keyvalue/store.get",
        subject: "trellis.rpc.default.VPROVIDER.default",
        contract_id: Some("wasi:keyvalue"),
        link_name: Some("default"),
    };
    let token = signer.sign(&signed, b"p").unwrap();
    let edits = [
        Call {
            link_name: Some("other"),
            subject: "trellis.rpc.default.VPROVIDER.other",
            ..signed
        },
        Call {
            link_name: Some("other"),
            ..signed
        },
        Call {
            contract_id: Some("trellis:sqldb"),
            ..signed
        },
        Call {
            subject: "trellis.rpc.default.VPROVIDER.other",
            ..signed
        },
    ];
    for edited in edits {
        let err = l.verifier.verify_call(&token, &edited, b"p").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::HashMismatch, "{edited:?}");
    }
    // Unedited, it verifies (the refusals above recorded nothing).
    l.verifier.verify_call(&token, &signed, b"p").unwrap();
}
