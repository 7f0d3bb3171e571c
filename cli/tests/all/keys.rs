//! `trellis keys gen`.

use crate::{trellis, trellis_json};

#[test]
fn keys_gen_prints_a_seed_and_public_key_of_each_kind() {
    for (kind, prefix) in [
        ("account", 'A'),
        ("actor", 'M'),
        ("provider", 'V'),
        ("host", 'N'),
        ("cluster", 'C'),
    ] {
        let (ok, out) = trellis_json(&["keys", "gen", kind]);
        assert!(ok);
        let public = out["public_key"].as_str().unwrap();
        let seed = out["seed"].as_str().unwrap();
        assert!(public.starts_with(prefix), "{kind}: {public}");
        assert_eq!(&seed[..2], format!("S{prefix}"));
    }
}

#[test]
fn keys_gen_writes_the_seed_to_a_private_file_in_the_key_directory() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().to_str().unwrap();
    let (ok, out) = trellis_json(&[
        "keys",
        "gen",
        "account",
        "--keys-dir",
        keys_dir,
        "--name",
        "dev",
    ]);
    assert!(ok);
    assert!(
        out.get("seed").is_none(),
        "the seed must not be printed when written to a file"
    );
    let path = dir.path().join("dev.account.nk");
    assert_eq!(out["path"].as_str().unwrap(), path.to_str().unwrap());
    let seed = std::fs::read_to_string(&path).unwrap();
    assert!(seed.starts_with("SA"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // An existing key is never overwritten.
    let (ok, out) = trellis_json(&[
        "keys",
        "gen",
        "account",
        "--keys-dir",
        keys_dir,
        "--name",
        "dev",
    ]);
    assert!(!ok);
    assert_eq!(out["error"]["kind"], "error");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), seed);
}

#[test]
fn keys_public_prints_the_public_key_of_a_seed_or_key_file() {
    let (_, generated) = trellis_json(&["keys", "gen", "provider"]);
    let (ok, out) = trellis_json(&["keys", "public", generated["seed"].as_str().unwrap()]);
    assert!(ok);
    assert_eq!(out["public_key"], generated["public_key"]);
    assert_eq!(out["kind"], "provider");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.nk");
    std::fs::write(&file, format!("{}\n", generated["seed"].as_str().unwrap())).unwrap();
    let (ok, out) = trellis_json(&["keys", "public", file.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(out["public_key"], generated["public_key"]);
    let (ok, out) = trellis_json(&["keys", "public", "SAnotaseed"]);
    assert!(!ok);
    assert_eq!(out["error"]["kind"], "error");
}

#[test]
fn an_unknown_key_kind_is_a_usage_error() {
    trellis().args(["keys", "gen", "curve"]).assert().code(2);
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["keys", "--help"],
        &["keys", "gen", "--help"],
        &["claims", "sign", "--help"],
        &["claims", "inspect", "--help"],
        &["par", "create", "--help"],
        &["par", "inspect", "--help"],
    ] {
        trellis().args(args).assert().success();
    }
}
