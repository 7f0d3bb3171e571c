//! Integration tests of wadm: manifests against golden files, and the
//! service against a real nats-server with real hosts. One binary, one
//! module per topic.

// A panic in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod lattice;
mod manifests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trellis_claims::invocation::CtlScope;
use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_host::Host;
use trellis_lattice_client::CtlClient;
use trellis_protocol::wadm::{AppStatus, ModelOperation, ModelRequest, PutModelReply, StatusKind};
use trellis_test_support::host::TestLattice;
use trellis_wadm::{Wadm, WadmConfig};

/// The directory of this crate's manifest test files.
pub fn manifests_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests"))
}

/// A test lattice with hosts labelled as given, and a directory for
/// signed actors.
pub struct Fixture {
    pub lattice: TestLattice,
    pub hosts: Vec<Host>,
    pub dir: tempfile::TempDir,
    pub client: CtlClient,
}

impl Fixture {
    pub async fn new(labels: &[&[(&str, &str)]]) -> Self {
        let lattice = TestLattice::new();
        let mut hosts = Vec::new();
        for host_labels in labels {
            hosts.push(Self::host_for(&lattice, host_labels).await);
        }
        let client = lattice
            .ctl_client(CtlScope::Full)
            .await
            .with_timeout(Duration::from_secs(20));
        Self {
            lattice,
            hosts,
            dir: tempfile::tempdir().unwrap(),
            client,
        }
    }

    pub async fn host_for(lattice: &TestLattice, labels: &[(&str, &str)]) -> Host {
        let mut config = lattice.config();
        config.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Host::start(config).await.unwrap()
    }

    /// wadm settings for tests: this lattice's keys, a short resync.
    pub fn wadm_config(&self) -> WadmConfig {
        WadmConfig {
            lattice: self.lattice.name.clone(),
            ctl_issuers: vec![self.lattice.operator.public_key()],
            cluster_issuers: vec![self.lattice.cluster.public_key()],
            resync_interval: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(3),
            ..WadmConfig::default()
        }
    }

    pub async fn wadm(&self) -> Wadm {
        self.wadm_with(self.wadm_config()).await
    }

    pub async fn wadm_with(&self, config: WadmConfig) -> Wadm {
        let nats = async_nats::connect(self.lattice.nats.url()).await.unwrap();
        Wadm::start(nats, self.lattice.ctl_signer(CtlScope::Full), config)
            .await
            .unwrap()
    }

    /// The hello actor signed for a new actor key, as `{dir}/{file}`.
    pub fn signed_hello(&self, file: &str) -> (KeyPair, String) {
        let actor = generate(KeyKind::Actor);
        self.signed_hello_as(&actor, file, 1);
        let path = self.dir.path().join(file);
        (actor, path.to_str().unwrap().to_owned())
    }

    /// The hello actor signed for `actor` at revision `rev`, as `{dir}/{file}`.
    pub fn signed_hello_as(&self, actor: &KeyPair, file: &str, rev: u32) -> String {
        let wasm = std::fs::read(trellis_test_support::example_component("hello")).unwrap();
        let request = trellis_claims::actor::ActorClaimsRequest {
            name: "hello".into(),
            caps: vec!["wasi:http".into()],
            rev,
            ..Default::default()
        };
        let (signed, _) =
            trellis_claims::actor::sign_actor(&wasm, &request, &self.lattice.issuer, actor)
                .unwrap();
        let path = self.dir.path().join(file);
        std::fs::write(&path, signed).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Stores and deploys `manifest`.
    pub async fn deploy(&self, manifest: &str) -> PutModelReply {
        let reply: PutModelReply = self
            .client
            .wadm(ModelOperation::Put, manifest.as_bytes().to_vec())
            .await
            .unwrap()
            .unwrap();
        let request = ModelRequest {
            name: reply.name.clone(),
            version: Some(reply.version.clone()),
        };
        self.client
            .wadm::<serde_json::Value>(
                ModelOperation::Deploy,
                serde_json::to_vec(&request).unwrap(),
            )
            .await
            .unwrap();
        reply
    }

    pub async fn undeploy(&self, name: &str) {
        let request = ModelRequest {
            name: name.to_owned(),
            version: None,
        };
        self.client
            .wadm::<serde_json::Value>(
                ModelOperation::Undeploy,
                serde_json::to_vec(&request).unwrap(),
            )
            .await
            .unwrap();
    }

    pub async fn status(&self, name: &str) -> AppStatus {
        self.try_status(name).await.unwrap()
    }

    /// The status, or why wadm did not answer (e.g. NATS restarting).
    pub async fn try_status(
        &self,
        name: &str,
    ) -> Result<AppStatus, trellis_lattice_client::CtlError> {
        let request = ModelRequest {
            name: name.to_owned(),
            version: None,
        };
        let status = self
            .client
            .wadm(
                ModelOperation::Status,
                serde_json::to_vec(&request).unwrap(),
            )
            .await?;
        Ok(status.unwrap())
    }

    /// Waits up to `timeout` for `name` to reach `kind`; returns the last
    /// status seen.
    pub async fn wait_for(&self, name: &str, kind: StatusKind, timeout: Duration) -> AppStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.try_status(name).await {
                Ok(status) if status.kind == kind => return status,
                Ok(status) if tokio::time::Instant::now() >= deadline => return status,
                _ if tokio::time::Instant::now() >= deadline => return self.status(name).await,
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Per host (by index), the max instances of the actors whose
    /// annotations name `app`.
    pub async fn actor_counts(&self, app: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for host in &self.hosts {
            let inventory = host.inventory().await;
            out.push(
                inventory
                    .actors
                    .iter()
                    .filter(|a| {
                        a.annotations
                            .get(trellis_wadm::plan::APP)
                            .map(String::as_str)
                            == Some(app)
                    })
                    .map(|a| a.max_instances)
                    .sum(),
            );
        }
        out
    }
}

/// A manifest with one hello actor under a spreadscaler.
pub fn hello_manifest(name: &str, version: &str, image: &str, scaler: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: {version}
spec:
  components:
    - name: hello
      type: component
      properties:
        image: "{image}"
      traits:
        - {scaler}
"#
    )
}

pub fn no_labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

pub type SharedSigner = Arc<trellis_claims::invocation::InvocationSigner>;
