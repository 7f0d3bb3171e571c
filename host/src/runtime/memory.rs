//! An in-process [`Capabilities`] backend, for tests and benches: links
//! bind actors to providers that are plain Rust values, so actors can be
//! instantiated, denied and limited without a nats-server.
//!
//! A provider here is anything implementing [`InProcessProvider`]; any
//! contract `Handler` can be one through its contract's `dispatch`, as
//! [`MemoryKeyValue`] shows for `wasi:keyvalue`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use serde_bytes::ByteBuf;
use trellis_protocol::contracts::Answer;
use trellis_protocol::contracts::keyvalue::{self as kv, KeyPage};
use trellis_protocol::{DecodeLimits, RpcError};

use super::capabilities::{BoxFuture, Capabilities, no_link};

/// A provider living in the same process.
pub trait InProcessProvider: Send + Sync + 'static {
    /// Answers `operation` with `payload` for actor `actor_id` and returns
    /// the response payload.
    ///
    /// # Errors
    ///
    /// The call's [`RpcError`].
    fn call<'a>(
        &'a self,
        actor_id: &'a str,
        operation: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, RpcError>>;
}

type LinkKey = (String, String, String);

/// Links from actors to in-process providers, and the configuration each
/// actor reads. Starts empty: every capability is denied.
#[derive(Default)]
pub struct InMemoryCapabilities {
    links: RwLock<HashMap<LinkKey, Arc<dyn InProcessProvider>>>,
    config: RwLock<HashMap<String, BTreeMap<String, String>>>,
}

impl InMemoryCapabilities {
    /// No links and no configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Links `actor_id`'s `contract` under `link_name` to `provider`,
    /// replacing an earlier link of the same triple.
    pub fn link(
        &self,
        actor_id: &str,
        contract: &str,
        link_name: &str,
        provider: Arc<dyn InProcessProvider>,
    ) {
        self.links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (
                    actor_id.to_owned(),
                    contract.to_owned(),
                    link_name.to_owned(),
                ),
                provider,
            );
    }

    /// Removes the link of the triple, if any.
    pub fn unlink(&self, actor_id: &str, contract: &str, link_name: &str) {
        self.links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(
                actor_id.to_owned(),
                contract.to_owned(),
                link_name.to_owned(),
            ));
    }

    /// Sets the configuration `actor_id` reads through `wasi:config`.
    pub fn set_config(&self, actor_id: &str, config: BTreeMap<String, String>) {
        self.config
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(actor_id.to_owned(), config);
    }

    fn provider(
        &self,
        actor_id: &str,
        contract: &str,
        link_name: &str,
    ) -> Option<Arc<dyn InProcessProvider>> {
        self.links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(
                actor_id.to_owned(),
                contract.to_owned(),
                link_name.to_owned(),
            ))
            .cloned()
    }
}

impl Capabilities for InMemoryCapabilities {
    fn is_linked(&self, actor_id: &str, contract: &str, link_name: &str) -> bool {
        self.provider(actor_id, contract, link_name).is_some()
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
            let provider = self
                .provider(actor_id, contract, link_name)
                .ok_or_else(|| no_link(contract, link_name))?;
            provider.call(actor_id, operation, payload).await
        })
    }

    fn actor_config(&self, actor_id: &str) -> BTreeMap<String, String> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(actor_id)
            .cloned()
            .unwrap_or_default()
    }
}

/// Keys listed per `list-keys` page by [`MemoryKeyValue`]: the contract's
/// page size. Defaults to 1,000.
pub const MEMORY_LIST_PAGE_SIZE: usize = kv::LIST_PAGE_SIZE;

/// A `wasi:keyvalue` provider over a map in memory, one namespace per
/// (actor, bucket). Serves through [`kv::dispatch`], like a real provider.
#[derive(Default)]
pub struct MemoryKeyValue {
    entries: RwLock<BTreeMap<(String, String, String), Vec<u8>>>,
}

impl MemoryKeyValue {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value the actor `actor_id` stored under `key` in `bucket`.
    pub fn value(&self, actor_id: &str, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(actor_id.to_owned(), bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    fn key(actor: &str, bucket: &str, key: &str) -> (String, String, String) {
        (actor.to_owned(), bucket.to_owned(), key.to_owned())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<(String, String, String), Vec<u8>>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<(String, String, String), Vec<u8>>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The actor a [`MemoryKeyValue`] call is for: its link state.
pub struct MemoryLink {
    actor_id: String,
}

impl kv::Handler for MemoryKeyValue {
    type Link = MemoryLink;

    async fn get(&self, link: &MemoryLink, r: kv::Get) -> Answer<kv::Get> {
        let key = Self::key(&link.actor_id, &r.bucket, &r.key);
        Ok(self.read().get(&key).cloned().map(ByteBuf::from))
    }

    async fn set(&self, link: &MemoryLink, r: kv::Set) -> Answer<kv::Set> {
        let key = Self::key(&link.actor_id, &r.bucket, &r.key);
        self.write().insert(key, r.value.into_vec());
        Ok(())
    }

    async fn delete(&self, link: &MemoryLink, r: kv::Delete) -> Answer<kv::Delete> {
        self.write()
            .remove(&Self::key(&link.actor_id, &r.bucket, &r.key));
        Ok(())
    }

    async fn exists(&self, link: &MemoryLink, r: kv::Exists) -> Answer<kv::Exists> {
        let key = Self::key(&link.actor_id, &r.bucket, &r.key);
        Ok(self.read().contains_key(&key))
    }

    async fn list_keys(&self, link: &MemoryLink, r: kv::ListKeys) -> Answer<kv::ListKeys> {
        let keys: Vec<String> = self
            .read()
            .keys()
            .filter(|(a, b, _)| *a == link.actor_id && *b == r.bucket)
            .map(|(_, _, k)| k.clone())
            .collect();
        Ok(KeyPage::of_sorted(keys, r.cursor))
    }

    async fn increment(&self, link: &MemoryLink, r: kv::Increment) -> Answer<kv::Increment> {
        let key = Self::key(&link.actor_id, &r.bucket, &r.key);
        let mut entries = self.write();
        let current = match entries.get(&key) {
            None => 0,
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| kv::KvError::other("the value is not a number"))?,
        };
        let next = current
            .checked_add(r.delta)
            .ok_or_else(|| kv::KvError::other("the increment overflows"))?;
        entries.insert(key, next.to_string().into_bytes());
        Ok(next)
    }

    async fn get_many(&self, link: &MemoryLink, r: kv::GetMany) -> Answer<kv::GetMany> {
        let entries = self.read();
        Ok(r.keys
            .into_iter()
            .map(|k| {
                let value = entries
                    .get(&Self::key(&link.actor_id, &r.bucket, &k))
                    .cloned()
                    .map(ByteBuf::from);
                (k, value)
            })
            .collect())
    }

    async fn set_many(&self, link: &MemoryLink, r: kv::SetMany) -> Answer<kv::SetMany> {
        let mut entries = self.write();
        for (k, v) in r.entries {
            entries.insert(Self::key(&link.actor_id, &r.bucket, &k), v.into_vec());
        }
        Ok(())
    }

    async fn delete_many(&self, link: &MemoryLink, r: kv::DeleteMany) -> Answer<kv::DeleteMany> {
        let mut entries = self.write();
        for k in r.keys {
            entries.remove(&Self::key(&link.actor_id, &r.bucket, &k));
        }
        Ok(())
    }
}

impl InProcessProvider for MemoryKeyValue {
    fn call<'a>(
        &'a self,
        actor_id: &'a str,
        operation: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, RpcError>> {
        Box::pin(async move {
            let link = MemoryLink {
                actor_id: actor_id.to_owned(),
            };
            kv::dispatch(self, &link, operation, &payload, &DecodeLimits::default()).await
        })
    }
}
