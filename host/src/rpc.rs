//! RPC from the host: actors' capability imports calling providers.
//!
//! [`LatticeClient`] looks links up, signs each invocation with the host's
//! key and sends it as a NATS request inside a timeout, over the one shared
//! NATS client (see [`trellis_lattice_client::RpcClient`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
pub use trellis_lattice_client::CallError;
use trellis_lattice_client::RpcClient;
use trellis_protocol::{
    ContractId, DecodeLimits, Entity, EntityKind, Lattice, LinkDefinition, RpcErrorKind,
    decode_msgpack, encode_msgpack,
};

/// Prefix of link `config` keys that the actor may read through
/// `wasi:config`.
pub const ACTOR_CONFIG_PREFIX: &str = "actor.";

/// The host's view of the lattice for its actors: links, claims, and calls
/// to providers.
pub struct LatticeClient {
    rpc: RpcClient,
    lattice: Lattice,
    links: RwLock<HashMap<String, LinkDefinition>>,
    claims: RwLock<HashMap<String, serde_json::Value>>,
    call_timeout: Duration,
    limits: DecodeLimits,
}

impl LatticeClient {
    /// A client that sends through `rpc` and waits `call_timeout` for each
    /// provider.
    pub fn new(rpc: RpcClient, lattice: Lattice, call_timeout: Duration) -> Self {
        Self {
            rpc,
            lattice,
            links: RwLock::new(HashMap::new()),
            claims: RwLock::new(HashMap::new()),
            call_timeout,
            limits: DecodeLimits::default(),
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

    /// The configuration an actor reads through `wasi:config`: the entries
    /// of its links' `config` whose key starts with [`ACTOR_CONFIG_PREFIX`],
    /// without that prefix, merged in bucket-key order. Other entries are
    /// for the provider only (they may hold its secrets, such as a database
    /// password) and are never shown to the actor.
    pub fn actor_config(&self, actor_id: &str) -> BTreeMap<String, String> {
        let mut config = BTreeMap::new();
        for link in self.links().into_iter().filter(|l| l.actor_id == actor_id) {
            for (key, value) in link.config {
                if let Some(key) = key.strip_prefix(ACTOR_CONFIG_PREFIX) {
                    config.insert(key.to_owned(), value);
                }
            }
        }
        config
    }

    /// The RPC client, for host-originated invocations.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// Calls `operation` on the provider of `link` on behalf of `actor_id`.
    ///
    /// # Errors
    ///
    /// `(kind, message)` as [`RpcClient::invoke`] returns them, or
    /// [`RpcErrorKind::BadRequest`] for an answer that does not decode.
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
            .rpc
            .invoke(
                &subject,
                origin,
                target,
                operation,
                payload,
                self.call_timeout,
            )
            .await?;
        decode_msgpack(&response, &self.limits)
            .map_err(|e| (RpcErrorKind::BadRequest, e.to_string()))
    }
}
