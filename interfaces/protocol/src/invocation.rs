//! Invocations: the RPC messages that carry calls between actors, providers
//! and hosts over `trellis.rpc.{lattice}.{target}[.{link_name}]`.
//!
//! Both messages are msgpack maps keyed by field name (rmp-serde's
//! `to_vec_named`), so a field can be added without breaking older readers.
//! `docs/protocol.md` lists every field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, DecodeLimits, EncodeError, decode_msgpack, encode_msgpack};

/// The protocol version this build writes and the highest it reads.
pub const PROTOCOL_VERSION: u16 = 1;

/// What kind of lattice member an [`Entity`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A WebAssembly actor; its id is an `M…` public key.
    Actor,
    /// A capability provider; its id is a `V…` public key.
    Provider,
    /// A host; its id is an `N…` public key.
    Host,
}

/// The sender or the receiver of an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entity {
    /// What kind of member this is.
    pub kind: EntityKind,
    /// Its public key (`M…`, `V…` or `N…`).
    pub id: String,
    /// Contract the call belongs to (e.g. `wasi:keyvalue`); `None` for calls
    /// into an actor's own exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    /// Link name the call travels over; `None` when no link is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_name: Option<String>,
}

/// W3C Trace Context headers (`traceparent`, `tracestate`) carried with an
/// invocation, as specified at <https://www.w3.org/TR/trace-context/>.
///
/// Empty when tracing is off.
pub type TraceContext = BTreeMap<String, String>;

/// A call from one lattice member to another.
///
/// # Examples
///
/// ```
/// use trellis_protocol::{DecodeLimits, Entity, EntityKind, Invocation};
///
/// let inv = Invocation::new(
///     "inv-1",
///     Entity { kind: EntityKind::Provider, id: "VHTTP".into(), contract_id: Some("wasi:http".into()), link_name: Some("default".into()) },
///     Entity { kind: EntityKind::Actor, id: "MHELLO".into(), contract_id: None, link_name: None },
///     "wasi:http/incoming-handler.handle",
///     b"GET /".to_vec(),
/// );
/// let bytes = inv.encode().unwrap();
/// let back = Invocation::decode(&bytes, &DecodeLimits::default()).unwrap();
/// assert_eq!(back, inv);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// Protocol version; [`PROTOCOL_VERSION`] when written by this build.
    pub version: u16,
    /// Unique id of this invocation, chosen by the sender (a UUID in text
    /// form from Trellis hosts). The same id inside [`Invocation::token`] is
    /// what receivers remember to refuse replays.
    pub id: String,
    /// Who sends the call.
    pub origin: Entity,
    /// Who receives it.
    pub target: Entity,
    /// The function called, `{package}/{interface}.{function}`, e.g.
    /// `wasi:keyvalue/store.get`.
    pub operation: String,
    /// Arguments, encoded as the contract specifies (see `docs/protocol.md`).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Authentication token: a compact JWS signed by the sender's key that
    /// binds the id, an expiry and the SHA-256 of the payload. Empty until
    /// the sender signs the invocation.
    pub token: String,
    /// Trace context propagated with the call.
    #[serde(default)]
    pub trace: TraceContext,
}

impl Invocation {
    /// A new, unsigned invocation at [`PROTOCOL_VERSION`] with an empty
    /// trace context.
    pub fn new(
        id: impl Into<String>,
        origin: Entity,
        target: Entity,
        operation: impl Into<String>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            id: id.into(),
            origin,
            target,
            operation: operation.into(),
            payload,
            token: String::new(),
            trace: TraceContext::new(),
        }
    }

    /// Encodes the invocation as a msgpack map.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if serialization fails, which it does not for
    /// well-formed values.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_msgpack(self)
    }

    /// Decodes an invocation received from the network, within `limits`.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`]; [`DecodeError::UnsupportedVersion`] for a version
    /// newer than [`PROTOCOL_VERSION`].
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let inv: Self = decode_msgpack(bytes, limits)?;
        check_version(inv.version)?;
        Ok(inv)
    }
}

/// Where an invocation goes: its subject, and the origin and target it
/// names. Built by [`crate::Lattice::route_to_provider`] and
/// [`crate::Lattice::route_to_actor`], so no caller assembles entities by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The RPC subject, `trellis.rpc.{lattice}.{target}[.{link_name}]`.
    pub subject: String,
    /// Who calls.
    pub origin: Entity,
    /// Who is called.
    pub target: Entity,
}

/// Kinds of failure an [`InvocationResponse`] can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RpcErrorKind {
    /// The call is not allowed: no claim for the contract, no link, or a
    /// token that did not verify.
    Denied,
    /// The target does not run here or does not export the operation.
    NotFound,
    /// The target did not answer within its deadline.
    Timeout,
    /// The payload could not be decoded or is invalid for the operation.
    BadRequest,
    /// The payload is larger than the receiver accepts.
    TooLarge,
    /// The target failed (trap, crash, backend error).
    Failed,
    /// A kind this build does not know, sent by a newer peer.
    #[serde(other)]
    Unknown,
}

/// A failure reported by the receiver of an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// What went wrong, for programs.
    pub kind: RpcErrorKind,
    /// What went wrong, for people.
    pub message: String,
}

impl RpcErrorKind {
    /// The wire name, e.g. `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            RpcErrorKind::Denied => "denied",
            RpcErrorKind::NotFound => "not_found",
            RpcErrorKind::Timeout => "timeout",
            RpcErrorKind::BadRequest => "bad_request",
            RpcErrorKind::TooLarge => "too_large",
            RpcErrorKind::Failed => "failed",
            RpcErrorKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for RpcErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RpcError {
    /// An error of `kind` with `message`.
    pub fn new(kind: RpcErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind to answer for a message that does not decode:
    /// [`RpcErrorKind::TooLarge`] for one over the size limit,
    /// [`RpcErrorKind::BadRequest`] otherwise.
    pub fn decode_kind(error: &crate::DecodeError) -> RpcErrorKind {
        if matches!(error, crate::DecodeError::TooLarge { .. }) {
            RpcErrorKind::TooLarge
        } else {
            RpcErrorKind::BadRequest
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RpcError {}

/// The answer to an [`Invocation`], sent to its NATS reply subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationResponse {
    /// Protocol version; [`PROTOCOL_VERSION`] when written by this build.
    pub version: u16,
    /// The [`Invocation::id`] this answers.
    pub invocation_id: String,
    /// The result, encoded as the contract specifies; empty on error.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Set when the call failed.
    #[serde(default)]
    pub error: Option<RpcError>,
    /// Trace context of the receiver's span.
    #[serde(default)]
    pub trace: TraceContext,
}

impl InvocationResponse {
    /// A successful response carrying `payload`.
    pub fn ok(invocation_id: impl Into<String>, payload: Vec<u8>) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            invocation_id: invocation_id.into(),
            payload,
            error: None,
            trace: TraceContext::new(),
        }
    }

    /// A failed response.
    pub fn error(
        invocation_id: impl Into<String>,
        kind: RpcErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            invocation_id: invocation_id.into(),
            payload: Vec::new(),
            error: Some(RpcError {
                kind,
                message: message.into(),
            }),
            trace: TraceContext::new(),
        }
    }

    /// Encodes the response as a msgpack map.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_msgpack(self)
    }

    /// Decodes a response received from the network, within `limits`.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`]; [`DecodeError::UnsupportedVersion`] for a version
    /// newer than [`PROTOCOL_VERSION`].
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let resp: Self = decode_msgpack(bytes, limits)?;
        check_version(resp.version)?;
        Ok(resp)
    }
}

fn check_version(found: u16) -> Result<(), DecodeError> {
    if found == 0 || found > PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(())
}
