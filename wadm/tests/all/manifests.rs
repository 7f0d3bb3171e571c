//! Manifests against golden files: every file in `tests/manifests/bad/`
//! is refused with the error kind and message in its `.err` file, every
//! file in `tests/manifests/ok/` (and the demo's manifest) is accepted, and
//! `docs/wadm.schema.json` is the schema generated from the types.
//!
//! Run with `TRELLIS_BLESS=1` to rewrite the golden files after an
//! intended change, and review the diff.

use std::path::Path;

use trellis_claims::actor::{ActorClaimsRequest, sign_actor, verify_actor};
use trellis_claims::jwt::VerifyOptions;
use trellis_claims::keys::{KeyKind, generate};
use trellis_wadm::manifest::{Manifest, ManifestError, ManifestErrorKind};

use crate::manifests_dir;

fn bless() -> bool {
    std::env::var_os("TRELLIS_BLESS").is_some()
}

/// The capabilities in the claims of a real signed hello actor: only
/// `wasi:http`.
fn hello_caps() -> Vec<String> {
    let wasm = std::fs::read(trellis_test_support::example_component("hello")).unwrap();
    let request = ActorClaimsRequest {
        name: "hello".into(),
        caps: vec!["wasi:http".into()],
        ..Default::default()
    };
    let (signed, _) = sign_actor(
        &wasm,
        &request,
        &generate(KeyKind::Account),
        &generate(KeyKind::Actor),
    )
    .unwrap();
    let options = VerifyOptions {
        trusted_issuers: None,
        ..VerifyOptions::default()
    };
    verify_actor(&signed, &options).unwrap().trellis.caps
}

/// Parses, then checks links against the claims: every actor of the
/// golden files is the hello actor.
fn check(text: &str, caps: &[String]) -> Result<Manifest, ManifestError> {
    let manifest = Manifest::parse(text)?;
    manifest.check_sealed()?;
    manifest.check_contracts(|_| Some(caps.to_vec()))?;
    Ok(manifest)
}

fn golden(path: &Path, actual: &str) {
    if bless() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with TRELLIS_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "{} differs", path.display());
}

#[test]
fn every_bad_manifest_is_refused_with_its_golden_error() {
    let caps = hello_caps();
    let mut seen = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(manifests_dir().join("bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let err = check(&text, &caps)
            .map(drop)
            .expect_err(&format!("{} was accepted", path.display()));
        seen.push(err.kind());
        golden(
            &path.with_extension("err"),
            &format!("{}: {err}\n", err.kind()),
        );
    }
    // Each rule the format promises a precise error for has a file.
    for kind in [
        ManifestErrorKind::UnknownTrait,
        ManifestErrorKind::MissingLinkTarget,
        ManifestErrorKind::DuplicateComponent,
        ManifestErrorKind::InvalidName,
        ManifestErrorKind::MissingImage,
        ManifestErrorKind::ContractNotClaimed,
        ManifestErrorKind::UnknownField,
        ManifestErrorKind::NotAnApplication,
        ManifestErrorKind::InvalidVersion,
        ManifestErrorKind::InvalidConfig,
        ManifestErrorKind::InvalidLink,
    ] {
        assert!(seen.contains(&kind), "no golden file shows {kind}");
    }
}

#[test]
fn good_manifests_and_the_demo_are_accepted() {
    let mut files: Vec<_> = std::fs::read_dir(manifests_dir().join("ok"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(trellis_test_support::repo_root().join("actors-examples/demo.yaml"));
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = Manifest::parse(&text);
        assert!(parsed.is_ok(), "{}: {:?}", path.display(), parsed.err());
    }
}

#[test]
fn the_demo_manifest_maps_onto_trellis_links() {
    let text = std::fs::read_to_string(
        trellis_test_support::repo_root().join("actors-examples/demo.yaml"),
    )
    .unwrap();
    // Its secrets are sealed at deploy time: the stored form is refused
    // until then.
    let err = Manifest::parse(&text).unwrap().check_sealed().unwrap_err();
    assert_eq!(err.kind(), ManifestErrorKind::InvalidConfig);
    let manifest: Manifest = yaml_serde::from_str(&text).unwrap();
    let http: Vec<_> = manifest
        .spec
        .components
        .iter()
        .find(|c| c.name == "httpserver")
        .unwrap()
        .traits
        .iter()
        .collect();
    assert_eq!(http.len(), 4);
    assert_eq!(
        manifest
            .provider_link_names("httpserver")
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["default".to_owned()]
    );
}

#[test]
fn the_shipped_json_schema_is_the_generated_one() {
    let path = trellis_test_support::repo_root().join("docs/wadm.schema.json");
    let generated = serde_json::to_string_pretty(&Manifest::json_schema()).unwrap() + "\n";
    golden(&path, &generated);
}

#[test]
fn a_manifest_over_the_size_limit_is_refused_before_parsing() {
    let huge = "#".repeat(trellis_wadm::manifest::MAX_MANIFEST_BYTES + 1);
    assert_eq!(
        Manifest::parse(&huge).unwrap_err().kind(),
        ManifestErrorKind::TooLarge
    );
}
