//! Trellis capability provider: `trellis:sqldb` on PostgreSQL.
//!
//! The `sqldb-postgres` provider serves the `trellis:sqldb/query` interface
//! (`interfaces/wit/sqldb.wit`) to linked actors: each call runs one SQL
//! statement, with positional parameters (`$1`, `$2`, ...) bound by the
//! server and never spliced into the SQL, on a pooled connection, in its own
//! implicit transaction. It uses tokio-postgres with deadpool-postgres.
//!
//! # Link configuration
//!
//! Each link definition (actor → this provider, link name `default`) carries
//! its database in `LinkDefinition.config`:
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `url` | (required) | PostgreSQL connection string, as a URL (`postgres://user:password@host:5432/db`) or as `key=value` pairs (`host=… user=… dbname=…`). |
//! | `tls` | `disable` | `disable`: plain TCP. `require`: TLS (rustls), the server's certificate verified against the Mozilla root certificates (webpki-roots) and its name against the host dialled, as libpq's `verify-full` does. A server with a private CA or a self-signed certificate cannot be used with `require`. This key decides; an `sslmode` in `url` is overridden. |
//! | `pool_size` | `8` | Most connections the link's pool opens (1 to 256). |
//! | `statement_timeout_ms` | `5000` | PostgreSQL `statement_timeout` of every pooled connection, in milliseconds (1 to 3,600,000). A whole call (waiting for a connection, preparing, running, reading the rows) is also cut off by the provider after this plus 1 s. Keep it below the host's provider call timeout (10 s by default), or the host gives up first. |
//!
//! Other keys are ignored (the actor reads its link's configuration too and
//! may keep its own keys there). A link whose configuration is invalid
//! (no `url`, a `url` that does not parse, a bad `tls`, `pool_size` or
//! `statement_timeout_ms`) is refused: the SDK logs why, and the actor's
//! calls are denied with that reason until a valid link replaces it.
//! Deleting the link denies its calls again.
//!
//! Links with the same `url`, `tls`, `pool_size` and `statement_timeout_ms`
//! share one pool. (The timeout belongs to the key because it is a setting
//! of the pooled connections themselves.) Connections open on first use, not
//! when the link is put; a pool no link uses any more is closed.
//!
//! Every checkout of a pooled connection starts from a clean session
//! (`ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL;
//! UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD
//! SEQUENCES`: deadpool's `Clean` recycling after a `ROLLBACK`), so a `SET`,
//! a temporary table, an advisory lock or an open transaction from one call
//! (perhaps another actor's) never leaks into the next. Transaction control
//! statements therefore have no lasting effect: a transaction an actor
//! opens with `BEGIN` is rolled back before its connection is used again,
//! and PostgreSQL ends a session left idle in a transaction for longer than
//! `statement_timeout_ms` (`idle_in_transaction_session_timeout`), so it
//! holds no locks meanwhile. Each call is its own implicit transaction.
//! Prepared statements survive this: each connection caches up to 256 of
//! them (`prepare_cached`) and empties its cache when full. A cached
//! statement whose result columns changed (after `ALTER TABLE`) is prepared
//! again transparently.
//!
//! # Operations
//!
//! - `trellis:sqldb/query.query`: payload `SqlRequest { statement, params }`
//!   (msgpack), answer `Result<SqlRows, SqlError>`. `SqlRows.columns` gives
//!   each column's name and PostgreSQL type name (`int4`, `timestamptz`,
//!   `_int4` for `int4[]`, an enum's own name; a column of a domain type
//!   shows its base type, as PostgreSQL reports it). The result may
//!   hold at most 8 MiB of values (and an answer through NATS must also fit
//!   the server's `max_payload`, 1 MiB by default).
//! - `trellis:sqldb/query.execute`: same payload, answer `Result<u64,
//!   SqlError>`, the rows the statement affected (0 for DDL).
//!
//! # Type mapping
//!
//! Results map each PostgreSQL type to its `SqlValue` case; SQL `NULL` of
//! any type is `Null`.
//!
//! | PostgreSQL | `SqlValue` | form |
//! | --- | --- | --- |
//! | `boolean` | `Bool` | |
//! | `smallint`, `integer`, `bigint` | `Int2`, `Int4`, `Int8` | |
//! | `real`, `double precision` | `Float4`, `Float8` | NaN and ±infinity included |
//! | `numeric` | `Numeric` | plain decimal text with the column's scale, no exponent: `-1234.5600`, `0.00001`; `NaN`, `Infinity`, `-Infinity`. Exact, any number of digits. |
//! | `text`, `varchar`, `char(n)`, `name`, `citext`, `xml`, enums | `Text` | |
//! | `bytea` | `Bytea` | the raw bytes |
//! | `uuid` | `Uuid` | lower-case hyphenated: `67e55044-10b1-426f-9247-bb680e5fe0c8` |
//! | `date` | `Date` | `YYYY-MM-DD`; years before 1 AD are astronomical (`0000` is 1 BC, `-0001` 2 BC); `infinity`, `-infinity` |
//! | `time` | `Time` | `HH:MM:SS` with the fraction's trailing zeros dropped: `13:45:07.25`, `24:00:00` |
//! | `timestamp` | `Timestamp` | `YYYY-MM-DDTHH:MM:SS[.ffffff]`, fraction as for `time`: `2024-02-29T13:45:07.25`; `infinity`, `-infinity` |
//! | `timestamptz` | `Timestamptz` | always UTC with `Z`: `2024-02-29T12:45:07.25Z`; `infinity`, `-infinity` |
//! | `json` | `Json` | the JSON text exactly as stored |
//! | `jsonb` | `Jsonb` | PostgreSQL's normalised JSON text |
//! | a domain | its base type's case | |
//!
//! Other types come back as `Text` holding PostgreSQL's text output:
//! arrays of any type listed here (`{1,2,NULL}`, `{"a b","c\"d"}`,
//! `[0:1]={1,2}`, nested for several dimensions), composite types and
//! anonymous records (`(1,"a b",)`), `interval` (PostgreSQL's default
//! `postgres` style, `1 year 2 mons 3 days 04:05:06.5`), `"char"`, `oid`,
//! `xid`, `xid8`, `cid`, `inet`, `cidr`, `macaddr`, `macaddr8`, `bit`,
//! `varbit`, `timetz` (`13:45:07+01`) and `void` (the empty string, as
//! from `SELECT pg_sleep(1)`). Inside arrays and composites
//! booleans are `t`/`f`, floats print as PostgreSQL prints them (`1e+20`),
//! `bytea` as `\x…` hex, and dates and times in the ISO-8601 forms of the
//! table above (not in the session's `DateStyle`). A statement with a
//! column of any other type (`money`, ranges, geometric types, `tsvector`,
//! …) is refused before it runs with `SqlError::Invalid` naming the column,
//! whose fix is to cast it in the SQL: `SELECT price::text`.
//!
//! ## Parameters
//!
//! Each parameter is converted to the type PostgreSQL inferred for it in
//! the prepared statement (`statement.params()`); the SQL decides, so a
//! cast (`$1::int8`) picks the type. `Null` binds to any type. Otherwise:
//!
//! | parameter type | accepted cases |
//! | --- | --- |
//! | `boolean` | `Bool` |
//! | `smallint`, `integer`, `bigint`, `oid` | `Int2`, `Int4`, `Int8` whose value fits (else `Invalid`, "out of range") |
//! | `real`, `double precision` | `Float4`, `Float8`, `Int2`, `Int4`, `Int8`, rounded to the nearest value as PostgreSQL's own casts do (a finite value too large for `real` is `Invalid`) |
//! | `numeric` | `Numeric` or `Text` in PostgreSQL's numeric input form (`-1234.5600`, `1.5e3`, `NaN`, `Infinity`), integers exactly, finite floats as their shortest exact decimal |
//! | `text`, `varchar`, `char(n)`, `name`, `citext`, `xml`, `unknown` | `Text`, or any case carrying a string (`Numeric`, `Uuid`, `Date`, …, `Jsonb`), sent as is |
//! | an enum | `Text`, the label |
//! | `"char"` | `Text` of at most one byte |
//! | `bytea` | `Bytea` |
//! | `uuid` | `Uuid` or `Text`: 32 hex digits, any case, hyphens between groups and braces allowed |
//! | `date` | `Date` or `Text`: `YYYY-MM-DD` (astronomical years, sign allowed), `infinity`, `-infinity` |
//! | `time` | `Time` or `Text`: `HH:MM`, `HH:MM:SS` or `HH:MM:SS.f` with one to six fraction digits, up to `24:00:00` |
//! | `timestamp` | `Timestamp` or `Text`: a date, `T` (or a space), a time; a date alone is midnight; an offset is refused (use `timestamptz`) |
//! | `timestamptz` | `Timestamptz` or `Text`: as `timestamp` plus a required offset, `Z`, `±HH`, `±HH:MM`, `±HHMM` |
//! | `json`, `jsonb` | `Json`, `Jsonb` or `Text` (the server checks the JSON) |
//! | a domain | as its base type |
//!
//! Anything else, e.g. a `Text` for an `integer` parameter, is refused with
//! `SqlError::Invalid` naming the parameter, its type and the accepted
//! cases, before the statement runs. Parameters of other types (arrays,
//! `interval`, `inet`, …) take only `Null`; cast them in the SQL and pass
//! text: `$1::text::interval`. A wrong number of parameters is `Invalid`.
//!
//! # Errors
//!
//! - No link for the calling actor and link name, or a refused link: the
//!   invocation fails with `RpcErrorKind::Denied`, which the host turns into
//!   `error::denied`. An unknown operation is `NotFound`, an undecodable
//!   payload `BadRequest`.
//! - Everything else is an `Err(SqlError)` answer:
//!   - `Query { sqlstate, message, detail }`: the server refused or failed
//!     the statement (`42P01` for a missing table, `23505` for a unique
//!     violation with its detail, `42601` for a syntax error or several
//!     statements in one call, …).
//!   - `Timeout`: the statement ran longer than `statement_timeout_ms` (the
//!     server cancels it with SQLSTATE `57014`, which is answered as
//!     `Timeout` and not `Query`, the code and the server's message in the
//!     text; an administrator's `pg_cancel_backend` shows the same way), no
//!     pooled connection became free within `statement_timeout_ms`, or the
//!     whole call took longer than `statement_timeout_ms` + 1 s (that
//!     connection is then closed rather than reused).
//!   - `Connection`: the database could not be reached, refused the login,
//!     or the connection broke; the message names `user@host:port/db`,
//!     never the password.
//!   - `Invalid`: a parameter that does not fit (above), a column type
//!     without a mapping, or a result over 8 MiB.
//!
//! The provider never panics on a call and keeps serving after any error.
//!
//! # Health
//!
//! A health check runs `SELECT 1` on every pool (at most 1.5 s each, all at
//! once) and reports unhealthy, naming each failing database, if any fails.
//! With no links it is healthy.

mod codec;
pub mod config;
mod db;
mod tls;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use trellis_protocol::contracts::sqldb::{
    EXECUTE_OPERATION, ExecuteResponse, QUERY_OPERATION, QueryResponse, SqlRequest,
};
use trellis_protocol::{
    DecodeLimits, LinkDefinition, RpcErrorKind, decode_msgpack, encode_msgpack,
};
use trellis_provider_sdk::{CallError, HealthCheck, Provider, ProviderInvocation};

pub use config::LinkConfig;
pub use db::{
    CALL_TIMEOUT_GRACE, HEALTH_CHECK_TIMEOUT, MAX_CACHED_STATEMENTS, MAX_RESULT_BYTES, RECYCLE_SQL,
};

use db::{Database, Operation, Outcome};

/// Runs the provider process: reads host data from stdin and serves.
pub fn run() -> std::process::ExitCode {
    trellis_provider_sdk::run(|_ctx| async { Ok(SqlDbProvider::new()) })
}

/// What a link resolves to: its pool, or why it was refused.
type LinkState = Result<Arc<Database>, String>;

#[derive(Default)]
struct State {
    /// By (actor id, link name).
    links: HashMap<(String, String), LinkState>,
    /// One pool per distinct configuration.
    pools: HashMap<LinkConfig, Arc<Database>>,
}

impl State {
    /// Removes the pools no link uses and returns them, to be closed.
    fn take_unused_pools(&mut self) -> Vec<Arc<Database>> {
        let links = &self.links;
        let mut unused = Vec::new();
        self.pools.retain(|_, db| {
            let used = links
                .values()
                .any(|link| matches!(link, Ok(d) if Arc::ptr_eq(d, db)));
            if !used {
                unused.push(db.clone());
            }
            used
        });
        unused
    }
}

/// The `trellis:sqldb` provider for PostgreSQL: link definitions, the pools
/// behind them, and the calls. See the crate documentation.
#[derive(Default)]
pub struct SqlDbProvider {
    state: RwLock<State>,
}

impl SqlDbProvider {
    /// A provider with no links yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pool serving `actor_id` over `link_name`.
    fn database(&self, actor_id: &str, link_name: &str) -> Result<Arc<Database>, CallError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match state
            .links
            .get(&(actor_id.to_owned(), link_name.to_owned()))
        {
            Some(Ok(db)) => Ok(db.clone()),
            Some(Err(reason)) => Err((
                RpcErrorKind::Denied,
                format!(
                    "the trellis:sqldb link {link_name} of actor {actor_id} was refused: {reason}"
                ),
            )),
            None => Err((
                RpcErrorKind::Denied,
                format!("no trellis:sqldb link {link_name} for actor {actor_id}"),
            )),
        }
    }

    fn all_pools(&self) -> Vec<Arc<Database>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.pools.values().cloned().collect()
    }
}

impl Provider for SqlDbProvider {
    async fn handle(&self, invocation: ProviderInvocation) -> Result<Vec<u8>, CallError> {
        let operation = match invocation.operation.as_str() {
            QUERY_OPERATION => Operation::Query,
            EXECUTE_OPERATION => Operation::Execute,
            other => {
                return Err((
                    RpcErrorKind::NotFound,
                    format!(
                        "trellis:sqldb has no operation {other:?} (only {QUERY_OPERATION} and {EXECUTE_OPERATION})"
                    ),
                ));
            }
        };
        let request: SqlRequest = decode_msgpack(&invocation.payload, &DecodeLimits::default())
            .map_err(|e| {
                (
                    RpcErrorKind::BadRequest,
                    format!("the payload is not a SqlRequest: {e}"),
                )
            })?;
        let link_name = invocation
            .origin
            .link_name
            .as_deref()
            .unwrap_or(trellis_protocol::DEFAULT_LINK_NAME);
        let db = self.database(&invocation.origin.id, link_name)?;
        let outcome = db.call(operation, &request).await;
        if let Err(e) = &outcome {
            tracing::debug!(
                actor = invocation.origin.id,
                database = db.label(),
                "statement failed: {e:?}"
            );
        }
        let encoded = match (operation, outcome) {
            (_, Ok(Outcome::Rows(rows))) => encode_msgpack(&QueryResponse::Ok(rows)),
            (_, Ok(Outcome::Count(count))) => encode_msgpack(&ExecuteResponse::Ok(count)),
            (Operation::Query, Err(e)) => encode_msgpack(&QueryResponse::Err(e)),
            (Operation::Execute, Err(e)) => encode_msgpack(&ExecuteResponse::Err(e)),
        };
        encoded.map_err(|e| {
            (
                RpcErrorKind::Failed,
                format!("cannot encode the answer: {e}"),
            )
        })
    }

    async fn put_link(&self, link: &LinkDefinition) -> Result<(), String> {
        let key = (link.actor_id.clone(), link.link_name.clone());
        let parsed = LinkConfig::parse(&link.config);
        let (result, unused) = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let entry = parsed.and_then(|config| match state.pools.get(&config) {
                Some(db) => Ok(db.clone()),
                None => {
                    let db = Arc::new(Database::new(config.clone())?);
                    state.pools.insert(config, db.clone());
                    Ok(db)
                }
            });
            let result = entry
                .as_ref()
                .map(|db| db.label().to_owned())
                .map_err(Clone::clone);
            state.links.insert(key, entry);
            (result, state.take_unused_pools())
        };
        for db in unused {
            db.close();
        }
        let label = result?;
        tracing::info!(
            actor = link.actor_id,
            link_name = link.link_name,
            database = label,
            "link ready"
        );
        Ok(())
    }

    async fn delete_link(&self, link: &LinkDefinition) {
        let unused = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state
                .links
                .remove(&(link.actor_id.clone(), link.link_name.clone()));
            state.take_unused_pools()
        };
        for db in unused {
            db.close();
        }
    }

    async fn health(&self) -> HealthCheck {
        let pools = self.all_pools();
        if pools.is_empty() {
            return HealthCheck {
                healthy: true,
                message: "no links".to_owned(),
            };
        }
        let results = futures::future::join_all(pools.iter().map(|db| db.health())).await;
        let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if failures.is_empty() {
            HealthCheck {
                healthy: true,
                message: format!("{} database pool(s) answer SELECT 1", pools.len()),
            }
        } else {
            HealthCheck {
                healthy: false,
                message: failures.join("; "),
            }
        }
    }

    async fn shutdown(&self) {
        for db in self.all_pools() {
            db.close();
        }
    }
}
