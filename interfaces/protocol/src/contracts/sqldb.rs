//! `trellis:sqldb`: SQL statements from a host to a SQL provider on behalf
//! of an actor, and the provider's answers. Mirrors `interfaces/wit/sqldb.wit`.

use serde::{Deserialize, Serialize};

/// Operation name of `query`.
pub const QUERY_OPERATION: &str = "trellis:sqldb/query.query";
/// Operation name of `execute`.
pub const EXECUTE_OPERATION: &str = "trellis:sqldb/query.execute";

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SqlError {
    /// No claim or no link.
    Denied {
        /// Why.
        message: String,
    },
    /// The statement or the connection timed out.
    Timeout {
        /// Why.
        message: String,
    },
    /// The database could not be reached.
    Connection {
        /// Why.
        message: String,
    },
    /// The database refused the statement.
    Query {
        /// SQLSTATE code, e.g. `42P01`.
        sqlstate: String,
        /// The database's message.
        message: String,
        /// Detail, when the database gave one.
        detail: Option<String>,
    },
    /// The request was invalid (bad parameter type, ...).
    Invalid {
        /// Why.
        message: String,
    },
}

/// The answer to a `query`.
pub type QueryResponse = Result<SqlRows, SqlError>;
/// The answer to an `execute`: rows affected.
pub type ExecuteResponse = Result<u64, SqlError>;
