//! Typed contracts: the operations a capability provider serves to actors
//! (and the one an actor serves to the HTTP server provider), with one
//! error convention for all of them.
//!
//! A **contract** ([`Contract`]) is identified by its id (`wasi:keyvalue`,
//! `trellis:sqldb`, `wasi:http`) and has one error type. Each of its
//! **operations** is a request type implementing [`Operation`]: the type
//! names the operation on the wire (`{contract}/{interface}.{function}`,
//! see [`crate::Invocation::operation`]) and the type of its answer.
//!
//! # The error convention
//!
//! - The invocation payload is the msgpack map of the request type.
//! - The response payload is the msgpack of [`Answer<O>`], that is
//!   `Result<O::Output, C::Error>`, externally tagged (`{"Ok": …}` or
//!   `{"Err": …}`). Errors of the contract itself (a denial, a missing key,
//!   a refused statement) travel here, typed.
//! - Failures of the call itself (the token did not verify, nothing serves
//!   the subject, a timeout, an undecodable payload) travel in
//!   [`crate::InvocationResponse::error`] as a [`RpcError`]. The client stub
//!   ([`call`]) folds them into the contract's error with
//!   [`ContractError::from_rpc`], so callers see one error type.
//! - A denial (no claim, no link) is always the contract's own denial:
//!   [`ContractError::denied`] (`wasi:keyvalue` `access-denied`, sqldb
//!   `denied`).
//!
//! # Adding a contract
//!
//! One module here with the request types, their [`Operation`] impls, a
//! `Handler` trait and a `dispatch` function (see [`keyvalue`] for the
//! pattern, and `docs/adr/0007-typed-contracts.md`); one handler impl in the
//! provider; one capability impl in the host.
//!
//! # Examples
//!
//! ```
//! use trellis_protocol::contracts::{self, keyvalue, Operation};
//! use trellis_protocol::DecodeLimits;
//!
//! let get = keyvalue::Get { bucket: "b".into(), key: "k".into() };
//! assert_eq!(keyvalue::Get::NAME, "wasi:keyvalue/store.get");
//! let payload = contracts::encode_request(&get).unwrap();
//! let back: keyvalue::Get = contracts::decode_request(&payload, &DecodeLimits::default()).unwrap();
//! assert_eq!(back, get);
//!
//! // A denial encodes as the contract's own typed error.
//! let denied: contracts::Answer<keyvalue::Get> =
//!     Err(<keyvalue::KvError as contracts::ContractError>::denied("no link".into()));
//! let bytes = contracts::encode_answer::<keyvalue::Get>(&denied).unwrap();
//! let answer = contracts::decode_answer::<keyvalue::Get>(&bytes, &DecodeLimits::default()).unwrap();
//! assert!(matches!(answer, Err(keyvalue::KvError::AccessDenied { .. })));
//! ```

use std::fmt;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{DecodeLimits, decode_msgpack, encode_msgpack};
use crate::invocation::{RpcError, RpcErrorKind};

/// Implements [`Operation`] for request type `$ty` of `$contract`, named
/// `$name`, answered with `$output`.
macro_rules! operation {
    ($contract:ident, $ty:ident, $name:literal, $output:ty) => {
        impl $crate::contracts::Operation for $ty {
            type Contract = $contract;
            type Output = $output;
            const NAME: &'static str = $name;
        }
    };
}

/// Declares a contract's server side from one list of operations: a
/// `Handler` trait with one method per operation (given the provider's
/// state for the caller's link), and `dispatch`, which decodes the request
/// an operation name stands for, calls the method and encodes its answer.
/// Adding an operation to a contract adds it to both.
macro_rules! handler {
    (
        $(#[$doc:meta])*
        contract: $contract:ident,
        link: $link_doc:literal,
        operations: { $( $op:ident => $method:ident ),+ $(,)? }
    ) => {
        $(#[$doc])*
        pub trait Handler: Send + Sync {
            #[doc = $link_doc]
            type Link: Send + Sync;

            $(
                #[doc = concat!("[`", stringify!($op), "`].")]
                fn $method(
                    &self,
                    link: &Self::Link,
                    request: $op,
                ) -> impl std::future::Future<Output = $crate::contracts::Answer<$op>> + Send;
            )+
        }

        #[doc = concat!("Serves one `", stringify!($contract), "` invocation with `handler`: decodes")]
        /// the request named by `operation`, calls the handler's method and
        /// encodes its answer.
        ///
        /// # Errors
        ///
        /// [`RpcErrorKind::NotFound`](crate::RpcErrorKind::NotFound) for an
        /// operation the contract does not have;
        /// [`RpcErrorKind::BadRequest`](crate::RpcErrorKind::BadRequest) for
        /// a payload that is not its request.
        pub async fn dispatch<H: Handler>(
            handler: &H,
            link: &H::Link,
            operation: &str,
            payload: &[u8],
            limits: &$crate::codec::DecodeLimits,
        ) -> Result<Vec<u8>, $crate::invocation::RpcError> {
            use $crate::contracts::{Contract as _, Operation as _};
            match operation {
                $(
                    $op::NAME => {
                        $crate::contracts::serve_operation(payload, limits, |r| {
                            handler.$method(link, r)
                        })
                        .await
                    }
                )+
                other => Err($crate::contracts::unknown_operation($contract::ID, other)),
            }
        }
    };
}

pub mod http;
pub mod keyvalue;
pub mod sqldb;

/// A contract: its id and its error type.
pub trait Contract: Send + Sync + 'static {
    /// The contract id, as in link definitions and claims (`wasi:keyvalue`).
    const ID: &'static str;
    /// The error every operation of the contract can answer.
    type Error: ContractError;
}

/// The error type of a contract.
pub trait ContractError:
    Serialize + DeserializeOwned + fmt::Debug + fmt::Display + Send + Sync + 'static
{
    /// The contract's own denial: no claim, no link, or a refused token.
    fn denied(message: String) -> Self;

    /// The contract's error for a failed call (`error` of the
    /// [`crate::InvocationResponse`], or a local failure to send it).
    /// [`RpcErrorKind::Denied`] must map to [`ContractError::denied`].
    fn from_rpc(error: RpcError) -> Self;
}

/// One operation of a contract: the request type, its wire name and the
/// type of its successful answer.
pub trait Operation: Serialize + DeserializeOwned + Send + 'static {
    /// The contract this operation belongs to.
    type Contract: Contract;
    /// What a successful call returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The operation name on the wire, `{contract}/{interface}.{function}`.
    const NAME: &'static str;
}

/// The error type of operation `O`'s contract.
pub type ErrorOf<O> = <<O as Operation>::Contract as Contract>::Error;

/// What a call of operation `O` answers: its output or its contract's error.
pub type Answer<O> = Result<<O as Operation>::Output, ErrorOf<O>>;

/// Something that carries one invocation to the target of a link and
/// brings back its response payload: the RPC client over NATS in hosts and
/// providers, an in-memory table in tests.
pub trait Transport: Send + Sync {
    /// Sends `payload` as `operation` and returns the response payload.
    ///
    /// # Errors
    ///
    /// The [`RpcError`] of a failed call (see the module's error convention).
    fn call(
        &self,
        operation: &'static str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send;
}

/// The client stub: calls `request` over `transport` and decodes the typed
/// answer. Failures of the call are folded into the contract's error with
/// [`ContractError::from_rpc`].
pub async fn call<O: Operation>(transport: &impl Transport, request: O) -> Answer<O> {
    let payload = encode_request(&request).map_err(from_rpc::<O>)?;
    let bytes = transport
        .call(O::NAME, payload)
        .await
        .map_err(from_rpc::<O>)?;
    // The transport already bounded the message; decode within defaults.
    decode_answer::<O>(&bytes, &DecodeLimits::default()).map_err(from_rpc::<O>)?
}

fn from_rpc<O: Operation>(error: RpcError) -> ErrorOf<O> {
    <ErrorOf<O> as ContractError>::from_rpc(error)
}

/// Encodes a request as an invocation payload.
///
/// # Errors
///
/// [`RpcErrorKind::BadRequest`] if serialization fails.
pub fn encode_request<O: Operation>(request: &O) -> Result<Vec<u8>, RpcError> {
    encode_msgpack(request).map_err(|e| RpcError::new(RpcErrorKind::BadRequest, e.to_string()))
}

/// Decodes an invocation payload as request `O`, within `limits`.
///
/// # Errors
///
/// [`RpcErrorKind::BadRequest`] (or [`RpcErrorKind::TooLarge`]) for a
/// payload that is not an `O`.
pub fn decode_request<O: Operation>(payload: &[u8], limits: &DecodeLimits) -> Result<O, RpcError> {
    decode_msgpack(payload, limits).map_err(|e| {
        RpcError::new(
            RpcError::decode_kind(&e),
            format!("the payload is not a {} request: {e}", O::NAME),
        )
    })
}

/// Encodes an answer as a response payload.
///
/// # Errors
///
/// [`RpcErrorKind::Failed`] if serialization fails.
pub fn encode_answer<O: Operation>(answer: &Answer<O>) -> Result<Vec<u8>, RpcError> {
    encode_msgpack(answer).map_err(|e| {
        RpcError::new(
            RpcErrorKind::Failed,
            format!("cannot encode the answer: {e}"),
        )
    })
}

/// Decodes a response payload as the answer of `O`, within `limits`.
///
/// # Errors
///
/// [`RpcErrorKind::Failed`] for a payload that is not an answer of `O`.
pub fn decode_answer<O: Operation>(
    payload: &[u8],
    limits: &DecodeLimits,
) -> Result<Answer<O>, RpcError> {
    decode_msgpack(payload, limits).map_err(|e| {
        RpcError::new(
            RpcErrorKind::Failed,
            format!("undecodable answer to {}: {e}", O::NAME),
        )
    })
}

/// Serves one operation: decodes the request, runs `handle` and encodes its
/// answer. The `dispatch` function of every contract module is a `match`
/// on the operation name over this.
///
/// # Errors
///
/// As [`decode_request`] and [`encode_answer`].
pub async fn serve_operation<O, F, Fut>(
    payload: &[u8],
    limits: &DecodeLimits,
    handle: F,
) -> Result<Vec<u8>, RpcError>
where
    O: Operation,
    F: FnOnce(O) -> Fut,
    Fut: Future<Output = Answer<O>>,
{
    let request = decode_request::<O>(payload, limits)?;
    let answer = handle(request).await;
    encode_answer::<O>(&answer)
}

/// The error for an operation name a contract does not have.
pub fn unknown_operation(contract: &str, operation: &str) -> RpcError {
    RpcError::new(
        RpcErrorKind::NotFound,
        format!("{contract} has no operation {operation:?}"),
    )
}
