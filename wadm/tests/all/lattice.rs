//! wadm against a real nats-server and real hosts (in this process, each
//! with its own NATS connections), labelled `zone=east`, `zone=east`,
//! `zone=west` where placement matters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use trellis_lattice_client::CtlErrorKind;
use trellis_protocol::ctl::CtlFailure;
use trellis_protocol::wadm::{ModelOperation, ModelSummary, StatusKind};

use crate::{Fixture, hello_manifest};

/// Longest a test waits for wadm to converge; convergence is normally a
/// matter of a second or two.
const CONVERGE: Duration = Duration::from_secs(30);

const EAST_WEST: &[&[(&str, &str)]] = &[
    &[("zone", "east")],
    &[("zone", "east")],
    &[("zone", "west")],
];

async fn deployed(f: &Fixture, app: &str) {
    let status = f.wait_for(app, StatusKind::Deployed, CONVERGE).await;
    assert_eq!(status.kind, StatusKind::Deployed, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_weights_place_exactly_and_balance_within_a_spread() {
    let f = Fixture::new(EAST_WEST).await;
    let _wadm = f.wadm().await;
    let (_, image) = f.signed_hello("hello.wasm");
    let weighted = "{type: spreadscaler, properties: {instances: 3, spread: [{name: east, requirements: {zone: east}, weight: 2}, {name: west, requirements: {zone: west}, weight: 1}]}}";
    f.deploy(&hello_manifest("weighted", "v1", &image, weighted))
        .await;
    deployed(&f, "weighted").await;
    // 2 east, balanced over both east hosts; 1 west.
    assert_eq!(f.actor_counts("weighted").await, vec![1, 1, 1]);
    let status = f.status("weighted").await;
    assert_eq!(status.components[0].desired, 3);
    assert_eq!(status.components[0].running, 3);

    // Twice as many: still 2:1, still balanced.
    let doubled = weighted.replace("instances: 3", "instances: 6");
    f.deploy(&hello_manifest("weighted", "v2", &image, &doubled))
        .await;
    let status = f.wait_for("weighted", StatusKind::Deployed, CONVERGE).await;
    assert_eq!(status.version.as_deref(), Some("v2"));
    assert_eq!(f.actor_counts("weighted").await, vec![2, 2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonscaler_runs_on_every_matching_host() {
    let f = Fixture::new(EAST_WEST).await;
    let _wadm = f.wadm().await;
    let (_, image) = f.signed_hello("hello.wasm");
    let daemon = "{type: daemonscaler, properties: {instances: 2, spread: [{name: east, requirements: {zone: east}}]}}";
    f.deploy(&hello_manifest("daemon", "v1", &image, daemon))
        .await;
    deployed(&f, "daemon").await;
    assert_eq!(f.actor_counts("daemon").await, vec![2, 2, 0]);

    // A new matching host gets its instances too.
    let mut labels = f.lattice.config().labels;
    labels.insert("zone".into(), "east".into());
    let mut config = f.lattice.config();
    config.labels = labels;
    let fourth = trellis_host::Host::start(config).await.unwrap();
    let mut placed = false;
    for _ in 0..300 {
        let inventory = fourth.inventory().await;
        if inventory.actors.iter().any(|a| a.max_instances == 2) {
            placed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(placed, "the new east host never got the daemon's instances");
    fourth.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_behind_wadms_back_is_restored() {
    let f = Fixture::new(&[&[]]).await;
    let _wadm = f.wadm().await;
    let (actor, image) = f.signed_hello("hello.wasm");
    f.deploy(&hello_manifest(
        "drift",
        "v1",
        &image,
        "{type: spreadscaler, properties: {instances: 2}}",
    ))
    .await;
    deployed(&f, "drift").await;
    f.hosts[0].stop_actor(&actor.public_key()).await.unwrap();
    assert_eq!(f.actor_counts("drift").await, vec![0]);
    // The resync period is 2 s in these tests.
    let mut restored = false;
    for _ in 0..100 {
        if f.actor_counts("drift").await == vec![2] {
            restored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(restored, "the stopped actor was not restored");
    deployed(&f, "drift").await;
}

/// A provider binary (`keyvalue-nats`, `http-server`), built beside this
/// test binary (`cargo test --workspace` builds every member's binaries).
fn provider_binary(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the providers first (cargo build --workspace --bins)",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

fn app_with_provider(name: &str, image: &str, provider: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{ name: {name}, annotations: {{ version: v1 }} }}
spec:
  components:
    - name: hello
      type: component
      properties: {{ image: "{image}" }}
      traits: [ {{ type: spreadscaler, properties: {{ instances: 1 }} }} ]
    - name: kv
      type: capability
      properties:
        image: "{provider}"
        config: [ {{ name: dev, properties: {{ contract_id: "wasi:keyvalue" }} }} ]
      traits: [ {{ type: spreadscaler, properties: {{ instances: 1 }} }} ]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeploy_removes_only_what_wadm_started_and_keeps_shared_providers() {
    let f = Fixture::new(&[&[]]).await;
    let _wadm = f.wadm().await;
    let host = &f.hosts[0];
    let provider = provider_binary("keyvalue-nats");
    let (_, first) = f.signed_hello("first.wasm");
    let (_, second) = f.signed_hello("second.wasm");
    let (by_hand, by_hand_image) = f.signed_hello("by-hand.wasm");
    host.start_actor(&by_hand_image, 1, Default::default())
        .await
        .unwrap();

    f.deploy(&app_with_provider("one", &first, &provider)).await;
    f.deploy(&app_with_provider("two", &second, &provider))
        .await;
    deployed(&f, "one").await;
    deployed(&f, "two").await;
    let inventory = host.inventory().await;
    assert_eq!(inventory.actors.len(), 3);
    assert_eq!(
        inventory.providers.len(),
        1,
        "the shared provider runs once"
    );

    f.undeploy("one").await;
    let status = f.wait_for("one", StatusKind::Undeployed, CONVERGE).await;
    assert_eq!(status.kind, StatusKind::Undeployed);
    let mut settled = false;
    for _ in 0..100 {
        let inventory = host.inventory().await;
        if inventory.actors.len() == 2 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "the undeployed app's actor still runs");
    // Give wadm time to do anything wrong.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let inventory = host.inventory().await;
    assert!(
        inventory
            .actors
            .iter()
            .any(|a| a.id == by_hand.public_key())
    );
    assert_eq!(
        inventory.providers.len(),
        1,
        "app two still uses the provider"
    );
    deployed(&f, "two").await;

    f.undeploy("two").await;
    let mut emptied = false;
    for _ in 0..100 {
        let inventory = host.inventory().await;
        if inventory.providers.is_empty() && inventory.actors.len() == 1 {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emptied, "{:?}", host.inventory().await);
    let inventory = host.inventory().await;
    assert_eq!(
        inventory.actors[0].id,
        by_hand.public_key(),
        "the actor started by hand survives"
    );
}

/// Counts `actor_started` and `actor_scaled` events of the lattice.
async fn count_starts(f: &Fixture) -> Arc<AtomicU64> {
    let nats = async_nats::connect(f.lattice.nats.url()).await.unwrap();
    let lattice = trellis_protocol::Lattice::new(f.lattice.name.clone()).unwrap();
    let mut started = nats
        .subscribe(lattice.event(trellis_protocol::EventType::ActorStarted))
        .await
        .unwrap();
    let mut scaled = nats
        .subscribe(lattice.event(trellis_protocol::EventType::ActorScaled))
        .await
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let _nats = nats;
        loop {
            tokio::select! {
                Some(_) = started.next() => counter.fetch_add(1, Ordering::SeqCst),
                Some(_) = scaled.next() => counter.fetch_add(1, Ordering::SeqCst),
                else => break,
            };
        }
    });
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_wadm_and_a_second_wadm_change_nothing_deployed() {
    let f = Fixture::new(EAST_WEST).await;
    let first = f.wadm().await;
    // The first one takes the lease before the second starts.
    for _ in 0..100 {
        if first.passes() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(first.passes() > 0, "the first wadm never reconciled");
    let second = f.wadm().await;
    let (_, image) = f.signed_hello("hello.wasm");
    f.deploy(&hello_manifest(
        "steady",
        "v1",
        &image,
        "{type: spreadscaler, properties: {instances: 3}}",
    ))
    .await;
    deployed(&f, "steady").await;
    let placed = f.actor_counts("steady").await;
    assert_eq!(placed.iter().sum::<u32>(), 3);
    assert_eq!(second.passes(), 0, "two wadms reconciled at once");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let starts = count_starts(&f).await;
    // Killed: its tasks end without releasing the lease.
    drop(first);
    let third = f.wadm().await;
    // Past the lease's time to live, a resync and some passes.
    let config = f.wadm_config();
    let mut took_over = false;
    for _ in 0..200 {
        if second.passes() > 0 || third.passes() > 0 {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(took_over, "nobody took over the lease");
    tokio::time::sleep(config.resync_interval * 2).await;
    assert!(
        second.passes() == 0 || third.passes() == 0,
        "two wadms reconcile at once"
    );
    assert_eq!(f.actor_counts("steady").await, placed, "placement changed");
    assert_eq!(
        starts.load(Ordering::SeqCst),
        0,
        "something was started again"
    );
    let status = f.status("steady").await;
    assert_eq!(status.kind, StatusKind::Deployed, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_reconcile_converges_to_exactly_the_declared_state() {
    let mut f = Fixture::new(EAST_WEST).await;
    let _wadm = f.wadm().await;
    let (_, image) = f.signed_hello("hello.wasm");
    f.deploy(&hello_manifest(
        "restart",
        "v1",
        &image,
        "{type: spreadscaler, properties: {instances: 5}}",
    ))
    .await;
    // Mid-reconcile: the deploy has just been stored.
    f.lattice.nats.restart();
    let status = f
        .wait_for("restart", StatusKind::Deployed, CONVERGE * 2)
        .await;
    assert_eq!(status.kind, StatusKind::Deployed, "{status:?}");
    // Exactly 5, dealt 2/2/1, with one actor entry per host.
    let mut counts = f.actor_counts("restart").await;
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 2]);
    for host in &f.hosts {
        let inventory = host.inventory().await;
        assert!(inventory.actors.len() <= 1, "duplicates: {inventory:?}");
    }
}

/// hello behind the http-server provider (both managed by wadm), with
/// hello at `image`.
fn served_hello(version: &str, image: &str, server: &str, address: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{ name: upgrade, annotations: {{ version: {version} }} }}
spec:
  components:
    - name: hello
      type: component
      properties: {{ image: "{image}" }}
      traits: [ {{ type: spreadscaler, properties: {{ instances: 2 }} }} ]
    - name: httpserver
      type: capability
      properties:
        image: "{server}"
        config: [ {{ name: dev, properties: {{ contract_id: "wasi:http" }} }} ]
      traits:
        - type: link
          properties:
            target: hello
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            source:
              config: [ {{ name: listen, properties: {{ address: "{address}" }} }} ]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_serves_every_http_request() {
    use trellis_test_support::http::{Bytes, free_address, get_until, request, send};

    let f = Fixture::new(&[&[], &[]]).await;
    let _wadm = f.wadm().await;
    let actor = trellis_claims::keys::generate(trellis_claims::keys::KeyKind::Actor);
    let v1 = f.signed_hello_as(&actor, "hello-v1.wasm", 1);
    let v2 = f.signed_hello_as(&actor, "hello-v2.wasm", 2);
    let server = provider_binary("http-server");
    let address = free_address();
    let at = address.to_string();
    f.deploy(&served_hello("v1", &v1, &server, &at)).await;
    deployed(&f, "upgrade").await;
    get_until(address, &at, "/?name=upgrade", |a| a.status == 200).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stream = {
        let (stop, ok, failed, at) = (stop.clone(), ok.clone(), failed.clone(), at.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let answer =
                    send(address, request("GET", &at, "/?name=upgrade", Bytes::new())).await;
                match answer {
                    Ok(a) if a.status == 200 && a.text() == "Hello, upgrade!" => {
                        ok.fetch_add(1, Ordering::SeqCst)
                    }
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.deploy(&served_hello("v2", &v2, &server, &at)).await;
    let mut upgraded = false;
    for _ in 0..300 {
        let status = f.status("upgrade").await;
        let images: Vec<String> = futures::future::join_all(f.hosts.iter().map(|h| h.inventory()))
            .await
            .into_iter()
            .flat_map(|i| i.actors)
            .map(|a| a.image_ref)
            .collect();
        if status.kind == StatusKind::Deployed
            && status.version.as_deref() == Some("v2")
            && images.len() == 2
            && images.iter().all(|i| *i == v2)
        {
            upgraded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    stream.await.unwrap();
    assert!(upgraded, "the upgrade did not complete");
    assert!(ok.load(Ordering::SeqCst) > 10, "too few requests were made");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "HTTP requests failed during the upgrade"
    );
}

/// A command that keeps failing backs off, and the status says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_start_reports_failed_with_the_reason() {
    let f = Fixture::new(&[&[]]).await;
    let _wadm = f.wadm().await;
    let missing = f.dir.path().join("missing.wasm");
    f.deploy(&hello_manifest(
        "broken",
        "v1",
        missing.to_str().unwrap(),
        "{type: spreadscaler, properties: {instances: 1}}",
    ))
    .await;
    let status = f.wait_for("broken", StatusKind::Failed, CONVERGE).await;
    assert_eq!(status.kind, StatusKind::Failed, "{status:?}");
    assert!(status.message.contains("start hello"), "{status:?}");
    // Writing the file lets the next attempt succeed.
    let (_, image) = f.signed_hello("hello.wasm");
    std::fs::copy(image, &missing).unwrap();
    deployed(&f, "broken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_manifest_is_refused_and_nothing_is_stored() {
    let f = Fixture::new(&[&[]]).await;
    let _wadm = f.wadm().await;
    let bad =
        std::fs::read_to_string(crate::manifests_dir().join("bad/unknown-trait.yaml")).unwrap();
    let err = f
        .client
        .wadm::<serde_json::Value>(ModelOperation::Put, bad.into_bytes())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CtlErrorKind::Refused);
    assert_eq!(err.failure(), Some(CtlFailure::BadRequest));
    let apps: Vec<ModelSummary> = f
        .client
        .wadm(ModelOperation::List, b"{}".to_vec())
        .await
        .unwrap()
        .unwrap();
    assert!(apps.is_empty());
    assert!(f.hosts[0].inventory().await.actors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_read_only_model_writes_are_refused() {
    let f = Fixture::new(&[&[]]).await;
    let _wadm = f.wadm().await;
    let (_, image) = f.signed_hello("hello.wasm");
    let manifest = hello_manifest(
        "guarded",
        "v1",
        &image,
        "{type: spreadscaler, properties: {instances: 1}}",
    );
    let anonymous = f.lattice.anonymous_ctl_client().await;
    let err = anonymous
        .wadm::<serde_json::Value>(ModelOperation::Put, manifest.clone().into_bytes())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CtlErrorKind::Denied);
    let reader = f
        .lattice
        .ctl_client(trellis_claims::invocation::CtlScope::Read)
        .await;
    let err = reader
        .wadm::<serde_json::Value>(ModelOperation::Put, manifest.into_bytes())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CtlErrorKind::Denied);
    let apps: Vec<ModelSummary> = reader
        .wadm(ModelOperation::List, b"{}".to_vec())
        .await
        .unwrap()
        .unwrap();
    assert!(apps.is_empty());
}

/// wadm needs no more NATS permissions than `docs/security.md` gives the
/// operator role: with the documented nats-server configuration, a host on
/// its own users and wadm and the CLI on the operator's, an application
/// deploys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wadm_works_with_the_documented_operator_permissions() {
    use trellis_claims::invocation::CtlScope;
    use trellis_test_support::{NatsServer, documented_nats_config, nats_user};

    let mut lattice = trellis_test_support::host::TestLattice::new();
    lattice.nats = NatsServer::start_with_config(&documented_nats_config());
    lattice.name = "default".into();
    let config = trellis_host::HostConfig {
        nats: trellis_host::NatsConfig {
            urls: vec![lattice.nats.url()],
            auth: nats_user("host", "host-secret"),
            ..lattice.config().nats
        },
        ctl_nats_auth: Some(nats_user("host-ctl", "host-ctl-secret")),
        provider_nats_auth: Some(nats_user("provider", "provider-secret")),
        ..lattice.config()
    };
    let host = trellis_host::Host::start(config).await.unwrap();
    let operator = || async {
        async_nats::ConnectOptions::new()
            .user_and_password("operator".into(), "operator-secret".into())
            .connect(lattice.nats.url())
            .await
            .unwrap()
    };
    let wadm = trellis_wadm::Wadm::start(
        operator().await,
        lattice.ctl_signer(CtlScope::Full),
        trellis_wadm::WadmConfig {
            lattice: "default".into(),
            ctl_issuers: vec![lattice.operator.public_key()],
            cluster_issuers: vec![lattice.cluster.public_key()],
            ..trellis_wadm::WadmConfig::default()
        },
    )
    .await
    .unwrap();
    let client = trellis_lattice_client::CtlClient::new(
        operator().await,
        trellis_protocol::Lattice::new("default").unwrap(),
    )
    .with_signer(lattice.ctl_signer(CtlScope::Full));

    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(trellis_test_support::example_component("hello")).unwrap();
    let actor = trellis_claims::keys::generate(trellis_claims::keys::KeyKind::Actor);
    let image = dir.path().join("hello.wasm");
    std::fs::write(&image, lattice.sign(&wasm, &actor, &["wasi:http"])).unwrap();
    let manifest = hello_manifest(
        "permitted",
        "v1",
        image.to_str().unwrap(),
        "{type: spreadscaler, properties: {instances: 1}}",
    );
    client
        .wadm::<serde_json::Value>(ModelOperation::Put, manifest.into_bytes())
        .await
        .unwrap();
    let request = trellis_protocol::wadm::ModelRequest {
        name: "permitted".into(),
        version: None,
    };
    let body = serde_json::to_vec(&request).unwrap();
    client
        .wadm::<serde_json::Value>(ModelOperation::Deploy, body.clone())
        .await
        .unwrap();
    let mut kind = StatusKind::Undeployed;
    for _ in 0..300 {
        let status: trellis_protocol::wadm::AppStatus = client
            .wadm(ModelOperation::Status, body.clone())
            .await
            .unwrap()
            .unwrap();
        kind = status.kind;
        if kind == StatusKind::Deployed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kind, StatusKind::Deployed);
    assert_eq!(host.inventory().await.actors.len(), 1);
    wadm.stop().await;
}
