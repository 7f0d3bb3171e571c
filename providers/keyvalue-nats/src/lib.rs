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
//! Every failure is answered as `KvError::Other` with a message
//! (`keyvalue-nats: …`): an unreachable JetStream, a timeout, a value that
//! is not a number for `increment`. An actor without a link (or with a link
//! whose configuration is invalid) is denied: it sees `access-denied`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt as _;
use serde_bytes::ByteBuf;
use tokio::sync::Mutex;
use trellis_protocol::contracts::Answer;
use trellis_protocol::contracts::keyvalue::{self as kv, KeyPage, KvError};
use trellis_protocol::subject::{TokenKind, validate_token};
use trellis_protocol::{LinkDefinition, RpcError};
use trellis_provider_sdk::{Call, HealthCheck, Provider, ProviderContext, parse_number};

/// Bucket used when a link names none.
pub const DEFAULT_BUCKET: &str = "trellis_keyvalue";
/// Per-call timeout when a link sets none, in ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Largest `timeout_ms` accepted (10 minutes).
pub const MAX_TIMEOUT_MS: u64 = 600_000;
pub use trellis_protocol::contracts::keyvalue::LIST_PAGE_SIZE;
/// Compare-and-set attempts of one `increment` before it gives up.
pub const MAX_CAS_ATTEMPTS: usize = 64;
/// Revisions kept per key in buckets this provider creates.
pub const BUCKET_HISTORY: i64 = 1;
/// Most bytes a bucket this provider creates holds, every revision
/// counted; puts beyond it fail. Defaults to 1 GiB.
pub const BUCKET_MAX_BYTES: i64 = 1024 * 1024 * 1024;

fn bucket_settings() -> trellis_lattice_client::kv::BucketSettings {
    trellis_lattice_client::kv::BucketSettings {
        history: BUCKET_HISTORY,
        max_bytes: BUCKET_MAX_BYTES,
    }
}

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
        let timeout_ms = parse_number(
            &link.config,
            "timeout_ms",
            DEFAULT_TIMEOUT_MS,
            1..=MAX_TIMEOUT_MS,
        )
        .map_err(|e| e.to_string())?;
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
    buckets: Mutex<HashMap<String, async_nats::jetstream::kv::Store>>,
}

fn fail(message: impl std::fmt::Display) -> KvError {
    KvError::other(format!("keyvalue-nats: {message}"))
}

type Store = async_nats::jetstream::kv::Store;

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
        let store = trellis_lattice_client::kv::open_or_create(
            &self.nats,
            name,
            bucket_settings(),
            timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        buckets.insert(name.to_owned(), store.clone());
        Ok(store)
    }

    /// Runs `call` on the bucket of the link with `settings`, within the
    /// link's timeout, turning failures into `keyvalue-nats: …` errors.
    async fn run<T, F, Fut>(&self, settings: &LinkSettings, call: F) -> Result<T, KvError>
    where
        F: FnOnce(Store, String) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let store = self
            .bucket(&settings.bucket, settings.timeout)
            .await
            .map_err(fail)?;
        match tokio::time::timeout(settings.timeout, call(store, settings.prefix.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(fail(message)),
            Err(_) => Err(fail(format!("timed out after {:?}", settings.timeout))),
        }
    }
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn get(store: &Store, prefix: &str, key: &str) -> Result<Option<ByteBuf>, String> {
    let value = store.get(encode_key(prefix, key)).await.map_err(text)?;
    Ok(value.map(|b| ByteBuf::from(b.to_vec())))
}

async fn put(store: &Store, prefix: &str, key: &str, value: ByteBuf) -> Result<(), String> {
    store
        .put(encode_key(prefix, key), value.into_vec().into())
        .await
        .map_err(text)?;
    Ok(())
}

async fn purge(store: &Store, prefix: &str, key: &str) -> Result<(), String> {
    store.purge(encode_key(prefix, key)).await.map_err(text)
}

impl kv::Handler for KeyvalueNats {
    type Link = LinkSettings;

    async fn get(&self, link: &LinkSettings, r: kv::Get) -> Answer<kv::Get> {
        self.run(link, |s, p| async move { get(&s, &p, &r.key).await })
            .await
    }

    async fn set(&self, link: &LinkSettings, r: kv::Set) -> Answer<kv::Set> {
        self.run(
            link,
            |s, p| async move { put(&s, &p, &r.key, r.value).await },
        )
        .await
    }

    async fn delete(&self, link: &LinkSettings, r: kv::Delete) -> Answer<kv::Delete> {
        self.run(link, |s, p| async move { purge(&s, &p, &r.key).await })
            .await
    }

    async fn exists(&self, link: &LinkSettings, r: kv::Exists) -> Answer<kv::Exists> {
        self.run(link, |s, p| async move {
            Ok(get(&s, &p, &r.key).await?.is_some())
        })
        .await
    }

    async fn list_keys(&self, link: &LinkSettings, r: kv::ListKeys) -> Answer<kv::ListKeys> {
        self.run(link, |store, prefix| async move {
            let mut keys: Vec<String> = store
                .keys()
                .await
                .map_err(text)?
                .try_filter_map(|k| futures::future::ready(Ok(decode_key(&prefix, &k))))
                .try_collect()
                .await
                .map_err(text)?;
            keys.sort();
            Ok(KeyPage::of_sorted(keys, r.cursor))
        })
        .await
    }

    async fn increment(&self, link: &LinkSettings, r: kv::Increment) -> Answer<kv::Increment> {
        self.run(link, |s, p| async move {
            increment(&s, &encode_key(&p, &r.key), r.delta).await
        })
        .await
    }

    async fn get_many(&self, link: &LinkSettings, r: kv::GetMany) -> Answer<kv::GetMany> {
        self.run(link, |s, p| async move {
            let mut values = Vec::with_capacity(r.keys.len());
            for key in r.keys {
                let value = get(&s, &p, &key).await?;
                values.push((key, value));
            }
            Ok(values)
        })
        .await
    }

    async fn set_many(&self, link: &LinkSettings, r: kv::SetMany) -> Answer<kv::SetMany> {
        self.run(link, |s, p| async move {
            for (key, value) in r.entries {
                put(&s, &p, &key, value).await?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, link: &LinkSettings, r: kv::DeleteMany) -> Answer<kv::DeleteMany> {
        self.run(link, |s, p| async move {
            for key in r.keys {
                purge(&s, &p, &key).await?;
            }
            Ok(())
        })
        .await
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
    type Link = LinkSettings;

    async fn bind(&self, link: &LinkDefinition) -> Result<LinkSettings, String> {
        LinkSettings::from_link(link)
    }

    async fn dispatch(&self, call: Call<'_, LinkSettings>) -> Result<Vec<u8>, RpcError> {
        kv::dispatch(self, call.link, call.operation, call.payload, call.limits).await
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
