//! One connection pool and the calls made through it.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
    TimeoutType, Timeouts,
};
use futures::TryStreamExt as _;
use tokio::time::Instant;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Statement};
use trellis_protocol::contracts::sqldb::{SqlColumn, SqlError, SqlRequest, SqlRows, SqlValue};

use crate::codec::{self, BindError};
use crate::config::{LinkConfig, TlsMode};

/// How much longer than `statement_timeout_ms` a whole call (waiting for a
/// connection, preparing, running and reading the rows) may take before the
/// provider gives up on it: 1 s.
pub const CALL_TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// Longest wait for `SELECT 1` in a health check: 1.5 s, within the
/// host's 2 s wait for the whole answer.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Prepared statements kept per connection. When a connection's cache is
/// full it is emptied, which also deallocates them on the server.
pub const MAX_CACHED_STATEMENTS: usize = 256;

/// Largest result a `query` returns, counted as the bytes of its values:
/// 8 MiB, the most a Trellis message may hold.
pub const MAX_RESULT_BYTES: usize = 8 * 1024 * 1024;

/// Run on a pooled connection each time it is handed out, so that every
/// call starts from a clean session: a transaction an earlier call left open
/// is rolled back, and settings, cursors, `LISTEN`s, advisory locks,
/// temporary tables and sequence state from it (maybe another actor's) are
/// gone. This is deadpool's `RecyclingMethod::Clean` with the `ROLLBACK`
/// first (its statements would otherwise run inside that transaction).
/// Prepared statements stay.
pub const RECYCLE_SQL: &str = "ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; \
    RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

/// Bytes counted per cell on top of its value, for the result size limit.
const CELL_OVERHEAD: usize = 16;

/// SQLSTATE `query_canceled`, which `statement_timeout` raises.
const QUERY_CANCELED: &str = "57014";
/// SQLSTATE `feature_not_supported`, which a cached plan whose result
/// columns changed (after `ALTER TABLE`) raises.
const FEATURE_NOT_SUPPORTED: &str = "0A000";

/// What a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Returns rows.
    Query,
    /// Returns the number of rows affected.
    Execute,
}

/// What a call returned.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The rows of a `query`.
    Rows(SqlRows),
    /// The count of an `execute`.
    Count(u64),
}

/// Why an attempt failed: a driver error (still to be classified, maybe
/// retried) or a final answer.
enum Failure {
    Driver(tokio_postgres::Error),
    Sql(SqlError),
}

impl From<SqlError> for Failure {
    fn from(e: SqlError) -> Self {
        Self::Sql(e)
    }
}

/// A parameter already encoded in its binary format.
#[derive(Debug)]
struct Encoded(Option<Vec<u8>>);

impl ToSql for Encoded {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    // The value was encoded for the statement's own parameter type.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A result cell's raw bytes, decoded afterwards by [`codec::decode`].
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Self(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Self(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A pool of connections to one database, shared by every link with the
/// same [`LinkConfig`].
pub(crate) struct Database {
    config: LinkConfig,
    label: String,
    pool: Pool,
}

impl Database {
    /// A pool for `config`. Connections are made on first use, not here.
    ///
    /// # Errors
    ///
    /// A message if the URL does not parse or TLS cannot be set up.
    pub(crate) fn new(config: LinkConfig) -> Result<Self, String> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| format!("`url` is not a valid PostgreSQL connection string: {e}"))?;
        // The server enforces the statement timeout on every connection
        // from the start; `RESET ALL` between calls comes back to it. A
        // transaction an actor left open (`BEGIN`) ends the session once it
        // has idled that long, so it cannot hold locks in an idle pool.
        let timeout_option = format!(
            "-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}",
            ms = config.statement_timeout_ms
        );
        let options = match pg.get_options().map(str::trim) {
            Some(existing) if !existing.is_empty() => format!("{existing} {timeout_option}"),
            _ => timeout_option,
        };
        pg.options(options);
        if pg.get_application_name().is_none() {
            pg.application_name("trellis-sqldb-postgres");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Custom(RECYCLE_SQL.to_owned()),
        };
        let manager = match config.tls {
            TlsMode::Disable => {
                pg.ssl_mode(SslMode::Disable);
                Manager::from_config(pg, NoTls, manager_config)
            }
            TlsMode::Require => {
                pg.ssl_mode(SslMode::Require);
                Manager::from_config(pg, crate::tls::connector()?, manager_config)
            }
        };
        let timeout = config.statement_timeout();
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            })
            .build()
            .map_err(|e| format!("cannot build the connection pool: {e}"))?;
        Ok(Self {
            label: config.label(),
            config,
            pool,
        })
    }

    /// Where the pool points, without credentials.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Closes the pool: idle connections are closed now, busy ones when
    /// their call ends.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// Runs one statement, within the statement timeout plus
    /// [`CALL_TIMEOUT_GRACE`].
    pub(crate) async fn call(
        &self,
        operation: Operation,
        request: &SqlRequest,
    ) -> Result<Outcome, SqlError> {
        let deadline = Instant::now() + self.config.statement_timeout() + CALL_TIMEOUT_GRACE;
        let client = match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(self.pool_error(e)),
            Err(_) => return Err(self.call_timeout()),
        };
        match tokio::time::timeout_at(deadline, self.run(&client, operation, request)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may still be busy with the statement:
                // take it out of the pool and close it.
                drop(Object::take(client));
                Err(self.call_timeout())
            }
        }
    }

    /// Runs `SELECT 1` on a pooled connection.
    ///
    /// # Errors
    ///
    /// What failed, prefixed with the pool's label.
    pub(crate) async fn health(&self) -> Result<(), String> {
        let check = async {
            let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| self.driver_error(e))?;
            Ok::<_, SqlError>(())
        };
        match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{}: {}", self.label, describe(&e))),
            Err(_) => Err(format!(
                "{}: SELECT 1 did not answer within {HEALTH_CHECK_TIMEOUT:?}",
                self.label
            )),
        }
    }

    async fn run(
        &self,
        client: &ClientWrapper,
        operation: Operation,
        request: &SqlRequest,
    ) -> Result<Outcome, SqlError> {
        match self.attempt(client, operation, request).await {
            Ok(outcome) => Ok(outcome),
            // A cached plan whose result columns changed under it (the
            // table was altered): forget it everywhere and prepare afresh.
            // The failed attempt did nothing, so trying again is safe.
            Err(Failure::Driver(e))
                if e.code().map(tokio_postgres::error::SqlState::code)
                    == Some(FEATURE_NOT_SUPPORTED) =>
            {
                self.pool
                    .manager()
                    .statement_caches
                    .remove(&request.statement, &[]);
                match self.attempt(client, operation, request).await {
                    Ok(outcome) => Ok(outcome),
                    Err(Failure::Driver(e)) => Err(self.driver_error(e)),
                    Err(Failure::Sql(e)) => Err(e),
                }
            }
            Err(Failure::Driver(e)) => Err(self.driver_error(e)),
            Err(Failure::Sql(e)) => Err(e),
        }
    }

    async fn attempt(
        &self,
        client: &ClientWrapper,
        operation: Operation,
        request: &SqlRequest,
    ) -> Result<Outcome, Failure> {
        if client.statement_cache.size() >= MAX_CACHED_STATEMENTS {
            client.statement_cache.clear();
        }
        let statement = client
            .prepare_cached(&request.statement)
            .await
            .map_err(Failure::Driver)?;
        let params = bind(&statement, &request.params)?;
        let params = params.iter().map(|p| p as &(dyn ToSql + Sync));
        match operation {
            Operation::Execute => client
                .execute_raw(&statement, params)
                .await
                .map(Outcome::Count)
                .map_err(Failure::Driver),
            Operation::Query => {
                if let Some(column) = statement
                    .columns()
                    .iter()
                    .find(|c| !codec::can_decode(c.type_()))
                {
                    return Err(Failure::Sql(SqlError::Invalid {
                        message: codec::unsupported_column(column.name(), column.type_()),
                    }));
                }
                let stream = client
                    .query_raw(&statement, params)
                    .await
                    .map_err(Failure::Driver)?;
                read_rows(&statement, stream).await.map(Outcome::Rows)
            }
        }
    }

    fn call_timeout(&self) -> SqlError {
        SqlError::Timeout {
            message: format!(
                "the call took longer than statement_timeout_ms ({} ms) + {} ms",
                self.config.statement_timeout_ms,
                CALL_TIMEOUT_GRACE.as_millis()
            ),
        }
    }

    fn pool_error(&self, e: PoolError) -> SqlError {
        let ms = self.config.statement_timeout_ms;
        let label = &self.label;
        match e {
            PoolError::Timeout(TimeoutType::Wait) => SqlError::Timeout {
                message: format!(
                    "no connection to {label} became free within {ms} ms (pool_size {})",
                    self.config.pool_size
                ),
            },
            PoolError::Timeout(TimeoutType::Create) => SqlError::Connection {
                message: format!("connecting to {label} took longer than {ms} ms"),
            },
            PoolError::Timeout(TimeoutType::Recycle) => SqlError::Connection {
                message: format!("resetting a connection to {label} took longer than {ms} ms"),
            },
            PoolError::Backend(e) => SqlError::Connection {
                message: format!("cannot connect to {label}: {}", driver_message(&e)),
            },
            PoolError::Closed => SqlError::Connection {
                message: format!("the pool for {label} is closed (its link was deleted)"),
            },
            other => SqlError::Connection {
                message: format!("cannot get a connection to {label}: {other}"),
            },
        }
    }

    fn driver_error(&self, e: tokio_postgres::Error) -> SqlError {
        if let Some(db) = e.as_db_error() {
            let sqlstate = db.code().code();
            if sqlstate == QUERY_CANCELED {
                return SqlError::Timeout {
                    message: format!(
                        "{} (SQLSTATE {sqlstate}; statement_timeout_ms is {})",
                        db.message(),
                        self.config.statement_timeout_ms
                    ),
                };
            }
            return SqlError::Query {
                sqlstate: sqlstate.to_owned(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
            };
        }
        SqlError::Connection {
            message: format!("{}: {}", self.label, driver_message(&e)),
        }
    }
}

/// A driver error with its cause (tokio-postgres keeps the useful part,
/// e.g. "Connection refused", in the source).
fn driver_message(e: &tokio_postgres::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// An error's message, for health reports.
pub(crate) fn describe(e: &SqlError) -> String {
    match e {
        SqlError::Denied { message }
        | SqlError::Timeout { message }
        | SqlError::Connection { message }
        | SqlError::Invalid { message } => message.clone(),
        SqlError::Query {
            sqlstate, message, ..
        } => format!("{message} (SQLSTATE {sqlstate})"),
    }
}

/// Encodes `params` for the statement's parameter types.
fn bind(statement: &Statement, params: &[SqlValue]) -> Result<Vec<Encoded>, SqlError> {
    let types = statement.params();
    if types.len() != params.len() {
        return Err(SqlError::Invalid {
            message: format!(
                "the statement takes {} parameter(s) but {} were given",
                types.len(),
                params.len()
            ),
        });
    }
    types
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (ty, value))| {
            let n = i + 1;
            let name = ty.name();
            codec::encode(ty, value)
                .map(Encoded)
                .map_err(|e| SqlError::Invalid {
                    message: match e {
                        BindError::Mismatch { expected } => format!(
                            "parameter ${n} has type {name}, which takes {expected}, not a {} value \
                             (or cast it in the statement, e.g. ${n}::text::{name})",
                            codec::case_name(value)
                        ),
                        BindError::Unsupported => format!(
                            "parameter ${n} has type {name}, which this provider cannot bind; \
                             cast it in the statement and pass text, e.g. ${n}::text::{name}"
                        ),
                        BindError::Bad(why) => format!("parameter ${n} ({name}): {why}"),
                    },
                })
        })
        .collect()
}

async fn read_rows(
    statement: &Statement,
    stream: tokio_postgres::RowStream,
) -> Result<SqlRows, Failure> {
    let columns = statement.columns();
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    let mut size = 0usize;
    while let Some(row) = stream.try_next().await.map_err(Failure::Driver)? {
        let mut values = Vec::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let cell = |m: String| {
                Failure::Sql(SqlError::Invalid {
                    message: format!("cannot read column \"{}\": {m}", column.name()),
                })
            };
            let Raw(raw) = row
                .try_get::<_, Raw<'_>>(i)
                .map_err(|e| cell(e.to_string()))?;
            size = size.saturating_add(raw.map_or(0, <[u8]>::len) + CELL_OVERHEAD);
            values.push(codec::decode(column.type_(), raw).map_err(cell)?);
        }
        if size > MAX_RESULT_BYTES {
            return Err(Failure::Sql(SqlError::Invalid {
                message: format!(
                    "the result is larger than {MAX_RESULT_BYTES} bytes; \
                     select fewer rows (LIMIT) or smaller columns"
                ),
            }));
        }
        rows.push(values);
    }
    Ok(SqlRows {
        columns: columns
            .iter()
            .map(|c| SqlColumn {
                name: c.name().to_owned(),
                type_name: c.type_().name().to_owned(),
            })
            .collect(),
        rows,
    })
}
