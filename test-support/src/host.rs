//! A test lattice: a nats-server of its own, an issuer, a cluster key and
//! a control operator, and hosts configured for tests.

use std::sync::Arc;
use std::time::Duration;

use trellis_claims::actor::{ActorClaimsRequest, sign_actor};
use trellis_claims::invocation::{CtlScope, InvocationSigner, issue_control_credential};
use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_host::{Host, HostConfig, NatsConfig};
use trellis_lattice_client::CtlClient;
use trellis_protocol::Lattice;

use crate::NatsServer;
use crate::lattice::TestClient;

/// Keys shared by the hosts of one test lattice.
pub struct TestLattice {
    /// The lattice's nats-server.
    pub nats: NatsServer,
    /// The lattice name.
    pub name: String,
    /// The trusted issuer of actors and providers.
    pub issuer: KeyPair,
    /// The cluster key every host shares.
    pub cluster: KeyPair,
    /// The control issuer every host trusts.
    pub operator: KeyPair,
}

impl TestLattice {
    /// A lattice with its own nats-server, issuer and cluster keys.
    pub fn new() -> Self {
        Self {
            nats: NatsServer::start(),
            name: "test".to_owned(),
            issuer: generate(KeyKind::Account),
            cluster: generate(KeyKind::Cluster),
            operator: generate(KeyKind::Operator),
        }
    }

    /// A signer of control requests for a new user key, with a credential
    /// of `scope` from this lattice's operator.
    pub fn ctl_signer(&self, scope: CtlScope) -> Arc<InvocationSigner> {
        let user = generate(KeyKind::User);
        let credential = issue_control_credential(
            &self.operator,
            &user.public_key(),
            &self.name,
            scope,
            Duration::from_secs(3600),
        )
        .unwrap();
        Arc::new(InvocationSigner::new(user, credential, Duration::from_secs(30)).unwrap())
    }

    /// A control client of this lattice signing with a credential of
    /// `scope`.
    pub async fn ctl_client(&self, scope: CtlScope) -> CtlClient {
        self.anonymous_ctl_client()
            .await
            .with_signer(self.ctl_signer(scope))
    }

    /// A control client of this lattice that does not sign its requests.
    pub async fn anonymous_ctl_client(&self) -> CtlClient {
        let nats = async_nats::connect(self.nats.url()).await.unwrap();
        CtlClient::new(nats, Lattice::new(self.name.clone()).unwrap())
    }

    /// A host configuration for this lattice, with short test timeouts;
    /// development mode is on so providers can start from plain binaries.
    pub fn config(&self) -> HostConfig {
        HostConfig {
            lattice: self.name.clone(),
            nats: NatsConfig {
                urls: vec![self.nats.url()],
                request_timeout: Duration::from_secs(5),
                ..NatsConfig::default()
            },
            cluster_seed: Some(self.cluster.seed().unwrap()),
            trusted_issuers: vec![self.issuer.public_key()],
            ctl_issuers: vec![self.operator.public_key()],
            heartbeat_interval: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            dev_mode: true,
            provider_health_interval: Duration::from_secs(1),
            provider_cache_dir: std::env::temp_dir()
                .join(format!("trellis-test-providers-{}", std::process::id())),
            artifact_dirs: artifact_dirs(),
            // Tests count compilations: none may come from another test's
            // run through a shared cache directory.
            compiled_cache: false,
            ..HostConfig::default()
        }
    }

    /// Starts a host of this lattice.
    pub async fn host(&self) -> Host {
        Host::start(self.config()).await.unwrap()
    }

    /// A client that signs invocations like a host of this lattice.
    pub async fn client(&self) -> TestClient {
        TestClient::new(&self.nats.url(), &self.name, &self.cluster).await
    }

    /// Signs `wasm` for `actor` with this lattice's issuer.
    pub fn sign(&self, wasm: &[u8], actor: &KeyPair, caps: &[&str]) -> Vec<u8> {
        self.sign_with(wasm, actor, caps, &self.issuer, None)
    }

    /// Signs `wasm` for `actor` with `issuer`, optionally expiring.
    pub fn sign_with(
        &self,
        wasm: &[u8],
        actor: &KeyPair,
        caps: &[&str],
        issuer: &KeyPair,
        expires: Option<u64>,
    ) -> Vec<u8> {
        let request = ActorClaimsRequest {
            name: "test-actor".into(),
            caps: caps.iter().map(|c| (*c).to_owned()).collect(),
            expires,
            ..Default::default()
        };
        sign_actor(wasm, &request, issuer, actor).unwrap().0
    }
}

impl Default for TestLattice {
    fn default() -> Self {
        Self::new()
    }
}

/// The directories test hosts start artifacts from: the temporary
/// directory (where tests write signed actors) and the build directory of
/// the running test (where provider binaries are).
pub fn artifact_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = vec![std::env::temp_dir()];
    // The test binary is `{target}/{profile}/deps/{name}`.
    if let Some(profile) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(std::path::Path::to_path_buf))
    {
        dirs.push(profile);
    }
    dirs
}
