//! wadm end to end with real processes: three `trellis host` processes
//! labelled `zone=east`, `zone=east` and `zone=west`, a `trellis wadm`
//! process, and `trellis app deploy`. All with default settings.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis_claims::invocation::{CtlScope, InvocationSigner, issue_control_credential};
use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_lattice_client::CtlClient;
use trellis_protocol::Lattice;
use trellis_protocol::wadm::{AppStatus, ModelOperation, ModelRequest, StatusKind};
use trellis_test_support::NatsServer;
use trellis_test_support::up::trellis_command;

/// A child process killed (SIGKILL) on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Keys {
    issuer: KeyPair,
    cluster: KeyPair,
    operator: KeyPair,
    user: KeyPair,
    credential: String,
}

impl Keys {
    fn new() -> Self {
        let operator = generate(KeyKind::Operator);
        let user = generate(KeyKind::User);
        let credential = issue_control_credential(
            &operator,
            &user.public_key(),
            "default",
            CtlScope::Full,
            Duration::from_secs(3600),
        )
        .unwrap();
        Self {
            issuer: generate(KeyKind::Account),
            cluster: generate(KeyKind::Cluster),
            operator,
            user,
            credential,
        }
    }

    /// `--ctl-key … --ctl-credential …` for CLI commands.
    fn ctl_args(&self) -> Vec<String> {
        vec![
            "--ctl-key".into(),
            self.user.seed().unwrap(),
            "--ctl-credential".into(),
            self.credential.clone(),
        ]
    }
}

fn trellis(home: &Path) -> Command {
    trellis_command(Path::new(env!("CARGO_BIN_EXE_trellis")), home)
}

/// Spawns `cmd` and returns it with the first line of its stdout.
fn spawn_reading_line(mut cmd: Command, log: &Path) -> (Process, String) {
    let log = std::fs::File::create(log).unwrap();
    let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    (Process(child), line.trim().to_owned())
}

fn start_host(
    home: &Path,
    nats_url: &str,
    keys: &Keys,
    dir: &Path,
    zone: &str,
    n: usize,
) -> (Process, String) {
    let mut cmd = trellis(home);
    cmd.args(["host", "--nats-url", nats_url])
        .args(["--cluster-key", &keys.cluster.seed().unwrap()])
        .args(["--trust", &keys.issuer.public_key()])
        .args(["--ctl-issuer", &keys.operator.public_key()])
        .arg("--allow-dir")
        .arg(dir)
        .args(["--label", &format!("zone={zone}")]);
    spawn_reading_line(cmd, &home.join(format!("host-{n}.log")))
}

async fn ctl_client(nats_url: &str, keys: &Keys) -> CtlClient {
    let nats = async_nats::connect(nats_url).await.unwrap();
    let signer = InvocationSigner::new(
        KeyPair::from_seed(&keys.user.seed().unwrap()).unwrap(),
        keys.credential.clone(),
        Duration::from_secs(30),
    )
    .unwrap();
    CtlClient::new(nats, Lattice::new("default").unwrap()).with_signer(Arc::new(signer))
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

async fn instances_on(client: &CtlClient, host: &str) -> u32 {
    match client.inventory(host).await {
        Ok(inventory) => inventory.actors.iter().map(|a| a.max_instances).sum(),
        Err(_) => 0,
    }
}

/// A host killed with SIGKILL: wadm notices from the missed heartbeats and
/// the application is `deployed` again on the surviving hosts, without
/// anyone doing anything. The time it takes is printed (the bench
/// `wadm_host_loss` reports it as a figure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_host_is_killed_the_app_is_deployed_again_on_the_survivors() {
    let home = tempfile::tempdir_in(crate::test_home()).unwrap();
    let home = home.path();
    let nats = NatsServer::start();
    let url = nats.url();
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(crate::hello_component()).unwrap();
    let request = trellis_claims::actor::ActorClaimsRequest {
        name: "hello".into(),
        caps: vec!["wasi:http".into()],
        ..Default::default()
    };
    let (signed, _) =
        trellis_claims::actor::sign_actor(&wasm, &request, &keys.issuer, &generate(KeyKind::Actor))
            .unwrap();
    let image = dir.path().join("hello.wasm");
    std::fs::write(&image, signed).unwrap();

    let mut hosts = Vec::new();
    for (n, zone) in ["east", "east", "west"].into_iter().enumerate() {
        hosts.push(start_host(home, &url, &keys, dir.path(), zone, n));
    }
    let mut wadm = trellis(home);
    wadm.env("TRELLIS_LOG", "info,trellis_wadm=debug")
        .args(["-o", "json", "wadm", "--nats-url", &url])
        .args(keys.ctl_args())
        .args(["--ctl-issuer", &keys.operator.public_key()])
        .args(["--cluster-issuer", &keys.cluster.public_key()]);
    let (_wadm, ready) = spawn_reading_line(wadm, &home.join("wadm.log"));
    assert!(ready.contains("wadm"), "{ready}");

    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{ name: survivor, annotations: {{ version: v1 }} }}
spec:
  components:
    - name: hello
      type: component
      properties: {{ image: "{}" }}
      traits:
        - type: spreadscaler
          properties:
            instances: 3
            spread:
              - {{ name: east, requirements: {{ zone: east }}, weight: 2 }}
              - {{ name: west, requirements: {{ zone: west }}, weight: 1 }}
"#,
            image.display()
        ),
    )
    .unwrap();
    let out = trellis(home)
        .args(["-o", "json", "app", "deploy"])
        .arg(&manifest)
        .args(["--nats-url", &url])
        .args(keys.ctl_args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deployed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deployed["kind"], "deployed", "{deployed}");

    let client = ctl_client(&url, &keys).await;
    let ids: Vec<String> = hosts.iter().map(|(_, id)| id.clone()).collect();
    let mut placed = Vec::new();
    for id in &ids {
        placed.push(instances_on(&client, id).await);
    }
    assert_eq!(placed, vec![1, 1, 1]);

    // kill -9 the first east host.
    let (mut victim, victim_id) = hosts.remove(0);
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    let killed = Instant::now();
    let survivor = &ids[1];
    let mut recovered = None;
    while killed.elapsed() < Duration::from_secs(60) {
        let status = status(&client, "survivor").await;
        if status.kind == StatusKind::Deployed && instances_on(&client, survivor).await == 2 {
            recovered = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.unwrap_or_else(|| {
        panic!(
            "not deployed again after the loss of {victim_id}; wadm log:\n{}",
            std::fs::read_to_string(home.join("wadm.log")).unwrap_or_default()
        )
    });
    eprintln!("deployed again {recovered:?} after kill -9 of a host");
    if std::env::var_os("TRELLIS_TEST_SHOW_WADM_LOG").is_some() {
        eprintln!(
            "{}",
            std::fs::read_to_string(home.join("wadm.log")).unwrap_or_default()
        );
    }
    assert_eq!(instances_on(&client, &ids[2]).await, 1);
}
