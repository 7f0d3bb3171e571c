//! The policy service's wire format (`docs/protocol.md` §5.16): a host asks
//! with a [`PolicyRequest`] (JSON) and the service answers with a
//! [`PolicyDecision`] (JSON).

use serde::{Deserialize, Serialize};

/// What a host asks the policy service about.
///
/// # Examples
///
/// ```
/// use trellis_protocol::policy::{PolicyAction, PolicyRequest};
///
/// let request = PolicyRequest {
///     lattice: "default".into(),
///     host_id: "NHOST".into(),
///     action: PolicyAction::Invocation {
///         origin: "VHTTP".into(),
///         target: "MACTOR".into(),
///         operation: "wasi:http/incoming-handler.handle".into(),
///     },
/// };
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"lattice":"default","host_id":"NHOST","kind":"invocation","origin":"VHTTP","target":"MACTOR","operation":"wasi:http/incoming-handler.handle"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// The lattice.
    pub lattice: String,
    /// The host asking (`N…`).
    pub host_id: String,
    /// What it is about to do.
    #[serde(flatten)]
    pub action: PolicyAction,
}

/// The action a [`PolicyRequest`] asks about, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyAction {
    /// Start an actor whose claims verified.
    ActorStart {
        /// The actor (`M…`).
        actor_id: String,
        /// The account that signed its claims (`A…`).
        issuer: String,
        /// Its name in its claims.
        name: String,
        /// The contracts its claims grant.
        caps: Vec<String>,
    },
    /// Start a capability provider.
    ProviderStart {
        /// The provider (`V…`).
        provider_id: String,
        /// The account that signed its claims; empty for a development
        /// binary.
        issuer: String,
        /// Its name.
        name: String,
        /// The contract it serves.
        contract_id: String,
        /// The link name it would serve.
        link_name: String,
    },
    /// Put a link definition (its `config` is not sent: it may hold
    /// secrets).
    LinkPut {
        /// The actor (`M…`).
        actor_id: String,
        /// The contract.
        contract_id: String,
        /// The link name.
        link_name: String,
        /// The provider (`V…`).
        provider_id: String,
    },
    /// Deliver an invocation to an actor of this host.
    Invocation {
        /// Who the call is from: a provider (`V…`) or host (`N…`), or the
        /// actor a host calls for.
        origin: String,
        /// The actor (`M…`).
        target: String,
        /// The operation.
        operation: String,
    },
}

/// The policy service's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// Whether the action may go ahead.
    pub permitted: bool,
    /// Why, for people; shown in the refusal.
    #[serde(default)]
    pub message: String,
}

impl PolicyDecision {
    /// A denial with `message`.
    pub fn deny(message: impl Into<String>) -> Self {
        Self {
            permitted: false,
            message: message.into(),
        }
    }
}
