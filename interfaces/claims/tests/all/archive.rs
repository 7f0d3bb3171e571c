//! Provider archives.

use std::collections::BTreeMap;

use trellis_claims::provider::{
    ArchiveLimits, ExtractedBinary, ProviderArchive, ProviderClaimsRequest, current_target,
};
use trellis_claims::{ErrorKind, VerifyOptions};

use crate::{actor, issuer, provider};

fn request() -> ProviderClaimsRequest {
    ProviderClaimsRequest {
        name: "keyvalue-redis".into(),
        contract_id: "wasi:keyvalue".into(),
        vendor: "Trellis".into(),
        ..Default::default()
    }
}

fn binaries() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("x86_64-linux".to_owned(), b"\x7fELF pretend x86".to_vec()),
        ("aarch64-linux".to_owned(), b"\x7fELF pretend arm".to_vec()),
    ])
}

fn trusted() -> VerifyOptions {
    VerifyOptions::trusting([issuer().public_key()])
}

#[test]
fn an_archive_round_trips_and_verifies() {
    let (archive, claims) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let bytes = archive.to_bytes().unwrap();
    let read = ProviderArchive::from_bytes(&bytes, &ArchiveLimits::default()).unwrap();
    assert_eq!(read, archive);
    let verified = read.verify(&trusted()).unwrap();
    assert_eq!(verified, claims);
    assert_eq!(verified.sub, provider().public_key());
    assert_eq!(verified.trellis.target_hashes.len(), 2);
    assert!(!current_target().is_empty());
}

#[test]
fn a_swapped_binary_is_a_hash_mismatch() {
    let (mut archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    archive
        .binaries
        .insert("x86_64-linux".into(), b"evil".to_vec());
    assert_eq!(
        archive.verify(&trusted()).unwrap_err().kind(),
        ErrorKind::HashMismatch
    );
}

#[test]
fn an_added_or_removed_binary_is_a_hash_mismatch() {
    let (archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let mut added = archive.clone();
    added
        .binaries
        .insert("riscv64-linux".into(), b"extra".to_vec());
    assert_eq!(
        added.verify(&trusted()).unwrap_err().kind(),
        ErrorKind::HashMismatch
    );
    let mut removed = archive;
    removed.binaries.remove("aarch64-linux");
    assert_eq!(
        removed.verify(&trusted()).unwrap_err().kind(),
        ErrorKind::HashMismatch
    );
}

/// Streams `archive` through `ProviderArchive::extract` for `target`.
fn extract(archive: &ProviderArchive, target: &str) -> (Vec<u8>, ExtractedBinary) {
    let bytes = archive.to_bytes().unwrap();
    let mut out = Vec::new();
    let extracted = ProviderArchive::extract(
        bytes.as_slice(),
        target,
        &mut out,
        &ArchiveLimits::default(),
    )
    .unwrap();
    (out, extracted)
}

#[test]
fn extracting_streams_one_binary_and_verifies_it() {
    let (archive, claims) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let (written, extracted) = extract(&archive, "aarch64-linux");
    assert_eq!(written, binaries()["aarch64-linux"]);
    assert_eq!(
        extracted.hash.as_ref(),
        claims.trellis.target_hashes.get("aarch64-linux")
    );
    assert_eq!(extracted.verify(&trusted()).unwrap(), claims);
}

#[test]
fn an_extracted_binary_swapped_after_signing_is_a_hash_mismatch() {
    let (mut archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    archive
        .binaries
        .insert("x86_64-linux".into(), b"evil".to_vec());
    let (written, extracted) = extract(&archive, "x86_64-linux");
    assert_eq!(written, b"evil");
    assert_eq!(
        extracted.verify(&trusted()).unwrap_err().kind(),
        ErrorKind::HashMismatch
    );
}

#[test]
fn extracting_a_missing_target_writes_nothing_and_does_not_verify() {
    let (archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let (written, extracted) = extract(&archive, "riscv64-linux");
    assert!(written.is_empty());
    assert_eq!(extracted.hash, None);
    assert_eq!(
        extracted.verify(&trusted()).unwrap_err().kind(),
        ErrorKind::InvalidArchive
    );
}

#[test]
fn extracting_from_an_untrusted_issuer_is_refused() {
    let (archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let (_, extracted) = extract(&archive, "x86_64-linux");
    let stranger = VerifyOptions::trusting([crate::other_issuer().public_key()]);
    assert_eq!(
        extracted.verify(&stranger).unwrap_err().kind(),
        ErrorKind::UntrustedIssuer
    );
}

#[test]
fn extracting_a_cut_archive_fails() {
    let (archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let bytes = archive.to_bytes().unwrap();
    let cut = &bytes[..bytes.len() - 8];
    let err = ProviderArchive::extract(
        cut,
        "x86_64-linux",
        std::io::sink(),
        &ArchiveLimits::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArchive);
}

#[test]
fn an_actor_key_cannot_be_a_provider_subject() {
    let err = ProviderArchive::create(&request(), binaries(), &issuer(), &actor()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKeyKind);
}

#[test]
fn archives_over_their_limits_are_refused() {
    let (archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let bytes = archive.to_bytes().unwrap();
    let tiny = ArchiveLimits {
        max_entry_bytes: 8,
        ..ArchiveLimits::default()
    };
    assert_eq!(
        ProviderArchive::from_bytes(&bytes, &tiny)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArchive
    );
    let few = ArchiveLimits {
        max_entries: 2,
        ..ArchiveLimits::default()
    };
    assert_eq!(
        ProviderArchive::from_bytes(&bytes, &few)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArchive
    );
}

#[test]
fn garbage_and_cut_archives_are_refused() {
    assert_eq!(
        ProviderArchive::from_bytes(b"not gzip", &ArchiveLimits::default())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArchive
    );
    let (archive, _) =
        ProviderArchive::create(&request(), binaries(), &issuer(), &provider()).unwrap();
    let bytes = archive.to_bytes().unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            ProviderArchive::from_bytes(&bytes[..cut], &ArchiveLimits::default()).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn an_archive_without_claims_has_no_claims() {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    let mut header = tar::Header::new_ustar();
    header.set_size(3);
    header.set_cksum();
    builder
        .append_data(&mut header, "x86_64-linux.bin", &b"bin"[..])
        .unwrap();
    let bytes = builder.into_inner().unwrap().finish().unwrap();
    assert_eq!(
        ProviderArchive::from_bytes(&bytes, &ArchiveLimits::default())
            .unwrap_err()
            .kind(),
        ErrorKind::NoClaims
    );
}
