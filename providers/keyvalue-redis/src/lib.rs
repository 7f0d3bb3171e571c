//! Trellis capability provider: `wasi:keyvalue` (store, atomics and batch)
//! on Redis.
//!
//! The provider implements the typed `wasi:keyvalue` contract
//! ([`trellis_protocol::contracts::keyvalue::Handler`]); the provider SDK
//! keeps its links, verifies invocations and dispatches them. Which Redis,
//! which keys and which timeout a call uses is set per link, by the link
//! definition's `config`.
//!
//! # Link configuration
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | `redis://127.0.0.1:6379` ([`DEFAULT_URL`]) | Redis to use: `redis://[user:password@]host[:port][/db]` or `redis+unix:///path/to/socket` |
//! | `prefix` | `{actor_id}:{link_name}:` | prepended to every key; two links see each other's keys only if they use the same Redis and the same prefix. An empty prefix (`""`) gives the link the whole database |
//! | `timeout_ms` | `2000` ([`DEFAULT_TIMEOUT_MS`]) | bound on each call, Redis round trips included, in ms; from 1 to 600 000 |
//!
//! Other keys are ignored (the actor can read them through `wasi:config`).
//!
//! Links that name the same `url` share one multiplexed
//! [`ConnectionManager`], which reconnects by itself when Redis comes back
//! after an outage.
//!
//! # Storage
//!
//! - A key `k` is stored under the Redis key `{prefix}k`; values are stored
//!   as they are (binary-safe). The bucket identifier in a request is not
//!   part of the key: in Trellis the bucket an actor opens *is* the link
//!   name, so the link (and its prefix) already stands for it.
//! - `get`, `set`, `delete`, `exists` are `GET`, `SET`, `DEL`, `EXISTS`;
//!   `increment` is `INCRBY` (atomic; a missing key counts from 0; the
//!   number is kept as decimal text); `get-many` is one `MGET`, `set-many`
//!   one `MSET` (atomic), `delete-many` one `DEL` of every key.
//! - `list-keys` lists the keys under the prefix in sorted (byte) order,
//!   [`LIST_PAGE_SIZE`] per page. **The cursor is the index of the first key
//!   of the page** in that sorted listing: `None` (or `0`) starts at the
//!   beginning, and the answer's cursor is the index of the next page, or
//!   `None` after the last key. Each page `SCAN`s the prefix (`MATCH
//!   {prefix}*`), so a listing is consistent for keys that do not change
//!   meanwhile; keys added or removed between pages may shift the listing.
//!   A prefix holding more than [`MAX_LISTED_KEYS`] keys cannot be listed.
//!   Redis keys under the prefix that are not UTF-8 are left out.
//!
//! # Errors
//!
//! - A call from an actor with no link to this provider (under the
//!   invocation's link name), or over a link whose configuration is invalid
//!   (a malformed `url`, a `timeout_ms` that is not a number of ms from 1 to
//!   600 000), is denied: the actor sees `access-denied`, and the refusal is
//!   logged when the link is put.
//! - Everything else is answered as `KvError::Other`, whose message starts
//!   with `keyvalue-redis:`:
//!   - `redis unavailable at {url}: …` when Redis cannot be reached or the
//!     connection dropped (the next calls reconnect);
//!   - `redis did not answer within {n} ms at {url}` when a call exceeds
//!     `timeout_ms`;
//!   - `redis error: …` for an error Redis reports, e.g. `increment` of a
//!     value that is not an integer;
//!   - `increment …` when the delta or the result does not fit (Redis
//!     counts in signed 64-bit; the contract in unsigned);
//!   - `too many keys to list …` beyond [`MAX_LISTED_KEYS`].
//!
//! Passwords in URLs never appear in messages or logs.
//!
//! # Health
//!
//! A health check `PING`s every Redis a current link uses, concurrently,
//! each within [`HEALTH_TIMEOUT`]. It is unhealthy, with a message naming
//! each failing URL, when any does not answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{self as kv, KeyPage, KeyValue, KvError};
use trellis_protocol::contracts::{Answer, Contract};
use trellis_protocol::{LinkDefinition, RpcError};
use trellis_provider_sdk::{Call, HealthCheck, Provider, parse_number};

/// The contract this provider serves.
pub const CONTRACT_ID: &str = KeyValue::ID;
/// Redis used when a link names none.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// Per-call timeout when a link sets none, in ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Largest `timeout_ms` accepted (10 minutes).
pub const MAX_TIMEOUT_MS: u64 = 600_000;
pub use trellis_protocol::contracts::keyvalue::LIST_PAGE_SIZE;
/// Most keys under one prefix that `list-keys` accepts to list.
pub const MAX_LISTED_KEYS: usize = 100_000;
/// `COUNT` hint of each `SCAN` round trip.
pub const SCAN_COUNT: usize = 1_000;
/// Bound on each `PING` of a health check.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on each attempt to open a connection to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts to reconnect, after the first, before a call is failed (the
/// next call starts over).
pub const RECONNECT_RETRIES: usize = 2;

/// The settings of one link, read from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// Redis URL (`url`).
    pub url: String,
    /// Key prefix (`prefix`).
    pub prefix: String,
    /// Bound on each call (`timeout_ms`).
    pub timeout: Duration,
}

impl LinkSettings {
    /// Reads a link's configuration, applying the defaults.
    ///
    /// # Errors
    ///
    /// A message when a value is invalid: an empty or malformed `url`, a
    /// `timeout_ms` that is not a whole number from 1 to [`MAX_TIMEOUT_MS`].
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::{ContractId, LinkDefinition};
    /// use trellis_provider_keyvalue_redis::LinkSettings;
    ///
    /// let link = LinkDefinition::new("MACTOR", ContractId::new("wasi:keyvalue").unwrap(), "default", "VPROVIDER");
    /// let settings = LinkSettings::from_link(&link).unwrap();
    /// assert_eq!(settings.url, "redis://127.0.0.1:6379");
    /// assert_eq!(settings.prefix, "MACTOR:default:");
    /// assert_eq!(settings.timeout.as_millis(), 2000);
    ///
    /// let bad = link.with_config("timeout_ms", "soon");
    /// assert!(LinkSettings::from_link(&bad).is_err());
    /// ```
    pub fn from_link(link: &LinkDefinition) -> Result<Self, String> {
        let url = link
            .config
            .get("url")
            .map_or(DEFAULT_URL, String::as_str)
            .trim()
            .to_owned();
        if url.is_empty() {
            return Err("url is empty".to_owned());
        }
        if let Err(e) = redis::Client::open(url.as_str()) {
            return Err(format!("url {} is not a Redis URL: {e}", redact_url(&url)));
        }
        let prefix = link
            .config
            .get("prefix")
            .cloned()
            .unwrap_or_else(|| default_prefix(&link.actor_id, &link.link_name));
        let timeout_ms = parse_number(
            &link.config,
            "timeout_ms",
            DEFAULT_TIMEOUT_MS,
            1..=MAX_TIMEOUT_MS,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            url,
            prefix,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

/// The prefix of a link that sets none: `{actor_id}:{link_name}:`.
pub fn default_prefix(actor_id: &str, link_name: &str) -> String {
    format!("{actor_id}:{link_name}:")
}

/// `url` fit for messages and logs: credentials and query are replaced.
///
/// # Examples
///
/// ```
/// use trellis_provider_keyvalue_redis::redact_url;
///
/// assert_eq!(redact_url("redis://user:secret@cache:6379/2"), "redis://***@cache:6379/2");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let (url, had_query) = match url.split_once('?') {
        Some((base, _)) => (base, true),
        None => (url, false),
    };
    let query = if had_query { "?***" } else { "" };
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}{query}", &rest[at + 1..]);
        }
    }
    format!("{url}{query}")
}

/// Escapes the glob characters of Redis `MATCH` patterns in `literal`.
fn escape_glob(literal: &str) -> String {
    let mut pattern = String::with_capacity(literal.len() + 1);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// Why a request failed, before it is turned into a message.
enum Failure {
    Redis(redis::RedisError),
    Invalid(String),
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// A usable link: its settings and the connection to its Redis.
pub struct Binding {
    settings: LinkSettings,
    /// `settings.url`, redacted.
    shown_url: String,
    connection: ConnectionManager,
}

impl Binding {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.settings.prefix)
    }

    /// Runs `call` bounded by the link's timeout, turning failures into
    /// `KvError::Other` messages that start with `keyvalue-redis:`.
    async fn run<T>(&self, call: impl Future<Output = Result<T, Failure>>) -> Result<T, KvError> {
        let timeout = self.settings.timeout;
        let message = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(Failure::Invalid(message))) => message,
            Ok(Err(Failure::Redis(e))) => describe(&e, &self.shown_url),
            Err(_) => format!(
                "redis did not answer within {} ms at {}",
                timeout.as_millis(),
                self.shown_url
            ),
        };
        Err(KvError::other(format!("keyvalue-redis: {message}")))
    }

    /// A command on this link's connection.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Failure> {
        let mut c = self.connection.clone();
        Ok(cmd.query_async(&mut c).await?)
    }

    /// One page of the sorted listing of keys under the prefix, starting
    /// at index `cursor`.
    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage, Failure> {
        let c = &mut self.connection.clone();
        let prefix = self.settings.prefix.as_bytes();
        let pattern = format!("{}*", escape_glob(&self.settings.prefix));
        let mut keys: Vec<String> = Vec::new();
        let mut scan: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(scan)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(c)
                .await?;
            keys.extend(batch.into_iter().filter_map(|raw| {
                let rest = raw.strip_prefix(prefix)?;
                String::from_utf8(rest.to_vec()).ok()
            }));
            if keys.len() > MAX_LISTED_KEYS {
                // SCAN may repeat keys; only refuse if they are really too many.
                keys.sort_unstable();
                keys.dedup();
                if keys.len() > MAX_LISTED_KEYS {
                    return Err(Failure::Invalid(format!(
                        "too many keys to list under the prefix (more than {MAX_LISTED_KEYS})"
                    )));
                }
            }
            if next == 0 {
                break;
            }
            scan = next;
        }
        // SCAN may return a key more than once, and in no particular order.
        keys.sort_unstable();
        keys.dedup();
        Ok(KeyPage::of_sorted(keys, cursor))
    }
}

/// A message for a Redis error: `redis unavailable …` when Redis could not
/// be reached, `redis error: …` when it answered with an error.
fn describe(e: &redis::RedisError, shown_url: &str) -> String {
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout() {
        format!("redis unavailable at {shown_url}: {e}")
    } else {
        format!("redis error: {e}")
    }
}

/// One connection manager per distinct URL that a current link uses, with
/// the number of links using it.
#[derive(Default)]
struct Connections {
    by_url: HashMap<String, (ConnectionManager, usize)>,
}

impl Connections {
    /// The connection manager of `url`, created (without connecting yet)
    /// the first time, counting one more user.
    fn acquire(&mut self, url: &str) -> Result<ConnectionManager, String> {
        if let Some((c, users)) = self.by_url.get_mut(url) {
            *users += 1;
            return Ok(c.clone());
        }
        let shown = redact_url(url);
        let client =
            redis::Client::open(url).map_err(|e| format!("url {shown} is not a Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Each call is bounded by its link's own timeout instead.
            .set_response_timeout(None)
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("cannot set up a connection to {shown}: {e}"))?;
        self.by_url.insert(url.to_owned(), (connection.clone(), 1));
        Ok(connection)
    }

    /// One user less of `url`; the manager is dropped with the last.
    fn release(&mut self, url: &str) {
        if let Some((_, users)) = self.by_url.get_mut(url) {
            *users = users.saturating_sub(1);
            if *users == 0 {
                self.by_url.remove(url);
            }
        }
    }
}

/// The `keyvalue-redis` provider: a connection per Redis URL in use.
#[derive(Default)]
pub struct KeyvalueRedis {
    connections: Mutex<Connections>,
}

impl KeyvalueRedis {
    /// A provider with no links yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many distinct Redis URLs the current links use (one connection
    /// manager each).
    pub fn connection_count(&self) -> usize {
        self.connections().by_url.len()
    }
}

impl Provider for KeyvalueRedis {
    type Link = Binding;

    async fn bind(&self, link: &LinkDefinition) -> Result<Binding, String> {
        let contract = link.contract_id.to_string();
        if contract != CONTRACT_ID {
            return Err(format!(
                "keyvalue-redis serves {CONTRACT_ID}, not {contract}"
            ));
        }
        let settings = LinkSettings::from_link(link)
            .map_err(|e| format!("invalid link configuration: {e}"))?;
        let connection = self.connections().acquire(&settings.url)?;
        tracing::debug!(
            actor = link.actor_id,
            url = redact_url(&settings.url),
            "redis link"
        );
        Ok(Binding {
            shown_url: redact_url(&settings.url),
            settings,
            connection,
        })
    }

    async fn unbind(&self, _link: &LinkDefinition, bound: Option<Arc<Binding>>) {
        if let Some(binding) = bound {
            self.connections().release(&binding.settings.url);
        }
    }

    async fn dispatch(&self, call: Call<'_, Binding>) -> Result<Vec<u8>, RpcError> {
        kv::dispatch(self, call.link, call.operation, call.payload, call.limits).await
    }

    async fn health(&self) -> HealthCheck {
        let connections: Vec<(String, ConnectionManager)> = self
            .connections()
            .by_url
            .iter()
            .map(|(url, (c, _))| (redact_url(url), c.clone()))
            .collect();
        let total = connections.len();
        let failures: Vec<String> =
            futures::future::join_all(connections.into_iter().map(|(url, mut c)| async move {
                match tokio::time::timeout(
                    HEALTH_TIMEOUT,
                    redis::cmd("PING").query_async::<String>(&mut c),
                )
                .await
                {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(format!("{url}: {e}")),
                    Err(_) => Some(format!(
                        "{url}: no answer to PING within {} ms",
                        HEALTH_TIMEOUT.as_millis()
                    )),
                }
            }))
            .await
            .into_iter()
            .flatten()
            .collect();
        if failures.is_empty() {
            HealthCheck {
                healthy: true,
                message: format!("{total} Redis server(s) answer PING"),
            }
        } else {
            HealthCheck {
                healthy: false,
                message: format!("redis unavailable: {}", failures.join("; ")),
            }
        }
    }
}

impl kv::Handler for KeyvalueRedis {
    type Link = Binding;

    async fn get(&self, b: &Binding, r: kv::Get) -> Answer<kv::Get> {
        let cmd = redis::cmd("GET").arg(b.key(&r.key)).clone();
        b.run(async {
            let value: Option<Vec<u8>> = b.query(&cmd).await?;
            Ok(value.map(ByteBuf::from))
        })
        .await
    }

    async fn set(&self, b: &Binding, r: kv::Set) -> Answer<kv::Set> {
        let cmd = redis::cmd("SET")
            .arg(b.key(&r.key))
            .arg(r.value.as_slice())
            .clone();
        b.run(b.query::<()>(&cmd)).await
    }

    async fn delete(&self, b: &Binding, r: kv::Delete) -> Answer<kv::Delete> {
        let cmd = redis::cmd("DEL").arg(b.key(&r.key)).clone();
        b.run(b.query::<()>(&cmd)).await
    }

    async fn exists(&self, b: &Binding, r: kv::Exists) -> Answer<kv::Exists> {
        let cmd = redis::cmd("EXISTS").arg(b.key(&r.key)).clone();
        b.run(async { Ok(b.query::<u64>(&cmd).await? > 0) }).await
    }

    async fn list_keys(&self, b: &Binding, r: kv::ListKeys) -> Answer<kv::ListKeys> {
        b.run(b.list_keys(r.cursor)).await
    }

    async fn increment(&self, b: &Binding, r: kv::Increment) -> Answer<kv::Increment> {
        b.run(async {
            let delta = i64::try_from(r.delta).map_err(|_| {
                Failure::Invalid(format!(
                    "increment by {} is more than Redis counts ({})",
                    r.delta,
                    i64::MAX
                ))
            })?;
            let cmd = redis::cmd("INCRBY").arg(b.key(&r.key)).arg(delta).clone();
            let value: i64 = b.query(&cmd).await?;
            u64::try_from(value).map_err(|_| {
                Failure::Invalid(format!(
                    "increment of {:?} gave {value}, which is not an unsigned number",
                    r.key
                ))
            })
        })
        .await
    }

    async fn get_many(&self, b: &Binding, r: kv::GetMany) -> Answer<kv::GetMany> {
        b.run(async {
            if r.keys.is_empty() {
                return Ok(vec![]);
            }
            let mut mget = redis::cmd("MGET");
            for key in &r.keys {
                mget.arg(b.key(key));
            }
            let found: Vec<Option<Vec<u8>>> = b.query(&mget).await?;
            if found.len() != r.keys.len() {
                return Err(Failure::Invalid(format!(
                    "redis answered {} values to a get-many of {} keys",
                    found.len(),
                    r.keys.len()
                )));
            }
            Ok(r.keys
                .into_iter()
                .zip(found)
                .map(|(k, v)| (k, v.map(ByteBuf::from)))
                .collect())
        })
        .await
    }

    async fn set_many(&self, b: &Binding, r: kv::SetMany) -> Answer<kv::SetMany> {
        if r.entries.is_empty() {
            return Ok(());
        }
        let mut mset = redis::cmd("MSET");
        for (key, value) in &r.entries {
            mset.arg(b.key(key)).arg(value.as_slice());
        }
        b.run(b.query::<()>(&mset)).await
    }

    async fn delete_many(&self, b: &Binding, r: kv::DeleteMany) -> Answer<kv::DeleteMany> {
        if r.keys.is_empty() {
            return Ok(());
        }
        let mut del = redis::cmd("DEL");
        for key in &r.keys {
            del.arg(b.key(key));
        }
        b.run(b.query::<()>(&del)).await
    }
}

/// Runs the provider process: reads host data from stdin and serves.
pub fn run() -> std::process::ExitCode {
    trellis_provider_sdk::run(|_ctx| async { Ok(KeyvalueRedis::new()) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use trellis_protocol::ContractId;

    fn link() -> LinkDefinition {
        LinkDefinition::new(
            "MACTOR",
            ContractId::new(CONTRACT_ID).unwrap(),
            "cache",
            "VPROVIDER",
        )
    }

    #[test]
    fn defaults_apply_when_the_link_sets_nothing() {
        let s = LinkSettings::from_link(&link()).unwrap();
        assert_eq!(
            s,
            LinkSettings {
                url: DEFAULT_URL.into(),
                prefix: "MACTOR:cache:".into(),
                timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            }
        );
    }

    #[test]
    fn configured_values_are_read_and_bad_ones_refused() {
        let s = LinkSettings::from_link(
            &link()
                .with_config("url", "redis://10.0.0.1:6380/3")
                .with_config("prefix", "")
                .with_config("timeout_ms", "150"),
        )
        .unwrap();
        assert_eq!(s.url, "redis://10.0.0.1:6380/3");
        assert_eq!(s.prefix, "");
        assert_eq!(s.timeout, Duration::from_millis(150));
        for (key, value) in [
            ("timeout_ms", "0"),
            ("timeout_ms", "-5"),
            ("timeout_ms", "1s"),
            ("timeout_ms", "600001"),
            ("url", ""),
            ("url", "http://example.com"),
        ] {
            assert!(
                LinkSettings::from_link(&link().with_config(key, value)).is_err(),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn passwords_never_show_in_urls() {
        for url in [
            "redis://:hunter2@host:1/0",
            "redis://user:hunter2@host",
            "redis://host/0?password=hunter2",
        ] {
            assert!(!redact_url(url).contains("hunter2"), "{url}");
        }
        assert_eq!(redact_url("redis://a@b/c@d"), "redis://***@b/c@d");
    }

    #[test]
    fn glob_characters_of_a_prefix_are_escaped() {
        assert_eq!(escape_glob("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
        assert_eq!(escape_glob("MACTOR:default:"), "MACTOR:default:");
    }
}
