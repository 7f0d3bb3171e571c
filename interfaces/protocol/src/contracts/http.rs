//! `wasi:http`: an HTTP request delivered to an actor's
//! `wasi:http/incoming-handler` export, and the response it produced.
//!
//! Operation: [`HANDLE_OPERATION`]. The invocation payload is an
//! [`HttpRequest`]; the response payload an [`HttpResponse`]. Bodies are
//! carried whole (no streaming in protocol v1).

use serde::{Deserialize, Serialize};

/// The operation name of an incoming HTTP request.
pub const HANDLE_OPERATION: &str = "wasi:http/incoming-handler.handle";

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
