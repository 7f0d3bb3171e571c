//! OCI registries: a real `docker-registry` on a free port. Components
//! and provider archives pushed with the CNCF media types start by tag and
//! by digest; plain HTTP only when allowed; basic auth; bad artifacts are
//! refused, each with its own kind, while the host keeps serving.

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_host::{ErrorKind, HostConfig, RuntimeLimits};
use trellis_lattice_client::artifacts::ArtifactErrorKind;
use trellis_lattice_client::oci::{ArtifactKind, Pushed, Registry, RegistrySettings};
use trellis_protocol::artifact::{ArtifactRef, OciRef};
use trellis_test_support::registry::Registry as RegistryServer;

use crate::{TestLattice, body, example, no_annotations};

const TIMEOUT: Duration = Duration::from_secs(30);

fn oci(reference: &str) -> OciRef {
    match reference.parse().unwrap() {
        ArtifactRef::Oci(r) => r,
        other => panic!("not an OCI reference: {other}"),
    }
}

/// Settings reaching `server` over plain HTTP, with `credentials`.
fn insecure(server: &RegistryServer, credentials: Option<(&str, &str)>) -> RegistrySettings {
    RegistrySettings {
        insecure: vec![server.address()],
        credentials: credentials
            .map(|(u, p)| BTreeMap::from([(server.address(), (u.to_owned(), p.to_owned()))]))
            .unwrap_or_default(),
        ..RegistrySettings::default()
    }
}

async fn push(
    settings: &RegistrySettings,
    reference: &str,
    bytes: Vec<u8>,
    kind: ArtifactKind,
) -> Pushed {
    Registry::new(settings.clone())
        .push(&oci(reference), bytes, kind, TIMEOUT)
        .await
        .unwrap()
}

/// A host with no artifact directories, reaching registries with `settings`.
async fn host(lattice: &TestLattice, settings: RegistrySettings) -> trellis_host::Host {
    trellis_host::Host::start(HostConfig {
        artifact_dirs: Vec::new(),
        provider_cache_dir: tempfile::tempdir().unwrap().keep(),
        registries: settings,
        pull_timeout: Duration::from_secs(5),
        ..lattice.config()
    })
    .await
    .unwrap()
}

fn signed_hello(lattice: &TestLattice) -> (KeyPair, Vec<u8>) {
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);
    (actor, wasm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_starts_by_tag_and_by_digest() {
    let lattice = TestLattice::new();
    let server = RegistryServer::start();
    let settings = insecure(&server, None);
    let (actor, wasm) = signed_hello(&lattice);
    let pushed = push(
        &settings,
        &format!("{}/actors/hello:0.1.0", server.address()),
        wasm,
        ArtifactKind::Component,
    )
    .await;
    let host = host(&lattice, settings).await;

    let by_tag = format!("oci://{}/actors/hello:0.1.0", server.address());
    let started = host
        .start_actor(&by_tag, 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(started.id, actor.public_key());
    let client = lattice.client().await;
    let answer = client.get(&actor.public_key(), "/?name=Ada").await.unwrap();
    assert_eq!(body(&answer), "Hello, Ada!");

    // By manifest digest, in the bare form: the layer comes from the cache.
    host.stop_actor(&actor.public_key()).await.unwrap();
    let by_digest = format!(
        "{}/actors/hello@{}",
        server.address(),
        pushed.manifest_digest
    );
    host.start_actor(&by_digest, 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(host.artifact_pulls(), 1);
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_registry_is_refused_unless_allowed() {
    let lattice = TestLattice::new();
    let server = RegistryServer::start();
    let (_, wasm) = signed_hello(&lattice);
    let reference = format!("{}/hello:1", server.address());
    push(
        &insecure(&server, None),
        &reference,
        wasm,
        ArtifactKind::Component,
    )
    .await;

    let host = host(&lattice, RegistrySettings::default()).await;
    let err = host
        .start_actor(&reference, 1, no_annotations())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Artifact);
    assert_eq!(err.artifact_kind(), Some(ArtifactErrorKind::Registry));
    assert_eq!(host.artifact_pulls(), 0);
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_a_wrong_password_is_denied() {
    let lattice = TestLattice::new();
    let server = RegistryServer::start_with_user("ada", "right-password");
    let (actor, wasm) = signed_hello(&lattice);
    let reference = format!("{}/hello:1", server.address());
    let anonymous = Registry::new(insecure(&server, None))
        .push(
            &oci(&reference),
            wasm.clone(),
            ArtifactKind::Component,
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert_eq!(anonymous.kind(), ArtifactErrorKind::Denied);
    push(
        &insecure(&server, Some(("ada", "right-password"))),
        &reference,
        wasm,
        ArtifactKind::Component,
    )
    .await;

    let wrong = host(&lattice, insecure(&server, Some(("ada", "wrong-password")))).await;
    let err = wrong
        .start_actor(&reference, 1, no_annotations())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Artifact);
    assert_eq!(err.artifact_kind(), Some(ArtifactErrorKind::Denied));
    wrong.stop(None).await;

    let right = host(&lattice, insecure(&server, Some(("ada", "right-password")))).await;
    let started = right
        .start_actor(&reference, 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(started.id, actor.public_key());
    right.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registry_artifacts_are_refused_by_kind_and_the_host_keeps_serving() {
    let lattice = TestLattice::new();
    let server = RegistryServer::start();
    let settings = insecure(&server, None);
    let address = server.address();
    let at = |name: &str| format!("{address}/{name}");
    let (actor, wasm) = signed_hello(&lattice);
    let limit = wasm.len() + 64 * 1024;
    push(
        &settings,
        &at("hello:1"),
        wasm.clone(),
        ArtifactKind::Component,
    )
    .await;
    push(
        &settings,
        &at("unsigned:1"),
        example("hello"),
        ArtifactKind::Component,
    )
    .await;
    push(
        &settings,
        &at("big:1"),
        vec![0; limit + 1],
        ArtifactKind::Component,
    )
    .await;
    let archive = push(
        &settings,
        &at("archive:1"),
        vec![0x1f, 0x8b, 0],
        ArtifactKind::ProviderArchive,
    )
    .await;
    let altered = push(
        &settings,
        &at("altered:1"),
        wasm.clone(),
        ArtifactKind::Component,
    )
    .await;
    let truncated = push(
        &settings,
        &at("truncated:1"),
        lattice.sign(&example("hello"), &generate(KeyKind::Actor), &[]),
        ArtifactKind::Component,
    )
    .await;
    let host = trellis_host::Host::start(HostConfig {
        artifact_dirs: Vec::new(),
        provider_cache_dir: tempfile::tempdir().unwrap().keep(),
        registries: settings,
        pull_timeout: Duration::from_secs(2),
        limits: RuntimeLimits {
            max_component_bytes: limit,
            ..RuntimeLimits::default()
        },
        ..lattice.config()
    })
    .await
    .unwrap();
    host.start_actor(&at("hello:1"), 1, no_annotations())
        .await
        .unwrap();
    let refused = |reference: String| {
        let host = host.clone();
        async move {
            host.start_actor(&reference, 1, no_annotations())
                .await
                .unwrap_err()
        }
    };
    let artifact = |err: trellis_host::Error, kind| {
        assert_eq!(err.kind(), ErrorKind::Artifact, "{err}");
        assert_eq!(err.artifact_kind(), Some(kind), "{err}");
    };

    // A digest the registry does not have.
    let unknown = format!("sha256:{}", "0".repeat(64));
    assert_eq!(
        refused(at(&format!("hello@{unknown}"))).await.kind(),
        ErrorKind::NotFound
    );
    artifact(refused(at("big:1")).await, ArtifactErrorKind::TooLarge);
    // A provider archive is not a component.
    artifact(refused(at("archive:1")).await, ArtifactErrorKind::MediaType);
    assert_eq!(archive.layer.size, 3);
    assert_eq!(refused(at("unsigned:1")).await.kind(), ErrorKind::Claims);
    assert_eq!(refused(at("missing:1")).await.kind(), ErrorKind::NotFound);

    // A blob cut short on the registry's disk, and a manifest altered
    // there: neither matches its digest.
    let blob = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        server.dir().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    };
    let layer = blob(&truncated.layer.digest);
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[..bytes.len() / 2]).unwrap();
    artifact(
        refused(at("truncated:1")).await,
        ArtifactErrorKind::DigestMismatch,
    );
    let manifest = blob(&altered.manifest_digest);
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes.push(b'\n');
    std::fs::write(&manifest, &bytes).unwrap();
    artifact(
        refused(at("altered:1")).await,
        ArtifactErrorKind::DigestMismatch,
    );

    // A registry that stops answering: bounded by the pull timeout.
    server.signal("STOP");
    let started = std::time::Instant::now();
    let err = refused(at("hello:1")).await;
    server.signal("CONT");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let client = lattice.client().await;
    let answer = client.get(&actor.public_key(), "/?name=Ada").await.unwrap();
    assert_eq!(body(&answer), "Hello, Ada!");
    host.stop(None).await;
}

/// A Python with the independent OCI client `oras` (`scripts/test.sh`
/// makes one and sets `TRELLIS_TEST_ORAS_PYTHON`).
fn oras(script: &str, args: &[&str]) -> std::process::Output {
    let python = std::env::var("TRELLIS_TEST_ORAS_PYTHON").unwrap_or_else(|_| {
        panic!(
            "set TRELLIS_TEST_ORAS_PYTHON to a Python with oras installed (scripts/test.sh does)"
        )
    });
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What Trellis pushes, `oras` pulls with the CNCF media types; what
/// `oras` pushes with them starts on a Trellis host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_interoperate_with_the_oras_client() {
    let lattice = TestLattice::new();
    let server = RegistryServer::start();
    let settings = insecure(&server, None);
    let dir = tempfile::tempdir().unwrap();

    // Trellis pushes; oras reads the manifest and pulls the layer.
    let (_, wasm) = signed_hello(&lattice);
    let ours = format!("{}/trellis/hello:1", server.address());
    push(&settings, &ours, wasm.clone(), ArtifactKind::Component).await;
    let out = oras(
        "import json, sys, oras.client\n\
         c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)\n\
         m = c.get_manifest(sys.argv[2])\n\
         files = c.pull(target=sys.argv[2], outdir=sys.argv[3])\n\
         print(json.dumps({'manifest': m, 'files': files}))",
        &[&server.address(), &ours, dir.path().to_str().unwrap()],
    );
    let pulled: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = &pulled["manifest"];
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let files = pulled["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(files[0].as_str().unwrap()).unwrap(), wasm);

    // oras pushes a signed component with the CNCF layout; a host starts it.
    let (actor, theirs_wasm) = signed_hello(&lattice);
    std::fs::write(dir.path().join("theirs.wasm"), &theirs_wasm).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        br#"{"architecture":"wasm","os":"wasip2"}"#,
    )
    .unwrap();
    let theirs = format!("{}/oras/hello:1", server.address());
    oras(
        "import os, sys, oras.client\n\
         os.chdir(sys.argv[3])\n\
         c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)\n\
         r = c.push(target=sys.argv[2], files=['theirs.wasm:application/wasm'],\n\
                    manifest_config='config.json:application/vnd.wasm.config.v0+json')\n\
         assert r.status_code == 201, r.status_code",
        &[&server.address(), &theirs, dir.path().to_str().unwrap()],
    );
    let host = host(&lattice, settings).await;
    let started = host
        .start_actor(&theirs, 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(started.id, actor.public_key());
    let client = lattice.client().await;
    let answer = client
        .get(&actor.public_key(), "/?name=oras")
        .await
        .unwrap();
    assert_eq!(body(&answer), "Hello, oras!");
    host.stop(None).await;
}

/// A Docker image manifest (not an OCI one) naming the blobs of a pushed
/// component is refused for its media type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_manifest_is_refused_for_its_media_type() {
    let lattice = TestLattice::new();
    let server = RegistryServer::start();
    let settings = insecure(&server, None);
    let (_, wasm) = signed_hello(&lattice);
    let pushed = push(
        &settings,
        &format!("{}/hello:1", server.address()),
        wasm,
        ArtifactKind::Component,
    )
    .await;
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let image: oci_client::Reference = format!("{}/hello:1", server.address()).parse().unwrap();
    let (manifest, _) = client
        .pull_image_manifest(&image, &oci_client::secrets::RegistryAuth::Anonymous)
        .await
        .unwrap();
    let docker = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": manifest.config.size,
            "digest": manifest.config.digest,
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": pushed.layer.size,
            "digest": pushed.layer.digest,
        }],
    });
    let target: oci_client::Reference = format!("{}/hello:docker", server.address())
        .parse()
        .unwrap();
    client
        .push_manifest_raw(
            &target,
            serde_json::to_vec(&docker).unwrap(),
            http::HeaderValue::from_static("application/vnd.docker.distribution.manifest.v2+json"),
        )
        .await
        .unwrap();

    let host = host(&lattice, settings).await;
    let err = host
        .start_actor(
            &format!("{}/hello:docker", server.address()),
            1,
            no_annotations(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Artifact, "{err}");
    assert_eq!(
        err.artifact_kind(),
        Some(ArtifactErrorKind::MediaType),
        "{err}"
    );
    host.stop(None).await;
}
