//! Golden vector: the exact token for fixed keys, times and metadata. Ed25519
//! signatures are deterministic, so any change here is a change of format.

use trellis_claims::actor::ActorMetadata;
use trellis_claims::jwt::{self, Claims};
use trellis_claims::keys::KeyKind;
use trellis_claims::{VerifyOptions, wasm};

use crate::{actor, component, issuer};

const GOLDEN_TOKEN: &str = concat!(
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJqdGkiOiIwMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwM",
    "DAwMDEiLCJpYXQiOjE3NjM3MDAwMDAsImlzcyI6IkFEVUpVWFU1SVFGSzJDV1ZTRkZSQ0g0WUVKVFZJS0hFVlZQNDV",
    "aN0FYS0JOVzQ2N1FCVExXQ0ZMIiwic3ViIjoiTUFCRzVOM0U1NFBDVUlUSjNHQk9MUFhMSTNLWjJPWUJaS0VCUFBUM",
    "lpaRlhHQjM1VTRGSEdSSEUiLCJleHAiOjQxMDI0NDQ4MDAsInRyZWxsaXMiOnsibmFtZSI6ImhlbGxvIiwibW9kdWx",
    "lX2hhc2giOiI0ZDdiZGEwMmY3MDA4YWI1MmViNDU2MDhjY2IyNGYwOWMxMzgyYWI4ODA4YzRmZWFhM2Q2NWFjNWVhM",
    "2NjMTk1IiwiY2FwcyI6WyJ3YXNpOmh0dHAiLCJ3YXNpOmtleXZhbHVlIl0sInRhZ3MiOlsiZXhhbXBsZSJdLCJyZXY",
    "iOjMsInZlciI6IjAuMS4wIiwiY2FsbF9hbGlhcyI6ImhlbGxvIn19.wboy0y7S1YO-a27F_I3MHh31BMh5klgYRFXX",
    "8IPxwec49r_DAn4mxGh95tnDO3Zg6DqwNeLy3nj004ynBXBWAQ",
);

fn golden_claims() -> Claims<ActorMetadata> {
    Claims {
        jti: "00000000-0000-4000-8000-000000000001".into(),
        iat: 1_763_700_000,
        iss: String::new(),
        sub: actor().public_key(),
        nbf: None,
        exp: Some(4_102_444_800), // 2100-01-01
        trellis: ActorMetadata {
            name: "hello".into(),
            module_hash: wasm::module_hash(&component()).unwrap(),
            caps: vec!["wasi:http".into(), "wasi:keyvalue".into()],
            tags: vec!["example".into()],
            rev: 3,
            ver: Some("0.1.0".into()),
            call_alias: Some("hello".into()),
        },
    }
}

#[test]
fn actor_claims_match_their_golden_vector() {
    let mut claims = golden_claims();
    let token = jwt::sign(&mut claims, &issuer(), KeyKind::Account).unwrap();
    assert_eq!(token, GOLDEN_TOKEN);
    let verified: Claims<ActorMetadata> = jwt::verify(
        GOLDEN_TOKEN,
        &VerifyOptions::trusting([issuer().public_key()]),
    )
    .unwrap();
    assert_eq!(verified, claims);
}

#[test]
fn the_header_names_the_jose_algorithm() {
    let header = GOLDEN_TOKEN.split('.').next().unwrap();
    use base64::Engine as _;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&json).unwrap(),
        r#"{"typ":"JWT","alg":"EdDSA"}"#
    );
}
