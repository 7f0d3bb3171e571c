//! `wasi:keyvalue` (0.2.0-draft): the calls a host makes to a key-value
//! provider on behalf of an actor, one [`Operation`] per WIT function.
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

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{Answer, Contract, ContractError, Operation, serve_operation, unknown_operation};
use crate::codec::DecodeLimits;
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

macro_rules! operation {
    ($ty:ident, $name:literal, $output:ty) => {
        impl Operation for $ty {
            type Contract = KeyValue;
            type Output = $output;
            const NAME: &'static str = $name;
        }
    };
}

/// `store.bucket.get`: the value of `key`, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// Bucket identifier given to `store.open`.
    pub bucket: String,
    /// The key.
    pub key: String,
}
operation!(Get, "wasi:keyvalue/store.get", Option<ByteBuf>);

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
operation!(Set, "wasi:keyvalue/store.set", ());

/// `store.bucket.delete`: removes `key`; removing a missing key succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// Bucket identifier.
    pub bucket: String,
    /// The key.
    pub key: String,
}
operation!(Delete, "wasi:keyvalue/store.delete", ());

/// `store.bucket.exists`: whether `key` has a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exists {
    /// Bucket identifier.
    pub bucket: String,
    /// The key.
    pub key: String,
}
operation!(Exists, "wasi:keyvalue/store.exists", bool);

/// `store.bucket.list-keys`: one page of keys, in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListKeys {
    /// Bucket identifier.
    pub bucket: String,
    /// Cursor from a previous page; `None` for the first.
    pub cursor: Option<u64>,
}
operation!(ListKeys, "wasi:keyvalue/store.list-keys", KeyPage);

/// One page of keys, as the WIT `key-response`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPage {
    /// The keys.
    pub keys: Vec<String>,
    /// Cursor of the next page; `None` at the end.
    pub cursor: Option<u64>,
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
operation!(Increment, "wasi:keyvalue/atomics.increment", u64);

/// `batch.get-many`: the values of several keys, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMany {
    /// Bucket identifier.
    pub bucket: String,
    /// The keys.
    pub keys: Vec<String>,
}
operation!(
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
operation!(SetMany, "wasi:keyvalue/batch.set-many", ());

/// `batch.delete-many`: removes several keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMany {
    /// Bucket identifier.
    pub bucket: String,
    /// The keys.
    pub keys: Vec<String>,
}
operation!(DeleteMany, "wasi:keyvalue/batch.delete-many", ());

/// What a key-value provider implements: one method per operation, each
/// given the provider's state for the caller's link (`Self::Link`, what
/// the provider made of the link definition: a connection, a prefix).
pub trait Handler: Send + Sync {
    /// The provider's state for one link.
    type Link: Send + Sync;

    /// [`Get`].
    fn get(&self, link: &Self::Link, request: Get) -> impl Future<Output = Answer<Get>> + Send;
    /// [`Set`].
    fn set(&self, link: &Self::Link, request: Set) -> impl Future<Output = Answer<Set>> + Send;
    /// [`Delete`].
    fn delete(
        &self,
        link: &Self::Link,
        request: Delete,
    ) -> impl Future<Output = Answer<Delete>> + Send;
    /// [`Exists`].
    fn exists(
        &self,
        link: &Self::Link,
        request: Exists,
    ) -> impl Future<Output = Answer<Exists>> + Send;
    /// [`ListKeys`].
    fn list_keys(
        &self,
        link: &Self::Link,
        request: ListKeys,
    ) -> impl Future<Output = Answer<ListKeys>> + Send;
    /// [`Increment`].
    fn increment(
        &self,
        link: &Self::Link,
        request: Increment,
    ) -> impl Future<Output = Answer<Increment>> + Send;
    /// [`GetMany`].
    fn get_many(
        &self,
        link: &Self::Link,
        request: GetMany,
    ) -> impl Future<Output = Answer<GetMany>> + Send;
    /// [`SetMany`].
    fn set_many(
        &self,
        link: &Self::Link,
        request: SetMany,
    ) -> impl Future<Output = Answer<SetMany>> + Send;
    /// [`DeleteMany`].
    fn delete_many(
        &self,
        link: &Self::Link,
        request: DeleteMany,
    ) -> impl Future<Output = Answer<DeleteMany>> + Send;
}

/// Serves one `wasi:keyvalue` invocation with `handler`: decodes the
/// request named by `operation`, calls the handler's method and encodes its
/// answer.
///
/// # Errors
///
/// [`RpcErrorKind::NotFound`] for an operation the contract does not have;
/// [`RpcErrorKind::BadRequest`] for a payload that is not its request.
pub async fn dispatch<H: Handler>(
    handler: &H,
    link: &H::Link,
    operation: &str,
    payload: &[u8],
    limits: &DecodeLimits,
) -> Result<Vec<u8>, RpcError> {
    match operation {
        Get::NAME => serve_operation(payload, limits, |r| handler.get(link, r)).await,
        Set::NAME => serve_operation(payload, limits, |r| handler.set(link, r)).await,
        Delete::NAME => serve_operation(payload, limits, |r| handler.delete(link, r)).await,
        Exists::NAME => serve_operation(payload, limits, |r| handler.exists(link, r)).await,
        ListKeys::NAME => serve_operation(payload, limits, |r| handler.list_keys(link, r)).await,
        Increment::NAME => serve_operation(payload, limits, |r| handler.increment(link, r)).await,
        GetMany::NAME => serve_operation(payload, limits, |r| handler.get_many(link, r)).await,
        SetMany::NAME => serve_operation(payload, limits, |r| handler.set_many(link, r)).await,
        DeleteMany::NAME => {
            serve_operation(payload, limits, |r| handler.delete_many(link, r)).await
        }
        other => Err(unknown_operation(KeyValue::ID, other)),
    }
}
