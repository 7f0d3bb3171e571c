//! `wasi:keyvalue` (0.2.0-draft): the calls a host makes to a key-value
//! provider on behalf of an actor, one [`Operation`](super::Operation) per WIT function.
//!
//! | operation | request | output |
//! |---|---|---|
//! | `wasi:keyvalue/store.get` | [`Get`] | `Option<bytes>` |
//! | `wasi:keyvalue/store.set` | [`Set`] | `()` |
//! | `wasi:keyvalue/store.delete` | [`Delete`] | `()` |
//! | `wasi:keyvalue/store.exists` | [`Exists`] | `bool` |
//! | `wasi:keyvalue/store.list-keys` | [`ListKeys`] | [`KeyPage`] |
//! | `wasi:keyvalue/atomics.increment` | [`Increment`] | `u64` |
//! | `wasi:keyvalue/batch.get-many` | [`GetMany`] | `Vec<(String, Option<bytes>)>` |
//! | `wasi:keyvalue/batch.set-many` | [`SetMany`] | `()` |
//! | `wasi:keyvalue/batch.delete-many` | [`DeleteMany`] | `()` |
//!
//! Every answer is `Result<output, KvError>` (see the [error
//! convention](super)). `bucket` is the identifier the actor gave
//! `store.open`; providers scope it under the link's own prefix.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{Contract, ContractError};
use crate::invocation::{RpcError, RpcErrorKind};

/// The `wasi:keyvalue` contract.
#[derive(Debug, Clone, Copy)]
pub struct KeyValue;

impl Contract for KeyValue {
    const ID: &'static str = "wasi:keyvalue";
    type Error = KvError;
}

/// The WIT `error` variant of `wasi:keyvalue/store`, with a message for
/// people on each case (the guest sees the case; the host logs the message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KvError {
    /// `no-such-store`: the bucket does not exist.
    #[error("no such store")]
    NoSuchStore,
    /// `access-denied`: no claim, no link, or a refused invocation.
    #[error("access denied: {message}")]
    AccessDenied {
        /// Why.
        message: String,
    },
    /// `other`: any other failure (backend unreachable, timeout, …).
    #[error("{message}")]
    Other {
        /// Why.
        message: String,
    },
}

impl ContractError for KvError {
    fn denied(message: String) -> Self {
        KvError::AccessDenied { message }
    }

    fn from_rpc(error: RpcError) -> Self {
        match error.kind {
            RpcErrorKind::Denied => KvError::AccessDenied {
                message: error.message,
            },
            _ => KvError::Other {
                message: error.to_string(),
            },
        }
    }
}

impl KvError {
    /// An `other` error with `message`.
    pub fn other(message: impl Into<String>) -> Self {
        KvError::Other {
            message: message.into(),
        }
    }
}

/// `store.bucket.get`: the value of `key`, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// Bucket identifier given to `store.open`.
    pub bucket: String,
    /// The key.
    pub key: String,
}
operation!(KeyValue, Get, "wasi:keyvalue/store.get", Option<ByteBuf>);

/// `store.bucket.set`: stores `value` under `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Set {
    /// Bucket identifier.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: ByteBuf,
}
operation!(KeyValue, Set, "wasi:keyvalue/store.set", ());

/// `store.bucket.delete`: removes `key`; removing a missing key succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// Bucket identifier.
    pub bucket: String,
    /// The key.
    pub key: String,
}
operation!(KeyValue, Delete, "wasi:keyvalue/store.delete", ());

/// `store.bucket.exists`: whether `key` has a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exists {
    /// Bucket identifier.
    pub bucket: String,
    /// The key.
    pub key: String,
}
operation!(KeyValue, Exists, "wasi:keyvalue/store.exists", bool);

/// `store.bucket.list-keys`: one page of keys, in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListKeys {
    /// Bucket identifier.
    pub bucket: String,
    /// Cursor from a previous page; `None` for the first.
    pub cursor: Option<u64>,
}
operation!(KeyValue, ListKeys, "wasi:keyvalue/store.list-keys", KeyPage);

/// Keys per `list-keys` page that [`KeyPage::of_sorted`] makes. Defaults
/// to 1,000.
pub const LIST_PAGE_SIZE: usize = 1_000;

/// One page of keys, as the WIT `key-response`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPage {
    /// The keys.
    pub keys: Vec<String>,
    /// Cursor of the next page; `None` at the end.
    pub cursor: Option<u64>,
}

impl KeyPage {
    /// The page of at most [`LIST_PAGE_SIZE`] keys of `keys` (all the keys,
    /// sorted) that starts at index `cursor` (0 when `None`); its cursor is
    /// the index of the next key, if any. A cursor past the end gives an
    /// empty last page.
    ///
    /// # Examples
    ///
    /// ```
    /// use trellis_protocol::contracts::keyvalue::{KeyPage, LIST_PAGE_SIZE};
    ///
    /// let keys: Vec<String> = (0..LIST_PAGE_SIZE + 1).map(|i| format!("{i:05}")).collect();
    /// let first = KeyPage::of_sorted(keys.clone(), None);
    /// assert_eq!((first.keys.len(), first.cursor), (LIST_PAGE_SIZE, Some(LIST_PAGE_SIZE as u64)));
    /// let last = KeyPage::of_sorted(keys, first.cursor);
    /// assert_eq!((last.keys, last.cursor), (vec![format!("{LIST_PAGE_SIZE:05}")], None));
    /// ```
    pub fn of_sorted(mut keys: Vec<String>, cursor: Option<u64>) -> Self {
        let start = usize::try_from(cursor.unwrap_or(0))
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let end = start.saturating_add(LIST_PAGE_SIZE).min(keys.len());
        let next = (end < keys.len()).then(|| u64::try_from(end).unwrap_or(u64::MAX));
        keys.truncate(end);
        keys.drain(..start);
        KeyPage { keys, cursor: next }
    }
}

/// `atomics.increment`: adds `delta` to the number stored under `key`
/// (a missing key counts as 0) and returns the new value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Increment {
    /// Bucket identifier.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// Amount to add.
    pub delta: u64,
}
operation!(KeyValue, Increment, "wasi:keyvalue/atomics.increment", u64);

/// `batch.get-many`: the values of several keys, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMany {
    /// Bucket identifier.
    pub bucket: String,
    /// The keys.
    pub keys: Vec<String>,
}
operation!(
    KeyValue,
    GetMany,
    "wasi:keyvalue/batch.get-many",
    Vec<(String, Option<ByteBuf>)>
);

/// `batch.set-many`: stores several keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMany {
    /// Bucket identifier.
    pub bucket: String,
    /// Keys and values.
    pub entries: Vec<(String, ByteBuf)>,
}
operation!(KeyValue, SetMany, "wasi:keyvalue/batch.set-many", ());

/// `batch.delete-many`: removes several keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMany {
    /// Bucket identifier.
    pub bucket: String,
    /// The keys.
    pub keys: Vec<String>,
}
operation!(KeyValue, DeleteMany, "wasi:keyvalue/batch.delete-many", ());

handler! {
    /// What a key-value provider implements: one method per operation, each
    /// given the provider's state for the caller's link (`Self::Link`, what
    /// the provider made of the link definition: a connection, a prefix).
    contract: KeyValue,
    link: "The provider's state for one link.",
    operations: {
        Get => get,
        Set => set,
        Delete => delete,
        Exists => exists,
        ListKeys => list_keys,
        Increment => increment,
        GetMany => get_many,
        SetMany => set_many,
        DeleteMany => delete_many,
    }
}
