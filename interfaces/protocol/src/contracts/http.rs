//! `wasi:http`: an HTTP request delivered to an actor's
//! `wasi:http/incoming-handler` export, and the response it produced.
//!
//! | operation | request | output |
//! |---|---|---|
//! | `wasi:http/incoming-handler.handle` | [`HttpRequest`] | [`HttpResponse`] |
//!
//! The answer is `Result<HttpResponse, RpcError>` (see the [error
//! convention](super)): the contract's error is the call error itself, since
//! an actor's failures (a trap, a timeout) are failures of the call. Bodies
//! are carried whole (no streaming in protocol v1).

use serde::{Deserialize, Serialize};

use super::{Contract, ContractError, Operation};
use crate::invocation::{RpcError, RpcErrorKind};

/// The operation name of an incoming HTTP request.
pub const HANDLE_OPERATION: &str = "wasi:http/incoming-handler.handle";

/// The `wasi:http` contract (the actor's `incoming-handler` export, called
/// by the HTTP server provider).
#[derive(Debug, Clone, Copy)]
pub struct Http;

impl Contract for Http {
    const ID: &'static str = "wasi:http";
    type Error = RpcError;
}

impl ContractError for RpcError {
    fn denied(message: String) -> Self {
        RpcError::new(RpcErrorKind::Denied, message)
    }

    fn from_rpc(error: RpcError) -> Self {
        error
    }
}

impl Operation for HttpRequest {
    type Contract = Http;
    type Output = HttpResponse;
    const NAME: &'static str = HANDLE_OPERATION;
}

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host and port the client addressed.
    pub authority: String,
    /// Path and query, e.g. `/?name=Ada`.
    pub path_with_query: String,
    /// Header names and values, in order; names may repeat.
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    /// The whole body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values, in order; names may repeat.
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    /// The whole body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}
