//! Trellis capability provider: `wasi:keyvalue` on a NATS JetStream
//! key-value bucket — the embedded default that needs no Redis.
//!
//! # Link configuration
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `bucket` | `trellis_keyvalue` | JetStream key-value bucket to use; created when missing |
//! | `prefix` | the actor id | key prefix; two links see each other's keys only if they share bucket and prefix |
//! | `timeout_ms` | `2000` | timeout of each JetStream call, in ms |
//!
//! The bucket lives on the NATS servers the provider connects to (those of
//! its host). Keys are stored as `{prefix}.{key in base64url}` because NATS
//! key-value keys allow only `[-/_=.A-Za-z0-9]`; values are stored as they
//! are. `increment` keeps its number as decimal text (as Redis does) and
//! is atomic, by compare-and-set with up to [`MAX_CAS_ATTEMPTS`] retries.
//! `list-keys` returns pages of [`LIST_PAGE_SIZE`] keys in sorted order; its
//! cursor is the index of the next key.
//!
//! # Errors
//!
//! Every failure is answered as `KvResponse::Error` with a message
//! (`keyvalue-nats: …`): an unreachable JetStream, a timeout, a value that
//! is not a number for `increment`. An actor without a link gets a `denied`
//! invocation error.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt as _;
use serde_bytes::ByteBuf;
use tokio::sync::Mutex;
use trellis_protocol::contracts::keyvalue::{KvRequest, KvResponse, OPERATION};
use trellis_protocol::subject::{TokenKind, validate_token};
use trellis_protocol::{
    DecodeLimits, LinkDefinition, RpcErrorKind, decode_msgpack, encode_msgpack,
};
use trellis_provider_sdk::{CallError, HealthCheck, Provider, ProviderContext, ProviderInvocation};

/// Bucket used when a link names none.
pub const DEFAULT_BUCKET: &str = "trellis_keyvalue";
/// Per-call timeout when a link sets none, in ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Keys per `list-keys` page.
pub const LIST_PAGE_SIZE: usize = 1_000;
/// Compare-and-set attempts of one `increment` before it gives up.
pub const MAX_CAS_ATTEMPTS: usize = 64;
/// Revisions kept per key in buckets this provider creates.
pub const BUCKET_HISTORY: i64 = 1;

/// The settings of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// Timeout of each call.
    pub timeout: Duration,
}

impl LinkSettings {
    /// Reads a link's configuration.
    ///
    /// # Errors
    ///
    /// A message when a value is invalid (bucket or prefix with characters
    /// NATS keys do not allow, a non-numeric timeout).
    pub fn from_link(link: &LinkDefinition) -> Result<Self, String> {
        let bucket = link
            .config
            .get("bucket")
            .cloned()
            .unwrap_or_else(|| DEFAULT_BUCKET.to_owned());
        let prefix = link
            .config
            .get("prefix")
            .cloned()
            .unwrap_or_else(|| link.actor_id.clone());
        let timeout_ms = match link.config.get("timeout_ms") {
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| format!("timeout_ms {v:?} is not a number of ms"))?,
            None => DEFAULT_TIMEOUT_MS,
        };
        let token_ok = |s: &str| validate_token(TokenKind::LinkName, s).is_ok();
        if !token_ok(&bucket) {
            return Err(format!(
                "bucket {bucket:?} must be ASCII letters, digits, '-' or '_'"
            ));
        }
        if !token_ok(&prefix) {
            return Err(format!(
                "prefix {prefix:?} must be ASCII letters, digits, '-' or '_'"
            ));
        }
        Ok(Self {
            bucket,
            prefix,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

/// The provider.
pub struct KeyvalueNats {
    nats: async_nats::Client,
    links: RwLock<HashMap<(String, String), LinkSettings>>,
    buckets: Mutex<HashMap<String, async_nats::jetstream::kv::Store>>,
}

fn fail(message: impl std::fmt::Display) -> KvResponse {
    KvResponse::Error {
        message: format!("keyvalue-nats: {message}"),
    }
}

fn encode_key(prefix: &str, key: &str) -> String {
    format!("{prefix}.{}", URL_SAFE_NO_PAD.encode(key))
}

fn decode_key(prefix: &str, stored: &str) -> Option<String> {
    let encoded = stored.strip_prefix(prefix)?.strip_prefix('.')?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

impl KeyvalueNats {
    /// A provider storing through `nats`.
    pub fn new(nats: async_nats::Client) -> Self {
        Self {
            nats,
            links: RwLock::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    async fn bucket(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<async_nats::jetstream::kv::Store, String> {
        let mut buckets = self.buckets.lock().await;
        if let Some(store) = buckets.get(name) {
            return Ok(store.clone());
        }
        let store =
            trellis_lattice_client::kv::open_or_create(&self.nats, name, BUCKET_HISTORY, timeout)
                .await
                .map_err(|e| e.to_string())?;
        buckets.insert(name.to_owned(), store.clone());
        Ok(store)
    }

    /// Runs one request for a link with `settings`.
    pub async fn execute(&self, settings: &LinkSettings, request: KvRequest) -> KvResponse {
        let store = match self.bucket(&settings.bucket, settings.timeout).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        match tokio::time::timeout(
            settings.timeout,
            self.run(&store, &settings.prefix, request),
        )
        .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(message)) => fail(message),
            Err(_) => fail(format!("timed out after {:?}", settings.timeout)),
        }
    }

    async fn run(
        &self,
        store: &async_nats::jetstream::kv::Store,
        prefix: &str,
        request: KvRequest,
    ) -> Result<KvResponse, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        Ok(match request {
            KvRequest::Get { key, .. } => {
                let value = store
                    .get(encode_key(prefix, &key))
                    .await
                    .map_err(|x| e(&x))?;
                KvResponse::Value {
                    value: value.map(|b| ByteBuf::from(b.to_vec())),
                }
            }
            KvRequest::Set { key, value, .. } => {
                store
                    .put(encode_key(prefix, &key), value.into_vec().into())
                    .await
                    .map_err(|x| e(&x))?;
                KvResponse::Done
            }
            KvRequest::Delete { key, .. } => {
                store
                    .purge(encode_key(prefix, &key))
                    .await
                    .map_err(|x| e(&x))?;
                KvResponse::Done
            }
            KvRequest::Exists { key, .. } => {
                let value = store
                    .get(encode_key(prefix, &key))
                    .await
                    .map_err(|x| e(&x))?;
                KvResponse::Exists {
                    exists: value.is_some(),
                }
            }
            KvRequest::ListKeys { cursor, .. } => {
                let mut keys: Vec<String> = store
                    .keys()
                    .await
                    .map_err(|x| e(&x))?
                    .try_filter_map(|k| futures::future::ready(Ok(decode_key(prefix, &k))))
                    .try_collect()
                    .await
                    .map_err(|x| e(&x))?;
                keys.sort();
                let start = usize::try_from(cursor.unwrap_or(0))
                    .unwrap_or(usize::MAX)
                    .min(keys.len());
                let end = (start + LIST_PAGE_SIZE).min(keys.len());
                let next = (end < keys.len()).then_some(end as u64);
                KvResponse::Keys {
                    keys: keys[start..end].to_vec(),
                    cursor: next,
                }
            }
            KvRequest::Increment { key, delta, .. } => KvResponse::Number {
                value: increment(store, &encode_key(prefix, &key), delta).await?,
            },
            KvRequest::GetMany { keys, .. } => {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    let value = store
                        .get(encode_key(prefix, &key))
                        .await
                        .map_err(|x| e(&x))?;
                    values.push((key, value.map(|b| ByteBuf::from(b.to_vec()))));
                }
                KvResponse::Values { values }
            }
            KvRequest::SetMany { entries, .. } => {
                for (key, value) in entries {
                    store
                        .put(encode_key(prefix, &key), value.into_vec().into())
                        .await
                        .map_err(|x| e(&x))?;
                }
                KvResponse::Done
            }
            KvRequest::DeleteMany { keys, .. } => {
                for key in keys {
                    store
                        .purge(encode_key(prefix, &key))
                        .await
                        .map_err(|x| e(&x))?;
                }
                KvResponse::Done
            }
        })
    }
}

/// Adds `delta` to the decimal number stored under `key` (0 when absent)
/// by compare-and-set.
async fn increment(
    store: &async_nats::jetstream::kv::Store,
    key: &str,
    delta: u64,
) -> Result<u64, String> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let entry = store.entry(key).await.map_err(|e| e.to_string())?;
        let (current, revision) = match &entry {
            Some(entry) if matches!(entry.operation, async_nats::jetstream::kv::Operation::Put) => {
                let text = std::str::from_utf8(&entry.value)
                    .map_err(|_| format!("the value of {key} is not a number"))?;
                let n = text
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("the value of {key} is not a number"))?;
                (n, Some(entry.revision))
            }
            Some(entry) => (0, Some(entry.revision)),
            None => (0, None),
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| "increment overflows u64".to_owned())?;
        let body = bytes::Bytes::from(next.to_string());
        let written = match revision {
            Some(revision) => store.update(key, body, revision).await.is_ok(),
            None => store.create(key, body).await.is_ok(),
        };
        if written {
            return Ok(next);
        }
    }
    Err(format!("too much contention on {key}"))
}

impl Provider for KeyvalueNats {
    async fn handle(&self, invocation: ProviderInvocation) -> Result<Vec<u8>, CallError> {
        if invocation.operation != OPERATION {
            return Err((
                RpcErrorKind::NotFound,
                format!("unknown operation {}", invocation.operation),
            ));
        }
        let link_name = invocation
            .origin
            .link_name
            .clone()
            .unwrap_or_else(|| trellis_protocol::DEFAULT_LINK_NAME.to_owned());
        let settings = self
            .links
            .read()
            .ok()
            .and_then(|l| {
                l.get(&(invocation.origin.id.clone(), link_name.clone()))
                    .cloned()
            })
            .ok_or_else(|| {
                (
                    RpcErrorKind::Denied,
                    format!("no link from {} on {link_name}", invocation.origin.id),
                )
            })?;
        let request: KvRequest = decode_msgpack(&invocation.payload, &DecodeLimits::default())
            .map_err(|e| (RpcErrorKind::BadRequest, e.to_string()))?;
        let response = self.execute(&settings, request).await;
        encode_msgpack(&response).map_err(|e| (RpcErrorKind::Failed, e.to_string()))
    }

    async fn put_link(&self, link: &LinkDefinition) -> Result<(), String> {
        let settings = LinkSettings::from_link(link)?;
        if let Ok(mut links) = self.links.write() {
            links.insert((link.actor_id.clone(), link.link_name.clone()), settings);
        }
        Ok(())
    }

    async fn delete_link(&self, link: &LinkDefinition) {
        if let Ok(mut links) = self.links.write() {
            links.remove(&(link.actor_id.clone(), link.link_name.clone()));
        }
    }

    async fn health(&self) -> HealthCheck {
        match self.nats.connection_state() {
            async_nats::connection::State::Connected => HealthCheck {
                healthy: true,
                message: String::new(),
            },
            other => HealthCheck {
                healthy: false,
                message: format!("NATS connection is {other}"),
            },
        }
    }
}

/// Runs the provider process: reads host data from stdin and serves.
pub fn run() -> std::process::ExitCode {
    trellis_provider_sdk::run(|ctx: Arc<ProviderContext>| async move {
        Ok(KeyvalueNats::new(ctx.nats().clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_stored_form() {
        for key in ["counter:visits", "ünïcödé key/with.dots", "", "a b"] {
            let stored = encode_key("MACTOR", key);
            assert!(
                stored
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=./".contains(c)),
                "{stored}"
            );
            assert_eq!(decode_key("MACTOR", &stored).as_deref(), Some(key));
            assert_eq!(decode_key("OTHER", &stored), None);
        }
    }
}
