//! `trellis push` and `trellis pull` against a real OCI registry
//! (`docker-registry` on a free port, with basic auth): plain HTTP only
//! when allowed, a wrong password refused, the same bytes back, and
//! readable by an independent client (oras).

use trellis_test_support::registry::Registry;

use crate::{test_home, trellis, trellis_json};

#[test]
fn push_and_pull_through_a_registry_with_basic_auth() {
    let server = Registry::start_with_user("ada", "right-password");
    let address = server.address();
    let component = trellis_test_support::example_component("hello");
    let file = component.to_str().unwrap();
    let reference = format!("oci://{address}/actors/hello:0.1.0");
    let insecure = ["--allow-insecure-registry", address.as_str()];

    // Without --allow-insecure-registry the CLI insists on HTTPS.
    let https = trellis()
        .args(["push", file, &reference, "--registry-user", "ada"])
        .args(["--registry-password", "right-password"])
        .output()
        .unwrap();
    assert!(!https.status.success());

    let wrong = trellis()
        .args(["push", file, &reference])
        .args(insecure)
        .args(["--registry-user", "ada", "--registry-password", "wrong"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("denied"), "{stderr}");

    let mut args = vec!["push", file, &reference];
    args.extend(insecure);
    args.extend([
        "--registry-user",
        "ada",
        "--registry-password",
        "right-password",
    ]);
    let (ok, pushed) = trellis_json(&args);
    assert!(ok, "{pushed}");
    assert_eq!(pushed["reference"], reference);
    let digest = pushed["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"));

    let copy = test_home().join("pulled-hello.wasm");
    let pinned = format!("{address}/actors/hello@{digest}");
    let mut args = vec!["pull", &pinned, "-d", copy.to_str().unwrap()];
    args.extend(insecure);
    args.extend([
        "--registry-user",
        "ada",
        "--registry-password",
        "right-password",
    ]);
    let (ok, pulled) = trellis_json(&args);
    assert!(ok, "{pulled}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&component).unwrap()
    );

    // inspect fetches it and shows its digest and claims: none, since the
    // example component is unsigned, so it exits with failure.
    let mut args = vec!["inspect", &reference];
    args.extend(insecure);
    args.extend([
        "--registry-user",
        "ada",
        "--registry-password",
        "right-password",
    ]);
    let (verified, inspected) = trellis_json(&args);
    assert!(!verified);
    assert_eq!(inspected["verified"], false);
    assert_eq!(inspected["artifact"]["reference"], reference);
    assert_eq!(inspected["artifact"]["digest"], pulled["digest"]);

    // An independent OCI client (oras-py) pulls what `trellis push` pushed,
    // and sees the CNCF media types.
    let python = std::env::var("TRELLIS_TEST_ORAS_PYTHON").unwrap_or_else(|_| {
        panic!(
            "set TRELLIS_TEST_ORAS_PYTHON to a Python with oras installed (scripts/test.sh does)"
        )
    });
    let outdir = tempfile::tempdir_in(test_home()).unwrap();
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys, oras.client\n\
             c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True, auth_backend='basic')\n\
             c.login(username='ada', password='right-password', hostname=sys.argv[1], tls_verify=False, config_path=sys.argv[3] + '/docker-config.json')\n\
             m = c.get_manifest(sys.argv[2])\n\
             files = c.pull(target=sys.argv[2], outdir=sys.argv[3])\n\
             print(json.dumps({'manifest': m, 'files': files}))",
        )
        .args([&address, &format!("{address}/actors/hello:0.1.0")])
        .arg(outdir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oras: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        oras["manifest"]["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(
        oras["manifest"]["layers"][0]["mediaType"],
        "application/wasm"
    );
    let file = oras["files"][0].as_str().unwrap();
    assert_eq!(
        std::fs::read(file).unwrap(),
        std::fs::read(&component).unwrap()
    );
}
