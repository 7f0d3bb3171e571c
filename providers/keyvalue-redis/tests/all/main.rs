//! Tests of the `keyvalue-redis` provider against real services: the
//! machine's Redis (`TRELLIS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), `redis-server` processes of their own, and a
//! real lattice (nats-server, host, the provider binary, the kvcounter
//! actor). One binary, one module per topic.

// A panic in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod direct;
mod isolation;
mod lattice;
mod outage;

use std::time::Duration;

use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{self as kv, KvError};
use trellis_protocol::contracts::{self, Answer, ContractError, ErrorOf, Operation};
use trellis_protocol::{ContractId, DecodeLimits, Entity, EntityKind, LinkDefinition, RpcError};
use trellis_provider_keyvalue_redis::KeyvalueRedis;
use trellis_provider_sdk::LinkedProvider;
pub use trellis_test_support::RedisServer;

/// The provider with the SDK's link table, driven in-process (no NATS).
pub type Linked = LinkedProvider<KeyvalueRedis>;

/// A fresh provider with no links.
pub fn linked() -> Linked {
    LinkedProvider::new(KeyvalueRedis::new())
}

/// Environment variable naming the shared Redis the tests may use.
pub const REDIS_URL_ENV: &str = "TRELLIS_TEST_REDIS_URL";

/// The shared Redis of the machine.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("trellis-test:{}:", uuid::Uuid::new_v4())
}

/// An actor id no other test uses.
pub fn unique_actor() -> String {
    format!("MTEST{}", uuid::Uuid::new_v4().simple()).to_uppercase()
}

/// A link from `actor` under `link_name` to the provider, with `config`.
pub fn link(actor: &str, link_name: &str, config: &[(&str, &str)]) -> LinkDefinition {
    config.iter().fold(
        LinkDefinition::new(
            actor,
            ContractId::new("wasi:keyvalue").unwrap(),
            link_name,
            "VPROVIDER",
        ),
        |l, (k, v)| l.with_config(*k, *v),
    )
}

/// The origin of an invocation by `actor` over `link_name`.
pub fn origin(actor: &str, link_name: &str) -> Entity {
    Entity {
        kind: EntityKind::Actor,
        id: actor.to_owned(),
        contract_id: Some("wasi:keyvalue".to_owned()),
        link_name: Some(link_name.to_owned()),
    }
}

/// Calls `request` on `linked` as `actor` over `link_name`, as the SDK does
/// once the invocation is verified: the typed answer, or the error of the
/// invocation itself (a denial, an unknown operation).
pub async fn invoke<O: Operation>(
    linked: &Linked,
    actor: &str,
    link_name: &str,
    request: O,
) -> Result<Answer<O>, RpcError> {
    let payload = contracts::encode_request(&request).unwrap();
    let bytes = linked
        .call(&origin(actor, link_name), O::NAME, &payload)
        .await?;
    Ok(contracts::decode_answer::<O>(&bytes, &DecodeLimits::default()).unwrap())
}

/// [`invoke`], with the invocation's error folded into the contract's error
/// as the host's stub does (a denial is `KvError::AccessDenied`).
pub async fn call_as<O: Operation>(
    linked: &Linked,
    actor: &str,
    link_name: &str,
    request: O,
) -> Answer<O> {
    invoke(linked, actor, link_name, request)
        .await
        .unwrap_or_else(|e| Err(<ErrorOf<O> as ContractError>::from_rpc(e)))
}

/// `store.get` of `key`.
pub fn get(key: &str) -> kv::Get {
    kv::Get {
        bucket: "default".into(),
        key: key.into(),
    }
}

/// `store.set` of `key` to `value`.
pub fn set(key: &str, value: &[u8]) -> kv::Set {
    kv::Set {
        bucket: "default".into(),
        key: key.into(),
        value: ByteBuf::from(value),
    }
}

/// `store.exists` of `key`.
pub fn exists(key: &str) -> kv::Exists {
    kv::Exists {
        bucket: "default".into(),
        key: key.into(),
    }
}

/// The answer of a `get` that found `v`.
pub fn value(v: &[u8]) -> Option<ByteBuf> {
    Some(ByteBuf::from(v))
}

/// The message of a `KvError::Other`; panics on any other answer.
pub fn other_message<T: std::fmt::Debug>(answer: Result<T, KvError>) -> String {
    match answer {
        Err(KvError::Other { message }) => {
            assert!(message.starts_with("keyvalue-redis: "), "{message}");
            message
        }
        other => panic!("expected KvError::Other, got {other:?}"),
    }
}

/// Deletes every key under `prefix` in the Redis at `url` (synchronously,
/// so that it can run from `Drop`).
pub fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .unwrap_or_default();
    for chunk in keys.chunks(1000) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut c);
    }
}

/// A provider with one link to the shared Redis under a unique prefix; the
/// prefix's keys are deleted when it drops, even after a failed assertion.
pub struct Fixture {
    pub linked: Linked,
    pub actor: String,
    pub prefix: String,
    pub url: String,
}

impl Fixture {
    pub async fn new() -> Self {
        let linked = linked();
        let actor = unique_actor();
        let prefix = unique_prefix();
        let url = redis_url();
        linked
            .put_link(&link(
                &actor,
                "default",
                &[("url", &url), ("prefix", &prefix)],
            ))
            .await
            .unwrap();
        Self {
            linked,
            actor,
            prefix,
            url,
        }
    }

    /// The provider itself.
    pub fn provider(&self) -> &KeyvalueRedis {
        self.linked.provider()
    }

    /// Calls `request` over the fixture's link, as the host's stub would.
    pub async fn call<O: Operation>(&self, request: O) -> Answer<O> {
        call_as(&self.linked, &self.actor, "default", request).await
    }

    /// A direct connection to the shared Redis, to look behind the provider.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}
