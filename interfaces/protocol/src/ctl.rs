//! Control-interface requests and replies (JSON).
//!
//! Each operation named by [`crate::subject::CtlOperation`] takes the request
//! type listed on it here and answers with a [`CtlReply`]. `docs/protocol.md`
//! has one example per operation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::LinkDefinition;
use crate::codec::{DecodeError, DecodeLimits, EncodeError, decode_json, encode_json};
use crate::host::{ActorDescription, HostInventory, ProviderDescription};

/// Maximum concurrent instances of an actor when a start request gives none.
pub const DEFAULT_MAX_INSTANCES: u32 = 1;

/// The envelope of every control-interface reply:
/// `{"success": bool, "message": string, "response": T | null}`, and on a
/// failure `"kind"`, a [`CtlFailure`].
///
/// # Examples
///
/// ```
/// use trellis_protocol::CtlReply;
///
/// let reply = CtlReply::ok(42u32);
/// assert_eq!(String::from_utf8(reply.encode().unwrap()).unwrap(), r#"{"success":true,"message":"","response":42}"#);
/// let failed: CtlReply<u32> = CtlReply::failed("no such actor");
/// assert!(!failed.success);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlReply<T> {
    /// Whether the operation was accepted.
    pub success: bool,
    /// Why it failed, or an informative note; empty on plain success.
    #[serde(default)]
    pub message: String,
    /// The operation's result, when it has one.
    #[serde(default = "none")]
    pub response: Option<T>,
    /// What kind of failure it is; absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CtlFailure>,
}

fn none<T>() -> Option<T> {
    None
}

/// Why a control request failed, for clients to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CtlFailure {
    /// The request was unsigned, its token did not verify, or its
    /// credential's scope does not allow the operation.
    Denied,
    /// The request is malformed.
    BadRequest,
    /// The actor, provider or link does not exist there.
    NotFound,
    /// The request conflicts with what runs (e.g. another module).
    Conflict,
    /// The operation was tried and failed.
    Failed,
}

impl<T> CtlReply<T> {
    /// A successful reply with a result.
    pub fn ok(response: T) -> Self {
        Self {
            success: true,
            message: String::new(),
            response: Some(response),
            kind: None,
        }
    }

    /// A failed reply with a reason for people, of kind
    /// [`CtlFailure::Failed`].
    pub fn failed(message: impl Into<String>) -> Self {
        Self::refused(CtlFailure::Failed, message)
    }

    /// A failed reply of `kind` with a reason for people.
    pub fn refused(kind: CtlFailure, message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            response: None,
            kind: Some(kind),
        }
    }
}

impl CtlReply<()> {
    /// A successful reply without a result.
    pub fn accepted() -> Self {
        Self {
            success: true,
            message: String::new(),
            response: None,
            kind: None,
        }
    }
}

impl<T: Serialize> CtlReply<T> {
    /// Encodes the reply as JSON.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if `T` cannot be serialised.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_json(self)
    }
}

impl<T: serde::de::DeserializeOwned> CtlReply<T> {
    /// Decodes a reply received from the network.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`].
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        decode_json(bytes, limits)
    }
}

/// Free-form annotations attached to actors and providers by whoever started
/// them (wadm records the manifest that owns an instance here). At most
/// [`MAX_ANNOTATIONS`] entries, each within [`MAX_ANNOTATION_KEY_BYTES`] and
/// [`MAX_ANNOTATION_VALUE_BYTES`]: see [`validate_annotations`].
pub type Annotations = BTreeMap<String, String>;

/// Most annotations on one actor or provider, a count. Defaults to 32.
pub const MAX_ANNOTATIONS: usize = 32;
/// Longest annotation key, in bytes. Defaults to 128.
pub const MAX_ANNOTATION_KEY_BYTES: usize = 128;
/// Longest annotation value, in bytes. Defaults to 1,024.
pub const MAX_ANNOTATION_VALUE_BYTES: usize = 1024;

/// Annotations over the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAnnotations {
    /// More than [`MAX_ANNOTATIONS`] entries; holds the count.
    #[error("{0} annotations; at most 32 are accepted")]
    TooMany(usize),
    /// An empty key, or one longer than [`MAX_ANNOTATION_KEY_BYTES`].
    #[error("annotation key {0:?} must be 1 to 128 bytes")]
    Key(String),
    /// A value longer than [`MAX_ANNOTATION_VALUE_BYTES`]; holds its key.
    #[error("the value of annotation {0:?} is longer than 1024 bytes")]
    Value(String),
}

/// Checks annotations against [`MAX_ANNOTATIONS`],
/// [`MAX_ANNOTATION_KEY_BYTES`] and [`MAX_ANNOTATION_VALUE_BYTES`].
///
/// # Errors
///
/// The first limit exceeded, as an [`InvalidAnnotations`].
///
/// # Examples
///
/// ```
/// use trellis_protocol::ctl::{validate_annotations, Annotations, InvalidAnnotations};
///
/// let owner = Annotations::from([("owner".to_owned(), "demo".to_owned())]);
/// assert!(validate_annotations(&owner).is_ok());
///
/// let many: Annotations = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
/// assert_eq!(validate_annotations(&many), Err(InvalidAnnotations::TooMany(33)));
/// ```
pub fn validate_annotations(annotations: &Annotations) -> Result<(), InvalidAnnotations> {
    if annotations.len() > MAX_ANNOTATIONS {
        return Err(InvalidAnnotations::TooMany(annotations.len()));
    }
    for (key, value) in annotations {
        if key.is_empty() || key.len() > MAX_ANNOTATION_KEY_BYTES {
            return Err(InvalidAnnotations::Key(key.clone()));
        }
        if value.len() > MAX_ANNOTATION_VALUE_BYTES {
            return Err(InvalidAnnotations::Value(key.clone()));
        }
    }
    Ok(())
}

/// `actor.start.{host}`: start an actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartActorRequest {
    /// Where the module comes from: a file path on the host.
    pub actor_ref: String,
    /// Maximum concurrent instances (a count). Defaults to
    /// [`DEFAULT_MAX_INSTANCES`].
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Annotations to attach. Empty by default.
    #[serde(default)]
    pub annotations: Annotations,
}

fn default_max_instances() -> u32 {
    DEFAULT_MAX_INSTANCES
}

/// `actor.scale.{host}`: change an actor's maximum concurrent instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleActorRequest {
    /// Public key (`M…`) of the running actor.
    pub actor_id: String,
    /// New maximum concurrent instances (a count); 0 stops the actor.
    pub max_instances: u32,
    /// Annotations to attach. Empty by default.
    #[serde(default)]
    pub annotations: Annotations,
}

/// `actor.update.{host}`: replace a running actor's module. In-flight
/// invocations finish on the old module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateActorRequest {
    /// Public key (`M…`) of the running actor; the new module must carry
    /// claims for the same key.
    pub actor_id: String,
    /// Where the new module comes from.
    pub new_actor_ref: String,
}

/// `actor.stop.{host}`: stop an actor once its in-flight invocations finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopActorRequest {
    /// Public key (`M…`) of the running actor.
    pub actor_id: String,
}

/// `provider.start.{host}`: start a capability provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartProviderRequest {
    /// Where the provider comes from: a `.par.gz` path (or, in development
    /// mode only, a plain binary path).
    pub provider_ref: String,
    /// Link name the provider serves. Defaults to `default`.
    #[serde(default = "default_link_name")]
    pub link_name: String,
    /// Provider configuration. Empty by default.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Annotations to attach. Empty by default.
    #[serde(default)]
    pub annotations: Annotations,
}

fn default_link_name() -> String {
    crate::DEFAULT_LINK_NAME.to_owned()
}

/// `provider.stop.{host}`: stop a capability provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopProviderRequest {
    /// Public key (`V…`) of the provider.
    pub provider_id: String,
    /// Link name it serves. Defaults to `default`.
    #[serde(default = "default_link_name")]
    pub link_name: String,
}

/// `link.put`: the body is a [`LinkDefinition`].
pub type PutLinkRequest = LinkDefinition;

/// `link.del`: delete the link for (actor, contract, link name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLinkRequest {
    /// Public key (`M…`) of the actor.
    pub actor_id: String,
    /// The contract.
    pub contract_id: crate::ContractId,
    /// The link name. Defaults to `default`.
    #[serde(default = "default_link_name")]
    pub link_name: String,
}

/// `link.list` reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkList {
    /// Every link definition in the lattice.
    pub links: Vec<LinkDefinition>,
}

/// `claims.list` reply: the claims of every actor started in the lattice,
/// as stored in the lattice bucket under `claims.{actor_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClaimsList {
    /// The decoded JWT claims (registered claims plus the `trellis`
    /// metadata object), one per actor.
    pub claims: Vec<serde_json::Value>,
}

/// `label.put.{host}`: set one host label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutLabelRequest {
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

/// `label.del.{host}`: delete one host label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLabelRequest {
    /// Label key.
    pub key: String,
}

/// `host.stop.{host}`: drain and stop the host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StopHostRequest {
    /// How long to wait for in-flight invocations, in ms. `None` uses the
    /// host's configured drain timeout.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// `host.ping` reply: one per host in the lattice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPong {
    /// The host's public key (`N…`).
    pub host_id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its Trellis version.
    pub version: String,
    /// Time since it started, in ms.
    pub uptime_ms: u64,
    /// The public half (`X…`) of the lattice's secrets key as this host
    /// holds it: link secrets are sealed to it ([`crate::SealedSecret`]).
    pub secrets_key: String,
}

/// `host.get.{host}` reply.
pub type HostGetReply = HostInventory;

/// What `actor.start`, `actor.scale` and `actor.update` answer with.
pub type ActorReply = ActorDescription;

/// What `provider.start` answers with.
pub type ProviderReply = ProviderDescription;

/// Decodes a control-interface request body.
///
/// # Errors
///
/// Any [`DecodeError`].
pub fn decode_request<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<T, DecodeError> {
    decode_json(bytes, limits)
}
