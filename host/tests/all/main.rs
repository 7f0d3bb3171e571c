//! Integration tests of the host against a real `nats-server`: one binary,
//! one module per topic.

// A panic in a test is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::new_without_default,
    missing_docs
)]

mod balancing;
mod capabilities;
mod control;
mod denials;
mod limits;
mod nats_restart;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use trellis_claims::actor::{ActorClaimsRequest, sign_actor};
use trellis_claims::invocation::{InvocationSigner, issue_credential};
use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_host::{Host, HostConfig, NatsConfig};
use trellis_protocol::contracts::http::{HANDLE_OPERATION, HttpRequest, HttpResponse};
use trellis_protocol::{
    DecodeLimits, Entity, EntityKind, Invocation, InvocationResponse, Lattice, RpcError,
    decode_msgpack, encode_msgpack,
};
pub use trellis_test_support::{NatsServer, example_component};

/// Keys shared by the hosts of one test lattice.
pub struct TestLattice {
    pub nats: NatsServer,
    pub name: String,
    pub issuer: KeyPair,
    pub cluster: KeyPair,
}

impl TestLattice {
    pub fn new() -> Self {
        Self {
            nats: NatsServer::start(),
            name: "test".to_owned(),
            issuer: generate(KeyKind::Account),
            cluster: generate(KeyKind::Cluster),
        }
    }

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
            heartbeat_interval: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            ..HostConfig::default()
        }
    }

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

/// Writes `wasm` to a temporary file and returns its path.
pub fn write_temp(dir: &Path, name: &str, wasm: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, wasm).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Reads an example actor.
pub fn example(name: &str) -> Vec<u8> {
    std::fs::read(example_component(name)).unwrap()
}

/// Sends signed invocations over NATS, as the HTTP provider will.
pub struct TestClient {
    pub nats: async_nats::Client,
    pub lattice: Lattice,
    pub signer: Arc<InvocationSigner>,
}

impl TestClient {
    pub async fn new(url: &str, lattice: &str, cluster: &KeyPair) -> Self {
        let key = generate(KeyKind::Host);
        let credential = issue_credential(
            cluster,
            &key.public_key(),
            lattice,
            Duration::from_secs(600),
        )
        .unwrap();
        let signer = InvocationSigner::new(key, credential, Duration::from_secs(30)).unwrap();
        let nats = async_nats::connect(url).await.unwrap();
        Self {
            nats,
            lattice: Lattice::new(lattice).unwrap(),
            signer: Arc::new(signer),
        }
    }

    /// A signed invocation of `GET {path}` on `actor_id`, encoded.
    pub fn http_invocation(&self, actor_id: &str, path: &str) -> Vec<u8> {
        let request = HttpRequest {
            method: "GET".into(),
            scheme: "http".into(),
            authority: "localhost".into(),
            path_with_query: path.into(),
            headers: vec![],
            body: vec![],
        };
        let payload = encode_msgpack(&request).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let origin = Entity {
            kind: EntityKind::Host,
            id: self.signer.public_key(),
            contract_id: None,
            link_name: None,
        };
        let target = Entity {
            kind: EntityKind::Actor,
            id: actor_id.into(),
            contract_id: None,
            link_name: None,
        };
        let mut invocation = Invocation::new(id.clone(), origin, target, HANDLE_OPERATION, payload);
        invocation.token = self
            .signer
            .sign(&id, actor_id, HANDLE_OPERATION, &invocation.payload)
            .unwrap();
        invocation.encode().unwrap()
    }

    /// Sends encoded invocation bytes and decodes the answer.
    pub async fn send(&self, actor_id: &str, bytes: Vec<u8>) -> Result<HttpResponse, RpcError> {
        let subject = self.lattice.rpc(actor_id, None).unwrap();
        let reply = tokio::time::timeout(
            Duration::from_secs(20),
            self.nats.request(subject, bytes.into()),
        )
        .await
        .expect("no answer within 20 s")
        .expect("request failed");
        let response =
            InvocationResponse::decode(&reply.payload, &DecodeLimits::default()).unwrap();
        match response.error {
            Some(e) => Err(e),
            None => Ok(decode_msgpack(&response.payload, &DecodeLimits::default()).unwrap()),
        }
    }

    /// `GET {path}` on `actor_id`.
    pub async fn get(&self, actor_id: &str, path: &str) -> Result<HttpResponse, RpcError> {
        let bytes = self.http_invocation(actor_id, path);
        self.send(actor_id, bytes).await
    }
}

pub fn body(response: &HttpResponse) -> String {
    String::from_utf8(response.body.clone()).unwrap()
}

pub fn no_annotations() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Waits until `check` holds, polling every 50 ms for up to `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
