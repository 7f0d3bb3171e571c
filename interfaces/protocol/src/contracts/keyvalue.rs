//! `wasi:keyvalue` (0.2.0-draft): requests from a host to a key-value
//! provider on behalf of an actor, and the provider's answers.
//!
//! Operation: [`OPERATION`]; payload [`KvRequest`]; response payload
//! [`KvResponse`].

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The operation name of every key-value request.
pub const OPERATION: &str = "wasi:keyvalue/store.call";

/// One key-value operation on a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvRequest {
    /// `store.bucket.get`.
    Get {
        /// Bucket identifier given to `store.open`.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `store.bucket.set`.
    Set {
        /// Bucket identifier.
        bucket: String,
        /// The key.
        key: String,
        /// The value.
        value: ByteBuf,
    },
    /// `store.bucket.delete`.
    Delete {
        /// Bucket identifier.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `store.bucket.exists`.
    Exists {
        /// Bucket identifier.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `store.bucket.list-keys`.
    ListKeys {
        /// Bucket identifier.
        bucket: String,
        /// Cursor from a previous page; `None` for the first.
        cursor: Option<u64>,
    },
    /// `atomics.increment`.
    Increment {
        /// Bucket identifier.
        bucket: String,
        /// The key.
        key: String,
        /// Amount to add.
        delta: u64,
    },
    /// `batch.get-many`.
    GetMany {
        /// Bucket identifier.
        bucket: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// `batch.set-many`.
    SetMany {
        /// Bucket identifier.
        bucket: String,
        /// Keys and values.
        entries: Vec<(String, ByteBuf)>,
    },
    /// `batch.delete-many`.
    DeleteMany {
        /// Bucket identifier.
        bucket: String,
        /// The keys.
        keys: Vec<String>,
    },
}

/// The answer to a [`KvRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum KvResponse {
    /// Done, nothing to return (set, delete, set-many, delete-many).
    Done,
    /// A value or its absence (get).
    Value {
        /// The value.
        value: Option<ByteBuf>,
    },
    /// Whether the key exists.
    Exists {
        /// Whether it exists.
        exists: bool,
    },
    /// One page of keys.
    Keys {
        /// The keys.
        keys: Vec<String>,
        /// Cursor of the next page; `None` at the end.
        cursor: Option<u64>,
    },
    /// The value after an increment.
    Number {
        /// The new value.
        value: u64,
    },
    /// Values of several keys, in request order.
    Values {
        /// Key and value (or absence) per requested key.
        values: Vec<(String, Option<ByteBuf>)>,
    },
    /// The operation failed.
    Error {
        /// Why, for people.
        message: String,
    },
}
