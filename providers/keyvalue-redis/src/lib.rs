//! Trellis capability provider: `wasi:keyvalue` (store, atomics and batch)
//! on Redis.
//!
//! The provider serves the operation `wasi:keyvalue/store.call`: each
//! invocation carries a msgpack [`KvRequest`] and is answered with a
//! [`KvResponse`]. Which Redis, which keys and which timeout it uses is
//! set per link, by the link definition's `config`.
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
//! - An invocation from an actor with no link to this provider (under the
//!   invocation's link name) is refused with an `RpcErrorKind::Denied`
//!   invocation error (`no link …`); an operation other than
//!   `wasi:keyvalue/store.call` gets `NotFound`, an undecodable payload
//!   `BadRequest`.
//! - Everything else is answered as [`KvResponse::Error`], whose message
//!   starts with `keyvalue-redis:`:
//!   - `redis unavailable at {url}: …` when Redis cannot be reached or the
//!     connection dropped (the next calls reconnect);
//!   - `redis did not answer within {n} ms at {url}` when a call exceeds
//!     `timeout_ms`;
//!   - `redis error: …` for an error Redis reports, e.g. `increment` of a
//!     value that is not an integer;
//!   - `invalid link configuration: …` for every call through a link whose
//!     configuration is invalid (a malformed `url`, a `timeout_ms` that is
//!     not a number of ms); the link is also reported as refused in the
//!     provider's log when it is put;
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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{KvRequest, KvResponse, OPERATION};
use trellis_protocol::{
    DEFAULT_LINK_NAME, DecodeLimits, LinkDefinition, RpcErrorKind, decode_msgpack, encode_msgpack,
};
use trellis_provider_sdk::{CallError, HealthCheck, Provider, ProviderInvocation};

/// The contract this provider serves.
pub const CONTRACT_ID: &str = "wasi:keyvalue";
/// Redis used when a link names none.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// Per-call timeout when a link sets none, in ms.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// Largest `timeout_ms` accepted (10 minutes).
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// Keys per `list-keys` page.
pub const LIST_PAGE_SIZE: usize = 1_000;
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
        let timeout_ms = match link.config.get("timeout_ms") {
            None => DEFAULT_TIMEOUT_MS,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => ms,
                _ => {
                    return Err(format!(
                        "timeout_ms {v:?} is not a whole number of ms from 1 to {MAX_TIMEOUT_MS}"
                    ));
                }
            },
        };
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

fn fail(message: impl std::fmt::Display) -> KvResponse {
    KvResponse::Error {
        message: format!("keyvalue-redis: {message}"),
    }
}

/// A usable link: its settings and the connection to its Redis.
struct Binding {
    settings: LinkSettings,
    /// `settings.url`, redacted.
    shown_url: String,
    connection: ConnectionManager,
}

impl Binding {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.settings.prefix)
    }

    /// Runs `request`, bounded by the link's timeout; never fails, errors
    /// are answered as [`KvResponse::Error`].
    async fn execute(&self, request: KvRequest) -> KvResponse {
        let timeout = self.settings.timeout;
        match tokio::time::timeout(timeout, self.run(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(Failure::Invalid(message))) => fail(message),
            Ok(Err(Failure::Redis(e))) => fail(describe(&e, &self.shown_url)),
            Err(_) => fail(format!(
                "redis did not answer within {} ms at {}",
                timeout.as_millis(),
                self.shown_url
            )),
        }
    }

    async fn run(&self, request: KvRequest) -> Result<KvResponse, Failure> {
        let mut c = self.connection.clone();
        Ok(match request {
            KvRequest::Get { key, .. } => {
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(self.key(&key))
                    .query_async(&mut c)
                    .await?;
                KvResponse::Value {
                    value: value.map(ByteBuf::from),
                }
            }
            KvRequest::Set { key, value, .. } => {
                redis::cmd("SET")
                    .arg(self.key(&key))
                    .arg(value.as_slice())
                    .exec_async(&mut c)
                    .await?;
                KvResponse::Done
            }
            KvRequest::Delete { key, .. } => {
                redis::cmd("DEL")
                    .arg(self.key(&key))
                    .exec_async(&mut c)
                    .await?;
                KvResponse::Done
            }
            KvRequest::Exists { key, .. } => {
                let count: u64 = redis::cmd("EXISTS")
                    .arg(self.key(&key))
                    .query_async(&mut c)
                    .await?;
                KvResponse::Exists { exists: count > 0 }
            }
            KvRequest::ListKeys { cursor, .. } => self.list_keys(&mut c, cursor).await?,
            KvRequest::Increment { key, delta, .. } => {
                let delta = i64::try_from(delta).map_err(|_| {
                    Failure::Invalid(format!(
                        "increment by {delta} is more than Redis counts ({})",
                        i64::MAX
                    ))
                })?;
                let value: i64 = redis::cmd("INCRBY")
                    .arg(self.key(&key))
                    .arg(delta)
                    .query_async(&mut c)
                    .await?;
                let value = u64::try_from(value).map_err(|_| {
                    Failure::Invalid(format!(
                        "increment of {key:?} gave {value}, which is not an unsigned number"
                    ))
                })?;
                KvResponse::Number { value }
            }
            KvRequest::GetMany { keys, .. } => {
                if keys.is_empty() {
                    return Ok(KvResponse::Values { values: vec![] });
                }
                let mut mget = redis::cmd("MGET");
                for key in &keys {
                    mget.arg(self.key(key));
                }
                let found: Vec<Option<Vec<u8>>> = mget.query_async(&mut c).await?;
                if found.len() != keys.len() {
                    return Err(Failure::Invalid(format!(
                        "redis answered {} values to a get-many of {} keys",
                        found.len(),
                        keys.len()
                    )));
                }
                KvResponse::Values {
                    values: keys
                        .into_iter()
                        .zip(found)
                        .map(|(k, v)| (k, v.map(ByteBuf::from)))
                        .collect(),
                }
            }
            KvRequest::SetMany { entries, .. } => {
                if entries.is_empty() {
                    return Ok(KvResponse::Done);
                }
                let mut mset = redis::cmd("MSET");
                for (key, value) in &entries {
                    mset.arg(self.key(key)).arg(value.as_slice());
                }
                mset.exec_async(&mut c).await?;
                KvResponse::Done
            }
            KvRequest::DeleteMany { keys, .. } => {
                if keys.is_empty() {
                    return Ok(KvResponse::Done);
                }
                let mut del = redis::cmd("DEL");
                for key in &keys {
                    del.arg(self.key(key));
                }
                del.exec_async(&mut c).await?;
                KvResponse::Done
            }
        })
    }

    /// One page of the sorted listing of keys under the prefix, starting
    /// at index `cursor`.
    async fn list_keys(
        &self,
        c: &mut ConnectionManager,
        cursor: Option<u64>,
    ) -> Result<KvResponse, Failure> {
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
        let start = usize::try_from(cursor.unwrap_or(0))
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let end = start.saturating_add(LIST_PAGE_SIZE).min(keys.len());
        let next = (end < keys.len()).then_some(end as u64);
        keys.truncate(end);
        keys.drain(..start);
        Ok(KvResponse::Keys { keys, cursor: next })
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

/// What a link put into the provider: usable, or why not.
struct LinkEntry {
    provider_id: String,
    binding: Result<Arc<Binding>, String>,
}

#[derive(Default)]
struct State {
    /// Links by (actor id, link name).
    links: HashMap<(String, String), LinkEntry>,
    /// One connection manager per distinct URL that a current link uses.
    connections: HashMap<String, ConnectionManager>,
}

impl State {
    /// The connection manager of `url`, created (without connecting yet)
    /// the first time.
    fn connection(&mut self, url: &str) -> Result<ConnectionManager, String> {
        if let Some(c) = self.connections.get(url) {
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
        self.connections.insert(url.to_owned(), connection.clone());
        Ok(connection)
    }

    /// Drops the connection managers no link uses any more.
    fn prune(&mut self) {
        let links = &self.links;
        self.connections.retain(|url, _| {
            links
                .values()
                .any(|l| matches!(&l.binding, Ok(b) if b.settings.url == *url))
        });
    }
}

/// The `keyvalue-redis` provider: links, and a connection per Redis URL.
#[derive(Default)]
pub struct KeyvalueRedis {
    state: Mutex<State>,
}

impl KeyvalueRedis {
    /// A provider with no links yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many distinct Redis URLs the current links use (one connection
    /// manager each).
    pub fn connection_count(&self) -> usize {
        self.state().connections.len()
    }

    /// The settings of the link (`actor_id`, `link_name`), if it is
    /// known and its configuration valid.
    pub fn link_settings(&self, actor_id: &str, link_name: &str) -> Option<LinkSettings> {
        let state = self.state();
        let entry = state
            .links
            .get(&(actor_id.to_owned(), link_name.to_owned()))?;
        entry.binding.as_ref().ok().map(|b| b.settings.clone())
    }
}

impl Provider for KeyvalueRedis {
    async fn handle(&self, invocation: ProviderInvocation) -> Result<Vec<u8>, CallError> {
        if invocation.operation != OPERATION {
            return Err((
                RpcErrorKind::NotFound,
                format!(
                    "keyvalue-redis serves {OPERATION}, not {:?}",
                    invocation.operation
                ),
            ));
        }
        let actor_id = &invocation.origin.id;
        let link_name = invocation
            .origin
            .link_name
            .as_deref()
            .unwrap_or(DEFAULT_LINK_NAME);
        let binding = self
            .state()
            .links
            .get(&(actor_id.clone(), link_name.to_owned()))
            .map(|entry| entry.binding.clone())
            .ok_or_else(|| {
                (
                    RpcErrorKind::Denied,
                    format!(
                        "no link from actor {actor_id} under link name {link_name} to this provider"
                    ),
                )
            })?;
        let request: KvRequest = decode_msgpack(&invocation.payload, &DecodeLimits::default())
            .map_err(|e| {
                (
                    RpcErrorKind::BadRequest,
                    format!("cannot decode the key-value request: {e}"),
                )
            })?;
        let response = match binding {
            Ok(binding) => binding.execute(request).await,
            Err(message) => fail(format!("invalid link configuration: {message}")),
        };
        encode_msgpack(&response).map_err(|e| {
            (
                RpcErrorKind::Failed,
                format!("cannot encode the key-value response: {e}"),
            )
        })
    }

    async fn put_link(&self, link: &LinkDefinition) -> Result<(), String> {
        let contract = link.contract_id.to_string();
        if contract != CONTRACT_ID {
            return Err(format!(
                "keyvalue-redis serves {CONTRACT_ID}, not {contract}"
            ));
        }
        let mut state = self.state();
        let binding = LinkSettings::from_link(link).and_then(|settings| {
            let connection = state.connection(&settings.url)?;
            Ok(Arc::new(Binding {
                shown_url: redact_url(&settings.url),
                settings,
                connection,
            }))
        });
        let outcome = match &binding {
            Ok(b) => {
                tracing::info!(
                    actor = link.actor_id,
                    link_name = link.link_name,
                    url = b.shown_url,
                    "link put"
                );
                Ok(())
            }
            Err(e) => Err(format!("invalid link configuration: {e}")),
        };
        state.links.insert(
            (link.actor_id.clone(), link.link_name.clone()),
            LinkEntry {
                provider_id: link.provider_id.clone(),
                binding,
            },
        );
        state.prune();
        outcome
    }

    async fn delete_link(&self, link: &LinkDefinition) {
        let mut state = self.state();
        let key = (link.actor_id.clone(), link.link_name.clone());
        if state
            .links
            .get(&key)
            .is_some_and(|entry| entry.provider_id == link.provider_id)
        {
            state.links.remove(&key);
            state.prune();
            tracing::info!(
                actor = link.actor_id,
                link_name = link.link_name,
                "link deleted"
            );
        }
    }

    async fn health(&self) -> HealthCheck {
        let connections: Vec<(String, ConnectionManager)> = self
            .state()
            .connections
            .iter()
            .map(|(url, c)| (redact_url(url), c.clone()))
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

    async fn shutdown(&self) {
        let mut state = self.state();
        state.links.clear();
        state.connections.clear();
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
