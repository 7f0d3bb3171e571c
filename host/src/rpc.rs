//! RPC: signed invocations over NATS, in both directions.
//!
//! [`LatticeClient`] is what actors' capability imports use to call
//! providers: it looks links up, signs each invocation with the host's key
//! and sends it as a NATS request inside a timeout. The same NATS client is
//! shared by every call, so requests stay concurrent and no connection is
//! made per call.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_claims::invocation::InvocationSigner;
use trellis_protocol::{
    ContractId, DecodeLimits, Entity, EntityKind, Invocation, InvocationResponse, Lattice,
    LinkDefinition, RpcErrorKind, decode_msgpack, encode_msgpack,
};

/// A failure of an RPC call: a kind for programs and a message for people.
pub type CallError = (RpcErrorKind, String);

/// The host's view of the lattice for its actors: links, and calls to
/// providers.
pub struct LatticeClient {
    nats: async_nats::Client,
    lattice: Lattice,
    signer: InvocationSigner,
    links: RwLock<HashMap<String, LinkDefinition>>,
    claims: RwLock<HashMap<String, serde_json::Value>>,
    call_timeout: Duration,
    limits: DecodeLimits,
    max_payload: usize,
}

impl LatticeClient {
    /// A client that signs with `signer` and waits `call_timeout` for each
    /// provider, refusing payloads over `max_payload` bytes.
    pub fn new(
        nats: async_nats::Client,
        lattice: Lattice,
        signer: InvocationSigner,
        call_timeout: Duration,
        max_payload: usize,
    ) -> Self {
        Self {
            nats,
            lattice,
            signer,
            links: RwLock::new(HashMap::new()),
            claims: RwLock::new(HashMap::new()),
            call_timeout,
            limits: DecodeLimits::default(),
            max_payload,
        }
    }

    /// The link for (actor, contract, link name), if one is defined.
    pub fn link(
        &self,
        actor_id: &str,
        contract: &ContractId,
        link_name: &str,
    ) -> Option<LinkDefinition> {
        let key = trellis_protocol::link::link_bucket_key(actor_id, contract, link_name);
        self.links.read().ok()?.get(&key).cloned()
    }

    /// Every link, in bucket-key order.
    pub fn links(&self) -> Vec<LinkDefinition> {
        let mut links: Vec<LinkDefinition> = self
            .links
            .read()
            .map(|l| l.values().cloned().collect())
            .unwrap_or_default();
        links.sort_by_key(LinkDefinition::bucket_key);
        links
    }

    /// Records a link seen in the lattice bucket.
    pub fn put_link(&self, link: LinkDefinition) {
        if let Ok(mut links) = self.links.write() {
            links.insert(link.bucket_key(), link);
        }
    }

    /// Forgets the link stored under `bucket_key`.
    pub fn remove_link(&self, bucket_key: &str) {
        if let Ok(mut links) = self.links.write() {
            links.remove(bucket_key);
        }
    }

    /// Records actor claims seen in the lattice bucket under `key`.
    pub fn put_claims(&self, key: String, claims: serde_json::Value) {
        if let Ok(mut all) = self.claims.write() {
            all.insert(key, claims);
        }
    }

    /// Forgets the claims stored under `key`.
    pub fn remove_claims(&self, key: &str) {
        if let Ok(mut all) = self.claims.write() {
            all.remove(key);
        }
    }

    /// Every actor's claims seen in the lattice, in key order.
    pub fn claims(&self) -> Vec<serde_json::Value> {
        let Ok(all) = self.claims.read() else {
            return Vec::new();
        };
        let mut keys: Vec<&String> = all.keys().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| all.get(k).cloned())
            .collect()
    }

    /// The configuration an actor reads through `wasi:config`: the merged
    /// `config` of every link whose source it is, in bucket-key order.
    pub fn actor_config(&self, actor_id: &str) -> BTreeMap<String, String> {
        let mut config = BTreeMap::new();
        for link in self.links().into_iter().filter(|l| l.actor_id == actor_id) {
            config.extend(link.config);
        }
        config
    }

    /// The signer, for responses and host-originated invocations.
    pub fn signer(&self) -> &InvocationSigner {
        &self.signer
    }

    /// Calls `operation` on the provider of `link` on behalf of `actor_id`.
    ///
    /// # Errors
    ///
    /// `(kind, message)`: [`RpcErrorKind::TooLarge`] for a request over the
    /// server's payload limit, [`RpcErrorKind::Timeout`] when no answer
    /// comes in time, [`RpcErrorKind::NotFound`] when no provider listens,
    /// the provider's own error, or [`RpcErrorKind::BadRequest`] for an
    /// answer that does not decode.
    pub async fn call_provider<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        actor_id: &str,
        link: &LinkDefinition,
        operation: &str,
        request: &Req,
    ) -> Result<Resp, CallError> {
        let payload =
            encode_msgpack(request).map_err(|e| (RpcErrorKind::BadRequest, e.to_string()))?;
        let origin = Entity {
            kind: EntityKind::Actor,
            id: actor_id.to_owned(),
            contract_id: Some(link.contract_id.to_string()),
            link_name: Some(link.link_name.clone()),
        };
        let target = Entity {
            kind: EntityKind::Provider,
            id: link.provider_id.clone(),
            contract_id: Some(link.contract_id.to_string()),
            link_name: Some(link.link_name.clone()),
        };
        let subject = self
            .lattice
            .rpc(&link.provider_id, Some(&link.link_name))
            .map_err(|e| (RpcErrorKind::BadRequest, e.to_string()))?;
        let response = self
            .invoke(&subject, origin, target, operation, payload)
            .await?;
        decode_msgpack(&response, &self.limits)
            .map_err(|e| (RpcErrorKind::BadRequest, e.to_string()))
    }

    /// Signs and sends an invocation to `subject` and returns the response
    /// payload.
    ///
    /// # Errors
    ///
    /// As [`LatticeClient::call_provider`].
    pub async fn invoke(
        &self,
        subject: &str,
        origin: Entity,
        target: Entity,
        operation: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut invocation = Invocation::new(id.clone(), origin, target, operation, payload);
        invocation.token = self
            .signer
            .sign(&id, &invocation.target.id, operation, &invocation.payload)
            .map_err(|e| (RpcErrorKind::Failed, e.to_string()))?;
        let bytes = invocation
            .encode()
            .map_err(|e| (RpcErrorKind::BadRequest, e.to_string()))?;
        if bytes.len() > self.max_payload {
            return Err((
                RpcErrorKind::TooLarge,
                format!(
                    "invocation of {} bytes exceeds the server's max_payload of {}",
                    bytes.len(),
                    self.max_payload
                ),
            ));
        }
        let reply = tokio::time::timeout(
            self.call_timeout,
            self.nats.request(subject.to_owned(), bytes.into()),
        )
        .await
        .map_err(|_| {
            (
                RpcErrorKind::Timeout,
                format!("no answer on {subject} within {:?}", self.call_timeout),
            )
        })?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => {
                (RpcErrorKind::NotFound, format!("nothing serves {subject}"))
            }
            async_nats::RequestErrorKind::TimedOut => {
                (RpcErrorKind::Timeout, format!("no answer on {subject}"))
            }
            async_nats::RequestErrorKind::MaxPayloadExceeded => {
                (RpcErrorKind::TooLarge, e.to_string())
            }
            _ => (RpcErrorKind::Failed, e.to_string()),
        })?;
        let response = InvocationResponse::decode(&reply.payload, &self.limits).map_err(|e| {
            (
                RpcErrorKind::BadRequest,
                format!("undecodable response: {e}"),
            )
        })?;
        match response.error {
            Some(err) => Err((err.kind, err.message)),
            None => Ok(response.payload),
        }
    }
}
