//! The host's view of the lattice for its actors: the links and claims
//! seen in the lattice bucket, and calls to providers.
//!
//! [`LatticeClient`] is the NATS implementation of the runtime's
//! [`Capabilities`]: it looks the link up and sends the call with
//! [`RpcClient::invoke`] (signed with the host's key, inside a timeout,
//! over the one shared NATS client).

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use trellis_lattice_client::RpcClient;
use trellis_protocol::{ContractId, Lattice, LinkDefinition, RpcError, RpcErrorKind};

use crate::runtime::Capabilities;
use crate::runtime::capabilities::{BoxFuture, no_link};

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

    /// Records a link seen in the lattice bucket; true if it is new or
    /// differs from the one recorded.
    pub fn put_link(&self, link: LinkDefinition) -> bool {
        let Ok(mut links) = self.links.write() else {
            return false;
        };
        let key = link.bucket_key();
        if links.get(&key) == Some(&link) {
            return false;
        }
        links.insert(key, link);
        true
    }

    /// Forgets the link stored under `bucket_key`, returning it if one was
    /// recorded.
    pub fn remove_link(&self, bucket_key: &str) -> Option<LinkDefinition> {
        self.links.write().ok()?.remove(bucket_key)
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
}

impl Capabilities for LatticeClient {
    fn is_linked(&self, actor_id: &str, contract: &str, link_name: &str) -> bool {
        ContractId::new(contract).is_ok_and(|c| self.link(actor_id, &c, link_name).is_some())
    }

    fn invoke<'a>(
        &'a self,
        actor_id: &'a str,
        contract: &'static str,
        link_name: &'a str,
        operation: &'static str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, RpcError>> {
        Box::pin(async move {
            let bad = |e: String| RpcError::new(RpcErrorKind::BadRequest, e);
            let contract_id = ContractId::new(contract).map_err(|e| bad(e.to_string()))?;
            let link = self
                .link(actor_id, &contract_id, link_name)
                .ok_or_else(|| no_link(contract, link_name))?;
            let route = self
                .lattice
                .route_to_provider(&link)
                .map_err(|e| bad(e.to_string()))?;
            self.rpc
                .invoke(&route, operation, payload, self.call_timeout)
                .await
                .map_err(|e| e.to_rpc())
        })
    }

    fn actor_config(&self, actor_id: &str) -> BTreeMap<String, String> {
        LatticeClient::actor_config(self, actor_id)
    }
}
