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
use std::sync::{Arc, Mutex, PoisonError};

use trellis_protocol::contracts::Answer;
use trellis_protocol::contracts::sqldb::{self as sql, SqlError};
use trellis_protocol::{LinkDefinition, RpcError};
use trellis_provider_sdk::{Call, HealthCheck, Provider};

pub use config::LinkConfig;
pub use db::{
    CALL_TIMEOUT_GRACE, HEALTH_CHECK_TIMEOUT, MAX_CACHED_STATEMENTS, MAX_RESULT_BYTES, RECYCLE_SQL,
};

use db::{Database, Operation, Outcome};

/// Runs the provider process: reads host data from stdin and serves.
pub fn run() -> std::process::ExitCode {
    trellis_provider_sdk::run(|_ctx| async { Ok(SqlDbProvider::new()) })
}

/// What a link is bound to: the pool of its configuration.
pub struct Pool {
    config: LinkConfig,
    db: Arc<Database>,
}

/// The `trellis:sqldb` provider for PostgreSQL: one pool per distinct link
/// configuration, shared by the links that use it. See the crate
/// documentation.
#[derive(Default)]
pub struct SqlDbProvider {
    /// Pools by configuration, with the number of links using each.
    pools: Mutex<HashMap<LinkConfig, (Arc<Database>, usize)>>,
}

impl SqlDbProvider {
    /// A provider with no links yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, HashMap<LinkConfig, (Arc<Database>, usize)>> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many pools the current links use.
    pub fn pool_count(&self) -> usize {
        self.pools().len()
    }

    fn all_pools(&self) -> Vec<Arc<Database>> {
        self.pools().values().map(|(db, _)| db.clone()).collect()
    }

    async fn run(
        &self,
        pool: &Pool,
        operation: Operation,
        request: &sql::SqlRequest,
    ) -> Result<Outcome, SqlError> {
        let outcome = pool.db.call(operation, request).await;
        if let Err(e) = &outcome {
            tracing::debug!(database = pool.db.label(), "statement failed: {e:?}");
        }
        outcome
    }
}

/// The error for an outcome of the wrong shape (a bug in the pool code).
fn mismatch() -> SqlError {
    SqlError::Invalid {
        message: "the database call returned an outcome of another operation".to_owned(),
    }
}

impl sql::Handler for SqlDbProvider {
    type Link = Pool;

    async fn query(&self, pool: &Pool, request: sql::Query) -> Answer<sql::Query> {
        match self.run(pool, Operation::Query, &request.0).await? {
            Outcome::Rows(rows) => Ok(rows),
            Outcome::Count(_) => Err(mismatch()),
        }
    }

    async fn execute(&self, pool: &Pool, request: sql::Execute) -> Answer<sql::Execute> {
        match self.run(pool, Operation::Execute, &request.0).await? {
            Outcome::Count(count) => Ok(count),
            Outcome::Rows(_) => Err(mismatch()),
        }
    }
}

impl Provider for SqlDbProvider {
    type Link = Pool;

    async fn bind(&self, link: &LinkDefinition) -> Result<Pool, String> {
        let config = LinkConfig::parse(&link.config)?;
        let db = {
            let mut pools = self.pools();
            match pools.get_mut(&config) {
                Some((db, users)) => {
                    *users += 1;
                    db.clone()
                }
                None => {
                    let db = Arc::new(Database::new(config.clone())?);
                    pools.insert(config.clone(), (db.clone(), 1));
                    db
                }
            }
        };
        tracing::info!(
            actor = link.actor_id,
            link_name = link.link_name,
            database = db.label(),
            "link ready"
        );
        Ok(Pool { config, db })
    }

    async fn unbind(&self, _link: &LinkDefinition, bound: Option<Arc<Pool>>) {
        let Some(pool) = bound else { return };
        let unused = {
            let mut pools = self.pools();
            match pools.get_mut(&pool.config) {
                Some((_, users)) if *users > 1 => {
                    *users -= 1;
                    None
                }
                Some(_) => pools.remove(&pool.config).map(|(db, _)| db),
                None => None,
            }
        };
        if let Some(db) = unused {
            db.close();
        }
    }

    async fn dispatch(&self, call: Call<'_, Pool>) -> Result<Vec<u8>, RpcError> {
        sql::dispatch(self, call.link, call.operation, call.payload, call.limits).await
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
