//! `trellis par create` and `inspect`.

use crate::trellis_json;

#[test]
fn par_create_then_inspect_round_trips_and_detects_a_swapped_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_, account) = trellis_json(&["keys", "gen", "account"]);
    let (_, provider) = trellis_json(&["keys", "gen", "provider"]);
    let x86 = dir.path().join("x86");
    let arm = dir.path().join("arm");
    std::fs::write(&x86, b"\x7fELF x86 provider").unwrap();
    std::fs::write(&arm, b"\x7fELF arm provider").unwrap();
    let par = dir.path().join("kv.par.gz");
    let (ok, out) = trellis_json(&[
        "par",
        "create",
        "--issuer",
        account["seed"].as_str().unwrap(),
        "--subject",
        provider["seed"].as_str().unwrap(),
        "--name",
        "keyvalue-redis",
        "--contract",
        "wasi:keyvalue",
        "--vendor",
        "Trellis",
        "--binary",
        &format!("x86_64-linux={}", x86.display()),
        "--binary",
        &format!("aarch64-linux={}", arm.display()),
        "-d",
        par.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out["claims"]["sub"], provider["public_key"]);

    let issuer = account["public_key"].as_str().unwrap();
    let (ok, out) = trellis_json(&["par", "inspect", par.to_str().unwrap(), "--trust", issuer]);
    assert!(ok, "{out}");
    assert_eq!(out["claims"]["trellis"]["contract_id"], "wasi:keyvalue");
    assert_eq!(
        out["claims"]["trellis"]["target_hashes"]
            .as_object()
            .unwrap()
            .len(),
        2
    );

    // Rebuild the archive with one binary swapped but the old claims.
    let bytes = std::fs::read(&par).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_str().unwrap().to_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if name == "x86_64-linux.bin" {
            data = b"\x7fELF evil".to_vec();
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append_data(&mut header, &name, &data[..]).unwrap();
    }
    let swapped = dir.path().join("swapped.par.gz");
    std::fs::write(&swapped, builder.into_inner().unwrap().finish().unwrap()).unwrap();
    let (ok, out) = trellis_json(&[
        "par",
        "inspect",
        swapped.to_str().unwrap(),
        "--trust",
        issuer,
    ]);
    assert!(!ok);
    assert_eq!(out["error"]["kind"], "hash_mismatch");
}
