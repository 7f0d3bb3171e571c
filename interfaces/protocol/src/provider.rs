//! What a host hands a capability provider when it starts it.
//!
//! The host writes one [`HostData`] as JSON to the provider's stdin and then
//! closes it; the provider reads it before doing anything else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::LinkDefinition;
use crate::codec::{DecodeError, DecodeLimits, EncodeError, decode_json, encode_json};

/// The operation a host's link put to its provider is signed for
/// (`docs/protocol.md` §2.6).
pub const LINK_PUT_OPERATION: &str = "link.put";
/// The operation a host's link deletion to its provider is signed for.
pub const LINK_DEL_OPERATION: &str = "link.del";
/// The operation a host's health check of its provider is signed for.
pub const HEALTH_OPERATION: &str = "health";
/// The operation a host's shutdown request to its provider is signed for.
pub const SHUTDOWN_OPERATION: &str = "shutdown";
/// The operation a host's credential renewal for its provider is signed
/// for.
pub const CREDENTIAL_OPERATION: &str = "credential";

/// A renewed credential for a provider process, sent by its host on
/// `{rpc}.credential.{host_id}` before the current one expires
/// (`docs/protocol.md` §2.6). JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRenewal {
    /// The new credential: a JWT issued by the host's cluster key for the
    /// process's key (the key of `HostData::provider_seed`).
    pub credential: String,
}

/// How a provider authenticates to NATS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NatsAuth {
    /// No authentication.
    None,
    /// An nkey seed (`SU…`).
    Nkey {
        /// The seed.
        seed: String,
    },
    /// A NATS credentials file (JWT and seed).
    Credentials {
        /// Path of the file.
        path: String,
    },
    /// User name and password.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

/// TLS settings for the NATS connection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NatsTls {
    /// CA certificate file (PEM) to verify the server with.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate file (PEM).
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Client key file (PEM).
    #[serde(default)]
    pub key_file: Option<String>,
}

/// How to reach the lattice's NATS servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsConnection {
    /// Server URLs, e.g. `nats://127.0.0.1:4222`.
    pub urls: Vec<String>,
    /// Authentication.
    pub auth: NatsAuth,
    /// TLS, when the servers require it.
    #[serde(default)]
    pub tls: Option<NatsTls>,
    /// Messages each subscription buffers between the connection and its
    /// reader, a count. Once it is full, further messages for that
    /// subscription are dropped (a NATS "slow consumer"), so one
    /// subscription holds at most this many times the server's
    /// `max_payload` bytes. Defaults to [`DEFAULT_SUBSCRIPTION_CAPACITY`].
    #[serde(default = "default_subscription_capacity")]
    pub subscription_capacity: usize,
}

/// Default of [`NatsConnection::subscription_capacity`]: 4,096 messages,
/// as many as a host lets wait or run per actor (`max_pending_invocations`),
/// so that a burst the host would accept is never dropped before it is
/// read. That is 4 MiB with 1 KiB invocations, and at worst 4 GiB with
/// NATS's default `max_payload` of 1 MiB: lower it, or the server's
/// `max_payload`, on small devices.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 4_096;

fn default_subscription_capacity() -> usize {
    DEFAULT_SUBSCRIPTION_CAPACITY
}

impl NatsConnection {
    /// Settings for `urls` with `auth`, no TLS and the default
    /// subscription capacity.
    pub fn new(urls: Vec<String>, auth: NatsAuth) -> Self {
        Self {
            urls,
            auth,
            tls: None,
            subscription_capacity: DEFAULT_SUBSCRIPTION_CAPACITY,
        }
    }
}

/// Everything a provider needs to join the lattice, read from stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostData {
    /// The lattice.
    pub lattice: String,
    /// The host that started the provider (`N…`).
    pub host_id: String,
    /// The provider's id (`V…`), the subject of its claims: links and RPC
    /// subjects name it.
    pub provider_id: String,
    /// The seed (`SV…`) of this instance's signing key, made by the host
    /// for this process; its invocations are signed with it.
    pub provider_seed: String,
    /// The seed (`SX…`) of this instance's xkey, made by the host for this
    /// process: the secrets in the links its host sends it are sealed to
    /// it ([`crate::SealedSecret`]).
    pub secrets_seed: String,
    /// The provider's credential: a JWT issued by a cluster issuer of the
    /// lattice vouching for its key (see `trellis_claims::invocation`).
    pub credential: String,
    /// The link name this instance serves.
    pub link_name: String,
    /// NATS connection settings.
    pub nats: NatsConnection,
    /// Public keys whose signatures on invocations are accepted.
    pub invocation_issuers: Vec<String>,
    /// Link definitions that name this provider, at start time.
    #[serde(default)]
    pub links: Vec<LinkDefinition>,
    /// Provider configuration from the start request.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Log filter (tracing-subscriber `EnvFilter` syntax). Defaults to `info`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl HostData {
    /// Encodes the host data as JSON.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_json(self)
    }

    /// Decodes host data.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`].
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        decode_json(bytes, limits)
    }
}

/// A provider's answer to a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Whether the provider can serve (its backend is reachable).
    pub healthy: bool,
    /// Details for people, e.g. why it is unhealthy. Empty by default.
    #[serde(default)]
    pub message: String,
}
