//! `trellis claims sign` and `inspect` on a real `wasm32-wasip2` component.

use std::path::Path;

use crate::{hello_component, trellis_json};

fn account(dir: &Path) -> (String, String) {
    let (ok, out) = trellis_json(&["keys", "gen", "account"]);
    assert!(ok);
    let seed_file = dir.join("issuer.nk");
    std::fs::write(&seed_file, out["seed"].as_str().unwrap()).unwrap();
    (
        seed_file.to_str().unwrap().to_owned(),
        out["public_key"].as_str().unwrap().to_owned(),
    )
}

/// Offset of a byte inside the body of a function in the code section of the
/// component's first nested core module.
fn code_byte(wasm: &[u8]) -> usize {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let range = body.range();
            if range.len() > 8 {
                return range.start + range.len() / 2;
            }
        }
    }
    panic!("no function body found");
}

#[test]
fn sign_and_inspect_a_real_component_then_detect_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer_file, issuer_public) = account(dir.path());
    let signed = dir.path().join("hello.signed.wasm");
    let keys_dir = dir.path().join("keys");
    let (ok, out) = trellis_json(&[
        "claims",
        "sign",
        hello_component().to_str().unwrap(),
        "--issuer",
        &issuer_file,
        "--name",
        "hello",
        "--cap",
        "wasi:http",
        "--cap",
        "wasi:logging",
        "--keys-dir",
        keys_dir.to_str().unwrap(),
        "--expires-in",
        "30d",
        "-d",
        signed.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let actor_id = out["claims"]["sub"].as_str().unwrap().to_owned();
    assert!(actor_id.starts_with('M'));
    assert!(keys_dir.join("hello.actor.nk").exists());

    let (ok, out) = trellis_json(&[
        "claims",
        "inspect",
        signed.to_str().unwrap(),
        "--trust",
        &issuer_public,
    ]);
    assert!(ok, "{out}");
    assert_eq!(out["verified"], true);
    assert_eq!(out["claims"]["iss"], issuer_public.as_str());
    assert_eq!(out["claims"]["sub"], actor_id.as_str());
    assert_eq!(
        out["claims"]["trellis"]["caps"],
        serde_json::json!(["wasi:http", "wasi:logging"])
    );
    assert!(out["claims"]["exp"].as_u64().is_some());

    // Signing again with the same key directory keeps the actor id.
    let (ok, again) = trellis_json(&[
        "claims",
        "sign",
        hello_component().to_str().unwrap(),
        "--issuer",
        &issuer_file,
        "--name",
        "hello",
        "--keys-dir",
        keys_dir.to_str().unwrap(),
        "-d",
        dir.path().join("again.wasm").to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(again["claims"]["sub"], actor_id.as_str());

    // One byte changed in the code section: the hash no longer matches.
    let mut bytes = std::fs::read(&signed).unwrap();
    let at = code_byte(&bytes);
    bytes[at] ^= 0x01;
    let tampered = dir.path().join("tampered.wasm");
    std::fs::write(&tampered, &bytes).unwrap();
    let (ok, out) = trellis_json(&[
        "claims",
        "inspect",
        tampered.to_str().unwrap(),
        "--trust",
        &issuer_public,
    ]);
    assert!(!ok, "inspect must exit non-zero for a tampered module");
    assert_eq!(out["verified"], false);
    assert_eq!(out["error"]["kind"], "hash_mismatch");
}

#[test]
fn inspect_refuses_an_issuer_outside_the_trust_list() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer_file, _) = account(dir.path());
    let (_, stranger) = account(&dir.path().join("x").tap_mkdir());
    let signed = dir.path().join("hello.wasm");
    let (ok, _) = trellis_json(&[
        "claims",
        "sign",
        hello_component().to_str().unwrap(),
        "--issuer",
        &issuer_file,
        "--name",
        "hello",
        "-d",
        signed.to_str().unwrap(),
    ]);
    assert!(ok);
    let (ok, out) = trellis_json(&[
        "claims",
        "inspect",
        signed.to_str().unwrap(),
        "--trust",
        &stranger,
    ]);
    assert!(!ok);
    assert_eq!(out["error"]["kind"], "untrusted_issuer");
}

#[test]
fn inspect_of_an_unsigned_component_reports_no_claims() {
    let (ok, out) = trellis_json(&["claims", "inspect", hello_component().to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(out["error"]["kind"], "no_claims");
}

#[test]
fn an_actor_seed_given_as_issuer_is_the_wrong_key_kind() {
    let (_, actor) = trellis_json(&["keys", "gen", "actor"]);
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = trellis_json(&[
        "claims",
        "sign",
        hello_component().to_str().unwrap(),
        "--issuer",
        actor["seed"].as_str().unwrap(),
        "--name",
        "hello",
        "-d",
        dir.path().join("x.wasm").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert_eq!(out["error"]["kind"], "wrong_key_kind");
}

#[test]
fn signing_garbage_is_invalid_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer_file, _) = account(dir.path());
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm").unwrap();
    let (ok, out) = trellis_json(&[
        "claims",
        "sign",
        garbage.to_str().unwrap(),
        "--issuer",
        &issuer_file,
        "--name",
        "x",
    ]);
    assert!(!ok);
    assert_eq!(out["error"]["kind"], "invalid_wasm");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
