//! `trellis:sqldb`: SQL statements from a host to a SQL provider on behalf
//! of an actor, and the provider's answers. Mirrors `interfaces/wit/sqldb.wit`.
//!
//! | operation | request | output |
//! |---|---|---|
//! | `trellis:sqldb/query.query` | [`Query`] | [`SqlRows`] |
//! | `trellis:sqldb/query.execute` | [`Execute`] | `u64` (rows affected) |
//!
//! Every answer is `Result<output, SqlError>` (see the [error
//! convention](super)).

use serde::{Deserialize, Serialize};

use super::{Contract, ContractError};
use crate::invocation::{RpcError, RpcErrorKind};

/// The `trellis:sqldb` contract.
#[derive(Debug, Clone, Copy)]
pub struct SqlDb;

impl Contract for SqlDb {
    const ID: &'static str = "trellis:sqldb";
    type Error = SqlError;
}

/// `query`: runs a statement that returns rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Query(pub SqlRequest);

operation!(SqlDb, Query, "trellis:sqldb/query.query", SqlRows);

/// `execute`: runs a statement and returns the number of rows affected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Execute(pub SqlRequest);

operation!(SqlDb, Execute, "trellis:sqldb/query.execute", u64);

/// A typed SQL value, as in the WIT `pg-value` variant. Text forms of
/// numeric, uuid, date, time and timestamps are those PostgreSQL prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Numeric(String),
    Text(String),
    Bytea(#[serde(with = "serde_bytes")] Vec<u8>),
    Uuid(String),
    Date(String),
    Time(String),
    Timestamp(String),
    Timestamptz(String),
    Json(String),
    Jsonb(String),
}

/// A statement and its parameters (`$1`, `$2`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlRequest {
    /// The SQL text.
    pub statement: String,
    /// Parameter values, in order.
    pub params: Vec<SqlValue>,
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlColumn {
    /// Column name.
    pub name: String,
    /// PostgreSQL type name, e.g. `int4`.
    pub type_name: String,
}

/// Rows returned by `query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlRows {
    /// The columns.
    pub columns: Vec<SqlColumn>,
    /// The rows, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}

/// Why a statement failed, as in the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SqlError {
    /// No claim or no link.
    #[error("denied: {message}")]
    Denied {
        /// Why.
        message: String,
    },
    /// The statement or the connection timed out.
    #[error("timeout: {message}")]
    Timeout {
        /// Why.
        message: String,
    },
    /// The database could not be reached.
    #[error("connection: {message}")]
    Connection {
        /// Why.
        message: String,
    },
    /// The database refused the statement.
    #[error("query failed ({sqlstate}): {message}")]
    Query {
        /// SQLSTATE code, e.g. `42P01`.
        sqlstate: String,
        /// The database's message.
        message: String,
        /// Detail, when the database gave one.
        detail: Option<String>,
    },
    /// The request was invalid (bad parameter type, ...).
    #[error("invalid: {message}")]
    Invalid {
        /// Why.
        message: String,
    },
}

impl ContractError for SqlError {
    fn denied(message: String) -> Self {
        SqlError::Denied { message }
    }

    fn from_rpc(error: RpcError) -> Self {
        let message = error.message;
        match error.kind {
            RpcErrorKind::Denied => SqlError::Denied { message },
            RpcErrorKind::Timeout => SqlError::Timeout { message },
            RpcErrorKind::BadRequest | RpcErrorKind::TooLarge => SqlError::Invalid { message },
            _ => SqlError::Connection { message },
        }
    }
}

handler! {
    /// What a SQL provider implements, given its state for the caller's link.
    contract: SqlDb,
    link: "The provider's state for one link (its pool).",
    operations: {
        Query => query,
        Execute => execute,
    }
}
