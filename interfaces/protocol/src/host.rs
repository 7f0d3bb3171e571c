//! Host inventory and heartbeats.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, DecodeLimits, EncodeError, decode_json, encode_json};
use crate::ctl::Annotations;

/// An actor running on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorDescription {
    /// Its public key (`M…`), the subject of its claims.
    pub id: String,
    /// Name from its claims.
    pub name: String,
    /// Where its module came from.
    pub image_ref: String,
    /// Revision from its claims.
    #[serde(default)]
    pub revision: u32,
    /// Maximum concurrent instances (a count).
    pub max_instances: u32,
    /// Annotations given when it was started.
    #[serde(default)]
    pub annotations: Annotations,
}

/// A capability provider running on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDescription {
    /// Its public key (`V…`), the subject of its claims.
    pub id: String,
    /// Name from its claims.
    pub name: String,
    /// The contract it serves.
    pub contract_id: crate::ContractId,
    /// The link name it serves.
    pub link_name: String,
    /// Where its archive came from.
    pub image_ref: String,
    /// Revision from its claims.
    #[serde(default)]
    pub revision: u32,
    /// Annotations given when it was started.
    #[serde(default)]
    pub annotations: Annotations,
}

/// Everything a host runs, as answered to `host.get` and sent in heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInventory {
    /// The host's public key (`N…`).
    pub host_id: String,
    /// The lattice it belongs to.
    pub lattice: String,
    /// Its labels, built-in ones (`hostcore.arch`, `hostcore.os`,
    /// `hostcore.osfamily`, `hostcore.version`) included.
    pub labels: BTreeMap<String, String>,
    /// Its Trellis version.
    pub version: String,
    /// Time since it started, in ms.
    pub uptime_ms: u64,
    /// Actors it runs.
    #[serde(default)]
    pub actors: Vec<ActorDescription>,
    /// Providers it runs.
    #[serde(default)]
    pub providers: Vec<ProviderDescription>,
}

/// The periodic proof of life of a host, published as the data of a
/// `host_heartbeat` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The host's inventory at the time of the heartbeat.
    #[serde(flatten)]
    pub inventory: HostInventory,
    /// Interval between heartbeats, in ms, so that observers know when to
    /// consider the host gone (wadm waits three intervals).
    pub interval_ms: u64,
}

impl Heartbeat {
    /// Encodes the heartbeat as JSON.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_json(self)
    }

    /// Decodes a heartbeat received from the network.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`].
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        decode_json(bytes, limits)
    }
}
