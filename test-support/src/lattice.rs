//! A lattice client for tests: sends signed invocations as a host or the
//! HTTP provider would.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use trellis_claims::invocation::{Call, InvocationSigner, issue_credential};
use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_protocol::contracts::http::{HANDLE_OPERATION, HttpRequest, HttpResponse};
use trellis_protocol::{
    DecodeLimits, Entity, EntityKind, Invocation, InvocationResponse, Lattice, RpcError,
    encode_msgpack,
};

/// Sends signed invocations over NATS, as the HTTP provider will.
pub struct TestClient {
    pub nats: async_nats::Client,
    pub lattice: Lattice,
    pub signer: Arc<InvocationSigner>,
}

impl TestClient {
    pub async fn new(url: &str, lattice: &str, cluster: &KeyPair) -> Self {
        let nats = async_nats::connect(url).await.unwrap();
        Self::with_nats(nats, lattice, cluster)
    }

    /// A client over an existing NATS connection (e.g. one made with a
    /// user's credentials).
    pub fn with_nats(nats: async_nats::Client, lattice: &str, cluster: &KeyPair) -> Self {
        let key = generate(KeyKind::Host);
        let credential = issue_credential(
            cluster,
            &key.public_key(),
            lattice,
            Duration::from_secs(600),
        )
        .unwrap();
        let signer = InvocationSigner::new(key, credential, Duration::from_secs(30)).unwrap();
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
        let subject = self.lattice.rpc(actor_id, None).unwrap();
        let call = Call {
            id: &id,
            origin: &invocation.origin.id,
            target: actor_id,
            operation: HANDLE_OPERATION,
            subject: &subject,
            contract_id: None,
            link_name: None,
        };
        invocation.token = self.signer.sign(&call, &invocation.payload).unwrap();
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
            None => trellis_protocol::contracts::decode_answer::<HttpRequest>(
                &response.payload,
                &DecodeLimits::default(),
            )
            .unwrap(),
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
