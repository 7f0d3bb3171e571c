//! Verification: each failed check has its own error kind.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use trellis_claims::actor::{ActorClaimsRequest, ActorMetadata, sign_actor, verify_actor};
use trellis_claims::jwt::{self, Claims, now_secs};
use trellis_claims::keys::{KeyKind, generate};
use trellis_claims::{ErrorKind, VerifyOptions, wasm};

use crate::{actor, component, issuer, other_issuer};

fn trusted() -> VerifyOptions {
    VerifyOptions::trusting([issuer().public_key()])
}

fn metadata() -> ActorMetadata {
    ActorMetadata {
        name: "hello".into(),
        module_hash: wasm::module_hash(&component()).unwrap(),
        caps: vec!["wasi:keyvalue".into()],
        tags: vec![],
        rev: 1,
        ver: Some("0.1.0".into()),
        call_alias: None,
    }
}

fn signed_token(edit: impl FnOnce(&mut Claims<ActorMetadata>)) -> String {
    let mut claims = Claims::new(actor().public_key(), metadata());
    edit(&mut claims);
    jwt::sign(&mut claims, &issuer(), KeyKind::Account).unwrap()
}

/// A token whose parts are given, signed with `signer` over `header.payload`.
fn forge(
    header: &str,
    payload: &serde_json::Value,
    signer: &trellis_claims::keys::KeyPair,
) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap())
    );
    let sig = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn payload_of(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn kind_of(token: &str) -> ErrorKind {
    jwt::verify::<ActorMetadata>(token, &trusted())
        .unwrap_err()
        .kind()
}

#[test]
fn valid_claims_from_a_trusted_issuer_verify() {
    let claims: Claims<ActorMetadata> = jwt::verify(&signed_token(|_| {}), &trusted()).unwrap();
    assert_eq!(claims.iss, issuer().public_key());
    assert_eq!(claims.sub, actor().public_key());
    assert_eq!(claims.trellis, metadata());
}

#[test]
fn signed_tokens_are_standard_eddsa_jws_that_jsonwebtoken_reads() {
    let token = signed_token(|_| {});
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        URL_SAFE_NO_PAD.decode(jwt::HEADER_B64).unwrap(),
        br#"{"typ":"JWT","alg":"EdDSA"}"#
    );

    // jsonwebtoken alone, with the issuer's raw key, accepts the signature.
    let (_, raw) = nkeys::from_public_key(&issuer().public_key()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_ed_der(&raw);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims["sub"], actor().public_key());

    // One changed byte of the claims breaks it.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = payload_of(&token);
    claims["trellis"]["name"] = "evil".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    assert_eq!(kind_of(&parts.join(".")), ErrorKind::BadSignature);
}

#[test]
fn expired_token_is_refused() {
    let token = signed_token(|c| c.exp = Some(now_secs() - 3600));
    assert_eq!(kind_of(&token), ErrorKind::Expired);
}

#[test]
fn expiry_within_the_clock_skew_is_accepted() {
    let token = signed_token(|c| c.exp = Some(now_secs() - 5));
    jwt::verify::<ActorMetadata>(&token, &trusted()).unwrap();
}

#[test]
fn not_yet_valid_token_is_refused() {
    let token = signed_token(|c| c.nbf = Some(now_secs() + 3600));
    assert_eq!(kind_of(&token), ErrorKind::NotYetValid);
}

#[test]
fn issuer_not_in_the_allow_list_is_refused() {
    let mut claims = Claims::new(actor().public_key(), metadata());
    let token = jwt::sign(&mut claims, &other_issuer(), KeyKind::Account).unwrap();
    assert_eq!(kind_of(&token), ErrorKind::UntrustedIssuer);
}

#[test]
fn an_empty_allow_list_trusts_nobody() {
    let token = signed_token(|_| {});
    let err = jwt::verify::<ActorMetadata>(&token, &VerifyOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UntrustedIssuer);
}

#[test]
fn token_re_signed_by_another_key_is_a_bad_signature() {
    // Claims naming the trusted issuer, signed by someone else.
    let payload = payload_of(&signed_token(|_| {}));
    let token = forge(r#"{"typ":"JWT","alg":"EdDSA"}"#, &payload, &other_issuer());
    assert_eq!(kind_of(&token), ErrorKind::BadSignature);
}

#[test]
fn claims_edited_after_signing_are_a_bad_signature() {
    let token = signed_token(|_| {});
    let mut payload = payload_of(&token);
    payload["trellis"]["caps"] = serde_json::json!(["wasi:keyvalue", "trellis:sqldb"]);
    let parts: Vec<&str> = token.split('.').collect();
    let edited = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    assert_eq!(kind_of(&edited), ErrorKind::BadSignature);
}

#[test]
fn alg_none_token_is_refused() {
    let payload = payload_of(&signed_token(|_| {}));
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap())
    );
    assert_eq!(kind_of(&unsigned), ErrorKind::WrongAlgorithm);
}

#[test]
fn hs256_token_is_refused() {
    // The classic confusion attack: an HMAC keyed with the public key.
    let payload = payload_of(&signed_token(|_| {}));
    let key = jsonwebtoken::EncodingKey::from_secret(issuer().public_key().as_bytes());
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &payload,
        &key,
    )
    .unwrap();
    assert_eq!(kind_of(&token), ErrorKind::WrongAlgorithm);
}

#[test]
fn wasmcloud_ed25519_header_is_refused() {
    let payload = payload_of(&signed_token(|_| {}));
    let token = forge(r#"{"typ":"jwt","alg":"Ed25519"}"#, &payload, &issuer());
    assert_eq!(kind_of(&token), ErrorKind::WrongAlgorithm);
}

#[test]
fn actor_key_where_an_account_key_is_required_is_the_wrong_key_kind() {
    // Signing refuses it...
    let mut claims = Claims::new(actor().public_key(), metadata());
    let err = jwt::sign(&mut claims, &actor(), KeyKind::Account).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKeyKind);
    // ...and so does verification of a token an actor key signed.
    let token = jwt::sign(&mut claims, &actor(), KeyKind::Actor).unwrap();
    let open = VerifyOptions {
        trusted_issuers: None,
        ..VerifyOptions::default()
    };
    assert_eq!(
        jwt::verify::<ActorMetadata>(&token, &open)
            .unwrap_err()
            .kind(),
        ErrorKind::WrongKeyKind
    );
}

#[test]
fn account_key_as_actor_subject_is_the_wrong_key_kind() {
    let mut claims = Claims::new(other_issuer().public_key(), metadata());
    let token = jwt::sign(&mut claims, &issuer(), KeyKind::Account).unwrap();
    assert_eq!(kind_of(&token), ErrorKind::WrongKeyKind);
}

#[test]
fn token_without_subject_is_missing_claims() {
    let mut payload = payload_of(&signed_token(|_| {}));
    payload.as_object_mut().unwrap().remove("sub");
    let token = forge(r#"{"typ":"JWT","alg":"EdDSA"}"#, &payload, &issuer());
    assert_eq!(kind_of(&token), ErrorKind::MissingClaims);
}

#[test]
fn token_without_trellis_metadata_is_missing_claims() {
    let mut payload = payload_of(&signed_token(|_| {}));
    payload.as_object_mut().unwrap().remove("trellis");
    let token = forge(r#"{"typ":"JWT","alg":"EdDSA"}"#, &payload, &issuer());
    assert_eq!(kind_of(&token), ErrorKind::MissingClaims);
}

#[test]
fn garbage_tokens_are_malformed() {
    for bad in ["", "a.b", "a.b.c.d", "!!!.???.***", &"x".repeat(100_000)] {
        assert_eq!(kind_of(bad), ErrorKind::Malformed, "{bad:.20}");
    }
}

#[test]
fn a_signed_component_verifies_and_keeps_its_capabilities() {
    let request = ActorClaimsRequest {
        name: "hello".into(),
        caps: vec!["wasi:keyvalue".into()],
        ..Default::default()
    };
    let (signed, _) = sign_actor(&component(), &request, &issuer(), &actor()).unwrap();
    let claims = verify_actor(&signed, &trusted()).unwrap();
    assert!(claims.trellis.has_capability("wasi:keyvalue"));
    assert!(!claims.trellis.has_capability("trellis:sqldb"));
}

#[test]
fn a_tampered_module_is_a_hash_mismatch() {
    let (mut signed, _) = sign_actor(
        &component(),
        &ActorClaimsRequest::default(),
        &issuer(),
        &actor(),
    )
    .unwrap();
    // Change the constant 42 in the nested module's code.
    let at = signed.windows(2).position(|w| w == [0x41, 42]).unwrap();
    signed[at + 1] = 43;
    assert_eq!(
        verify_actor(&signed, &trusted()).unwrap_err().kind(),
        ErrorKind::HashMismatch
    );
}

#[test]
fn an_unsigned_module_has_no_claims() {
    assert_eq!(
        verify_actor(&component(), &trusted()).unwrap_err().kind(),
        ErrorKind::NoClaims
    );
}

#[test]
fn expired_actor_claims_are_refused() {
    let request = ActorClaimsRequest {
        expires: Some(now_secs() - 3600),
        ..Default::default()
    };
    let (signed, _) = sign_actor(&component(), &request, &issuer(), &actor()).unwrap();
    assert_eq!(
        verify_actor(&signed, &trusted()).unwrap_err().kind(),
        ErrorKind::Expired
    );
}

#[test]
fn a_host_seed_cannot_be_an_actor_subject() {
    let err = sign_actor(
        &component(),
        &ActorClaimsRequest::default(),
        &issuer(),
        &generate(KeyKind::Host),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKeyKind);
}
