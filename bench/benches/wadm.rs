//! wadm: how fast it converges and reschedules, with default settings
//! (hosts heartbeat every 2 s; a host is lost after 3 missed heartbeats).
//!
//! - **Host loss.** Three hosts, each in a child process of this bench
//!   (`zone=east`, `zone=east`, `zone=west`), run an application of 3
//!   instances spread 2:1 east/west. One east host is killed with SIGKILL;
//!   the figure is the time until the application reports `deployed` again
//!   with its instances on the survivors.
//! - **Scale.** 100 in-process hosts and 100 applications (one `hello`
//!   instance each) deployed at once; the figure is the time from the first
//!   deploy until every application reports `deployed`.
//!
//! `cargo bench -p trellis-bench --bench wadm` prints both.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trellis_claims::invocation::CtlScope;
use trellis_claims::keys::{KeyKind, generate};
use trellis_host::{Host, HostConfig};
use trellis_lattice_client::CtlClient;
use trellis_protocol::wadm::{AppStatus, ModelOperation, ModelRequest, StatusKind};
use trellis_test_support::host::TestLattice;
use trellis_wadm::{Wadm, WadmConfig};

/// Set in a child process: run one host with this JSON configuration.
const CHILD_ENV: &str = "TRELLIS_BENCH_WADM_HOST";

#[derive(serde::Serialize, serde::Deserialize)]
struct ChildHost {
    nats_url: String,
    lattice: String,
    cluster_seed: String,
    issuer: String,
    operator: String,
    zone: String,
    dir: String,
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child_host(serde_json::from_str(&spec).unwrap());
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        host_loss().await;
        scale().await;
    });
}

fn run_child_host(spec: ChildHost) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let host = Host::start(HostConfig {
            lattice: spec.lattice,
            nats: trellis_host::NatsConfig {
                urls: vec![spec.nats_url],
                ..Default::default()
            },
            cluster_seed: Some(spec.cluster_seed),
            trusted_issuers: vec![spec.issuer],
            ctl_issuers: vec![spec.operator],
            artifact_dirs: vec![spec.dir.into()],
            labels: [("zone".to_owned(), spec.zone)].into(),
            compiled_cache: false,
            ..HostConfig::default()
        })
        .await
        .unwrap();
        println!("{}", host.id());
        std::future::pending::<()>().await;
    });
}

fn signed_hello(lattice: &TestLattice, dir: &std::path::Path, name: &str) -> String {
    let wasm = std::fs::read(trellis_test_support::example_component("hello")).unwrap();
    let signed = lattice.sign(&wasm, &generate(KeyKind::Actor), &["wasi:http"]);
    let path = dir.join(name);
    std::fs::write(&path, signed).unwrap();
    path.to_str().unwrap().to_owned()
}

fn manifest(name: &str, image: &str, scaler: &str) -> String {
    format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: {{ name: {name}, annotations: {{ version: v1 }} }}\nspec:\n  components:\n    - name: hello\n      type: component\n      properties: {{ image: \"{image}\" }}\n      traits: [ {scaler} ]\n"
    )
}

async fn deploy(client: &CtlClient, text: &str) -> String {
    let reply: trellis_protocol::wadm::PutModelReply = client
        .wadm(ModelOperation::Put, text.as_bytes().to_vec())
        .await
        .unwrap()
        .unwrap();
    let request = ModelRequest {
        name: reply.name.clone(),
        version: None,
    };
    client
        .wadm::<serde_json::Value>(
            ModelOperation::Deploy,
            serde_json::to_vec(&request).unwrap(),
        )
        .await
        .unwrap();
    reply.name
}

async fn status(client: &CtlClient, name: &str) -> AppStatus {
    let request = ModelRequest {
        name: name.into(),
        version: None,
    };
    client
        .wadm(
            ModelOperation::Status,
            serde_json::to_vec(&request).unwrap(),
        )
        .await
        .unwrap()
        .unwrap()
}

fn wadm_config(lattice: &TestLattice) -> WadmConfig {
    WadmConfig {
        lattice: lattice.name.clone(),
        ctl_issuers: vec![lattice.operator.public_key()],
        cluster_issuers: vec![lattice.cluster.public_key()],
        ..WadmConfig::default()
    }
}

async fn host_loss() {
    let lattice = TestLattice::new();
    let dir = tempfile::tempdir().unwrap();
    let image = signed_hello(&lattice, dir.path(), "hello.wasm");
    let mut children = Vec::new();
    let mut ids = Vec::new();
    for zone in ["east", "east", "west"] {
        let spec = ChildHost {
            nats_url: lattice.nats.url(),
            lattice: lattice.name.clone(),
            cluster_seed: lattice.cluster.seed().unwrap(),
            issuer: lattice.issuer.public_key(),
            operator: lattice.operator.public_key(),
            zone: zone.into(),
            dir: dir.path().to_str().unwrap().into(),
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, serde_json::to_string(&spec).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        ids.push(line.trim().to_owned());
        children.push(child);
    }
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let wadm = Wadm::start(
        nats,
        lattice.ctl_signer(CtlScope::Full),
        wadm_config(&lattice),
    )
    .await
    .unwrap();
    let client = lattice
        .ctl_client(CtlScope::Full)
        .await
        .with_timeout(Duration::from_secs(20));
    let scaler = "{type: spreadscaler, properties: {instances: 3, spread: [{name: east, requirements: {zone: east}, weight: 2}, {name: west, requirements: {zone: west}, weight: 1}]}}";
    let name = deploy(&client, &manifest("survivor", &image, scaler)).await;
    while status(&client, &name).await.kind != StatusKind::Deployed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = ids[0].clone();
    let survivor = ids[1].clone();
    children[0].kill().unwrap();
    children[0].wait().unwrap();
    let killed = Instant::now();
    loop {
        let deployed = status(&client, &name).await.kind == StatusKind::Deployed;
        let on_survivor: u32 = client
            .inventory(&survivor)
            .await
            .map(|i| i.actors.iter().map(|a| a.max_instances).sum())
            .unwrap_or(0);
        if deployed && on_survivor == 2 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "never recovered from losing {victim}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "wadm host loss: deployed again {:.1?} after SIGKILL of a host (heartbeat 2 s, 3 missed)",
        killed.elapsed()
    );
    wadm.stop().await;
    for mut child in children.into_iter().skip(1) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

async fn scale() {
    const HOSTS: usize = 100;
    const APPS: usize = 100;
    let lattice = TestLattice::new();
    let dir = tempfile::tempdir().unwrap();
    let mut hosts = Vec::new();
    let started = Instant::now();
    for _ in 0..HOSTS {
        let mut config = lattice.config();
        config.heartbeat_interval = Duration::from_secs(2);
        // Small pools: 100 hosts share one address space here.
        config.limits.max_total_instances = 10;
        config.limits.reserved_instances = 1;
        hosts.push(Host::start(config).await.unwrap());
    }
    println!(
        "wadm scale: {HOSTS} in-process hosts started in {:.1?}",
        started.elapsed()
    );
    let images: Vec<String> = (0..APPS)
        .map(|i| signed_hello(&lattice, dir.path(), &format!("hello-{i}.wasm")))
        .collect();
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let wadm = Wadm::start(
        nats,
        lattice.ctl_signer(CtlScope::Full),
        wadm_config(&lattice),
    )
    .await
    .unwrap();
    let client = lattice
        .ctl_client(CtlScope::Full)
        .await
        .with_timeout(Duration::from_secs(30));
    let deploying = Instant::now();
    let mut names = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let scaler = "{type: spreadscaler, properties: {instances: 1}}";
        names.push(deploy(&client, &manifest(&format!("app-{i:03}"), image, scaler)).await);
    }
    let stored = deploying.elapsed();
    loop {
        let list: Vec<trellis_protocol::wadm::ModelSummary> = client
            .wadm(ModelOperation::List, b"{}".to_vec())
            .await
            .unwrap()
            .unwrap();
        let done = list
            .iter()
            .filter(|a| a.status.kind == StatusKind::Deployed)
            .count();
        if done == APPS {
            break;
        }
        assert!(
            deploying.elapsed() < Duration::from_secs(600),
            "{done}/{APPS} deployed after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "wadm scale: {APPS} apps on {HOSTS} hosts deployed {:.1?} after the first deploy (storing and deploying took {stored:.1?})",
        deploying.elapsed()
    );
    wadm.stop().await;
    for host in hosts {
        host.stop(None).await;
    }
}
