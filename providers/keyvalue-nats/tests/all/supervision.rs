//! The host supervises the provider: starts it, restarts it after a crash,
//! verifies its archive, stops it with the host.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use trellis_claims::keys::{KeyKind, generate};
use trellis_claims::provider::{ProviderArchive, ProviderClaimsRequest, current_target};
use trellis_host::{ErrorKind, Host, HostConfig};
use trellis_protocol::{CloudEvent, DecodeLimits, EventType, Lattice};

use crate::{BINARY, TestLattice, count, start_kvcounter, start_provider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvcounter_counts_through_the_nats_provider() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let provider = start_provider(&host).await;
    let actor = start_kvcounter(&lattice, &host, &provider.id).await;
    assert_eq!(count(&lattice, &actor.public_key(), "visits").await, 1);
    assert_eq!(count(&lattice, &actor.public_key(), "visits").await, 2);
    assert_eq!(count(&lattice, &actor.public_key(), "visits").await, 3);
    let inventory = host.inventory().await;
    assert_eq!(inventory.providers.len(), 1);
    assert_eq!(inventory.providers[0].contract_id.as_str(), "wasi:keyvalue");
    host.stop(None).await;
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.split_whitespace()
                .nth(2)
                .is_none_or(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// A subscription to every event of `lattice`, ready before it returns.
async fn lattice_events(lattice: &TestLattice) -> async_nats::Subscriber {
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let events = nats
        .subscribe(Lattice::new(lattice.name.clone()).unwrap().all_events())
        .await
        .unwrap();
    nats.flush().await.unwrap();
    events
}

/// Sends `signal` (`kill`'s syntax, e.g. `-9`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads `events` until a provider's `provider_started` event with start
/// `restarted`, failing after `within`; returns the `error` of each
/// `provider_failed` event seen on the way.
async fn wait_for_restart(events: &mut async_nats::Subscriber, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut failures = Vec::new();
    loop {
        let message = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("no restart event")
            .unwrap();
        let event: CloudEvent =
            CloudEvent::decode(&message.payload, &DecodeLimits::default()).unwrap();
        match event.event_type() {
            Some(EventType::ProviderFailed) => {
                failures.push(event.data["error"].as_str().unwrap_or_default().to_owned());
            }
            Some(EventType::ProviderStarted) if event.data["start"] == "restarted" => {
                return failures;
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_provider_is_restarted_within_two_seconds_with_events() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let mut events = lattice_events(&lattice).await;
    let provider = start_provider(&host).await;
    let actor = start_kvcounter(&lattice, &host, &provider.id).await;
    assert_eq!(count(&lattice, &actor.public_key(), "n").await, 1);

    let pid = host.provider_pid(&provider.id, "default").await.unwrap();
    let killed = Instant::now();
    signal(pid, "-9");

    let failures = wait_for_restart(&mut events, Duration::from_secs(10)).await;
    let took = killed.elapsed();
    assert!(!failures.is_empty(), "no provider_failed event");
    assert!(took < Duration::from_secs(2), "restarted after {took:?}");
    let new_pid = host.provider_pid(&provider.id, "default").await.unwrap();
    assert_ne!(new_pid, pid);
    assert!(!alive(pid), "the killed process was not reaped");
    // The restarted provider serves again (its bucket kept the count).
    assert_eq!(count(&lattice, &actor.public_key(), "n").await, 2);

    host.stop(None).await;
    assert!(
        !alive(new_pid),
        "stopping the host left the provider running"
    );
}

fn archive(
    lattice: &TestLattice,
    provider: &trellis_claims::keys::KeyPair,
    issuer: &trellis_claims::keys::KeyPair,
) -> Vec<u8> {
    let request = provider_request();
    let _ = lattice;
    let binaries = BTreeMap::from([(current_target(), std::fs::read(BINARY).unwrap())]);
    ProviderArchive::create(&request, binaries, issuer, provider)
        .unwrap()
        .0
        .to_bytes()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_archive_starts_and_an_untrusted_one_is_refused() {
    let lattice = TestLattice::new();
    let config = HostConfig {
        dev_mode: false,
        provider_cache_dir: tempfile::tempdir().unwrap().keep(),
        ..lattice.config()
    };
    let host = Host::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let provider_key = generate(KeyKind::Provider);

    let stranger = archive(&lattice, &provider_key, &generate(KeyKind::Account));
    let path = dir.path().join("stranger.par.gz");
    std::fs::write(&path, stranger).unwrap();
    let err = host
        .start_provider(
            path.to_str().unwrap(),
            "default",
            BTreeMap::new(),
            BTreeMap::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.claims_kind(),
        Some(trellis_claims::ErrorKind::UntrustedIssuer)
    );

    let err = host
        .start_provider(
            BINARY,
            "default",
            BTreeMap::from([("contract_id".into(), "wasi:keyvalue".into())]),
            BTreeMap::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::BadRequest,
        "plain binaries need development mode"
    );

    let signed = archive(&lattice, &provider_key, &lattice.issuer);
    let path = dir.path().join("kv.par.gz");
    std::fs::write(&path, signed).unwrap();
    let description = host
        .start_provider(
            path.to_str().unwrap(),
            "default",
            BTreeMap::new(),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(description.id, provider_key.public_key());
    let actor = start_kvcounter(&lattice, &host, &description.id).await;
    assert_eq!(count(&lattice, &actor.public_key(), "signed").await, 1);
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_published_as_events() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let subject = Lattice::new(lattice.name.clone())
        .unwrap()
        .event(EventType::HealthCheckPassed);
    let mut passed = nats.subscribe(subject).await.unwrap();
    nats.flush().await.unwrap();
    let provider = start_provider(&host).await;
    let message = tokio::time::timeout(Duration::from_secs(10), passed.next())
        .await
        .expect("no health event")
        .unwrap();
    let event: CloudEvent = CloudEvent::decode(&message.payload, &DecodeLimits::default()).unwrap();
    assert_eq!(event.data["provider_id"], provider.id.as_str());
    host.stop_provider(&provider.id, "default").await.unwrap();
    assert!(host.inventory().await.providers.is_empty());
    host.stop(None).await;
}

/// Link changes and shutdown requests that did not come, signed, from the
/// provider's own host are ignored: an anonymous client, and another host
/// of the lattice with a valid credential, both fail to unlink, relink or
/// stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_link_changes_and_shutdowns_are_ignored_by_the_provider() {
    use trellis_protocol::provider::{LINK_DEL_OPERATION, LINK_PUT_OPERATION, SHUTDOWN_OPERATION};
    use trellis_protocol::subject::TOKEN_HEADER;
    use trellis_protocol::{ContractId, LinkDefinition};

    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let provider = start_provider(&host).await;
    let actor = start_kvcounter(&lattice, &host, &provider.id).await;
    assert_eq!(count(&lattice, &actor.public_key(), "forged").await, 1);
    let pid = host.provider_pid(&provider.id, "default").await.unwrap();

    let subjects = Lattice::new(lattice.name.clone())
        .unwrap()
        .provider(&provider.id, "default", host.id())
        .unwrap();
    let real = LinkDefinition::new(
        actor.public_key(),
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        provider.id.clone(),
    )
    .with_config("bucket", "kvtest");
    let moved = real.clone().with_config("bucket", "forged");
    let (real, moved) = (real.encode().unwrap(), moved.encode().unwrap());

    // Another member of the lattice: a valid host credential, but not the
    // host that started the provider.
    let other_host = lattice.client().await;
    let signed_by_other = |operation: &str, body: &[u8]| {
        let token = other_host
            .signer
            .sign_message(&provider.id, operation, body)
            .unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(TOKEN_HEADER, token.as_str());
        headers
    };
    let nats = &other_host.nats;
    for headers in [
        async_nats::HeaderMap::new(),
        signed_by_other(LINK_DEL_OPERATION, &real),
    ] {
        nats.publish_with_headers(subjects.link_del.clone(), headers, real.clone().into())
            .await
            .unwrap();
    }
    for headers in [
        async_nats::HeaderMap::new(),
        signed_by_other(LINK_PUT_OPERATION, &moved),
    ] {
        nats.publish_with_headers(subjects.link_put.clone(), headers, moved.clone().into())
            .await
            .unwrap();
    }
    for headers in [
        async_nats::HeaderMap::new(),
        signed_by_other(SHUTDOWN_OPERATION, b"{}"),
    ] {
        let asked = nats
            .send_request(
                subjects.shutdown.clone(),
                async_nats::Request::new()
                    .headers(headers)
                    .payload("{}".into())
                    .timeout(Some(Duration::from_millis(500))),
            )
            .await;
        assert!(
            asked.is_err(),
            "the provider acknowledged a forged shutdown"
        );
    }
    nats.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Still linked, to the same bucket, in the same process.
    assert_eq!(count(&lattice, &actor.public_key(), "forged").await, 2);
    assert_eq!(host.provider_pid(&provider.id, "default").await, Some(pid));
    assert!(alive(pid));
    host.stop(None).await;
}

/// A provider frozen with SIGSTOP answers nothing: callers get errors
/// within the provider call timeout instead of hanging, and the host,
/// seeing its health checks unanswered for `provider_hung_after`, kills
/// and restarts it with a `provider_failed` event saying it hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_is_restarted_and_callers_get_errors_not_hangs() {
    let lattice = TestLattice::new();
    let hung_after = Duration::from_secs(2);
    let host = Host::start(HostConfig {
        provider_health_interval: Duration::from_millis(200),
        provider_hung_after: hung_after,
        provider_call_timeout: Duration::from_secs(1),
        ..lattice.config()
    })
    .await
    .unwrap();
    let mut events = lattice_events(&lattice).await;
    let provider = start_provider(&host).await;
    let actor = start_kvcounter(&lattice, &host, &provider.id).await;
    assert_eq!(count(&lattice, &actor.public_key(), "n").await, 1);

    let pid = host.provider_pid(&provider.id, "default").await.unwrap();
    let frozen = Instant::now();
    signal(pid, "-STOP");

    // A call through the frozen provider fails; it does not hang.
    let client = lattice.client().await;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(&actor.public_key(), "/counter/n"),
    )
    .await
    .expect("the call hung");
    assert_ne!(answer.map(|r| r.status).unwrap_or(500), 200);

    let failures = wait_for_restart(&mut events, hung_after * 5).await;
    assert!(
        failures.iter().any(|e| e.starts_with("hung")),
        "no provider_failed event saying it hung: {failures:?}"
    );
    assert!(frozen.elapsed() >= hung_after);
    assert!(!alive(pid), "the frozen process was left behind");
    // The new process serves the same links.
    assert_eq!(count(&lattice, &actor.public_key(), "n").await, 2);
    host.stop(None).await;
}

/// A provider archive with binaries for two targets, pushed to the
/// lattice's artifact store, starts by reference on a host that has no
/// file of it, and serves; the host unpacks only its own target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_from_the_artifact_store_starts_by_reference() {
    use trellis_lattice_client::artifacts;
    let lattice = TestLattice::new();
    let provider_key = generate(KeyKind::Provider);
    let archive = two_target_archive(&lattice, &provider_key);
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let timeout = Duration::from_secs(10);
    let store = artifacts::open(&nats, &lattice.name, true, timeout)
        .await
        .unwrap();
    artifacts::put(
        &store,
        "keyvalue-nats:0.1.0",
        &mut archive.as_slice(),
        timeout,
    )
    .await
    .unwrap();

    let host = Host::start(HostConfig {
        dev_mode: false,
        artifact_dirs: Vec::new(),
        provider_cache_dir: tempfile::tempdir().unwrap().keep(),
        ..lattice.config()
    })
    .await
    .unwrap();
    let provider = host
        .start_provider(
            "keyvalue-nats:0.1.0",
            "default",
            BTreeMap::new(),
            BTreeMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(provider.id, provider_key.public_key());
    assert_eq!(host.artifact_pulls(), 1);
    let actor = start_kvcounter(&lattice, &host, &provider.id).await;
    assert_eq!(count(&lattice, &actor.public_key(), "pulled").await, 1);
    host.stop(None).await;
}

/// A signed archive of this provider with binaries for this host's target
/// and another architecture's.
fn two_target_archive(
    lattice: &TestLattice,
    provider_key: &trellis_claims::keys::KeyPair,
) -> Vec<u8> {
    let request = provider_request();
    let other = if current_target().starts_with("aarch64") {
        "x86_64-linux"
    } else {
        "aarch64-linux"
    };
    let binaries = BTreeMap::from([
        (current_target(), std::fs::read(BINARY).unwrap()),
        (other.to_owned(), b"not this host's binary".to_vec()),
    ]);
    ProviderArchive::create(&request, binaries, &lattice.issuer, provider_key)
        .unwrap()
        .0
        .to_bytes()
        .unwrap()
}

/// The same two-target archive pushed to a real OCI registry with the
/// provider archive media type starts by reference, by tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_from_an_oci_registry_starts_by_reference() {
    use trellis_lattice_client::oci::{ArtifactKind, Registry, RegistrySettings};
    let lattice = TestLattice::new();
    let server = trellis_test_support::registry::Registry::start();
    let settings = RegistrySettings {
        insecure: vec![server.address()],
        ..RegistrySettings::default()
    };
    let provider_key = generate(KeyKind::Provider);
    let reference = format!("{}/providers/keyvalue-nats:0.1.0", server.address());
    let trellis_protocol::artifact::ArtifactRef::Oci(oci) = reference.parse().unwrap() else {
        panic!("not an OCI reference");
    };
    Registry::new(settings.clone())
        .push(
            &oci,
            two_target_archive(&lattice, &provider_key),
            ArtifactKind::ProviderArchive,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let host = Host::start(HostConfig {
        dev_mode: false,
        artifact_dirs: Vec::new(),
        provider_cache_dir: tempfile::tempdir().unwrap().keep(),
        registries: settings,
        ..lattice.config()
    })
    .await
    .unwrap();
    let provider = host
        .start_provider(&reference, "default", BTreeMap::new(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(provider.id, provider_key.public_key());
    let actor = start_kvcounter(&lattice, &host, &provider.id).await;
    assert_eq!(count(&lattice, &actor.public_key(), "oci").await, 1);
    host.stop(None).await;
}

/// The claims of this provider's archives.
fn provider_request() -> ProviderClaimsRequest {
    ProviderClaimsRequest {
        name: "keyvalue-nats".into(),
        contract_id: "wasi:keyvalue".into(),
        vendor: "Trellis".into(),
        ..Default::default()
    }
}
