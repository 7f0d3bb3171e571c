//! The `data` of every lattice event type, one type per [`EventType`].
//!
//! Each type implements [`EventData`], which names the event type it is the
//! data of; [`crate::CloudEvent::from_data`] takes the envelope's `type` from
//! there, so an event cannot be built with the data of another type. The
//! `host_heartbeat` data is [`Heartbeat`], defined with the inventory.
//!
//! Members are written in declaration order. Optional members say in their
//! documentation whether an absent value is written as `null` or left out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EventData, EventType};
use crate::host::{ActorDescription, Heartbeat, ProviderDescription};
use crate::link::{ContractId, LinkDefinition};

/// `host_started`: the host has joined the lattice and serves the control
/// interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStartedData {
    /// The host's labels, built-in ones (`hostcore.*`) included.
    pub labels: BTreeMap<String, String>,
}

/// `host_stopped`: the host has stopped its actors and providers; the last
/// event it publishes. The data is always the empty object `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStoppedData {}

/// `labels_changed`: a label was put or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsChangedData {
    /// All of the host's labels after the change, built-in ones included.
    pub labels: BTreeMap<String, String>,
}

/// `actor_started`: a new actor runs and receives invocations. Its JSON is
/// the [`ActorDescription`] itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorStartedData(pub ActorDescription);

/// `actor_stopped`: an actor was stopped, after its in-flight invocations
/// drained. Its JSON is the [`ActorDescription`] the actor had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorStoppedData(pub ActorDescription);

/// `actor_scaled`: a running actor's maximum instances (and annotations)
/// were set. Its JSON is the [`ActorDescription`] after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorScaledData(pub ActorDescription);

/// `actor_updated`: a running actor's module was replaced. Its JSON is the
/// [`ActorDescription`] after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorUpdatedData(pub ActorDescription);

/// `actor_failed`: a module given to start or update an actor could not be
/// read, verified or compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorFailedData {
    /// The module's reference as given in the request (a file path).
    pub image_ref: String,
    /// What went wrong, for people: the text of the failed reply.
    pub error: String,
    /// The claims error code (`untrusted_issuer`, `hash_mismatch`,
    /// `invalid_wasm`, ...) when the module's claims or wasm framing were at
    /// fault. Always written: `null` for any other failure (I/O, size,
    /// compilation).
    #[serde(default)]
    pub claims_error: Option<String>,
}

/// `link_set`: a link definition was put. Its JSON is the whole
/// [`LinkDefinition`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LinkSetData(pub LinkDefinition);

/// `link_deleted`: the link for (actor, contract, link name) was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDeletedData {
    /// Public key (`M…`) of the actor.
    pub actor_id: String,
    /// The contract.
    pub contract_id: ContractId,
    /// The link name.
    pub link_name: String,
}

/// Which provider instance a provider or health-check event is about. Its
/// members are written at the top level of the event's data (flattened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInstance {
    /// The provider's public key (`V…`).
    pub provider_id: String,
    /// The link name the instance serves.
    pub link_name: String,
    /// The contract it serves.
    pub contract_id: ContractId,
    /// Its name, from its claims (or the binary's file name in development
    /// mode).
    pub name: String,
}

impl From<&ProviderDescription> for ProviderInstance {
    fn from(d: &ProviderDescription) -> Self {
        Self {
            provider_id: d.id.clone(),
            link_name: d.link_name.clone(),
            contract_id: d.contract_id.clone(),
            name: d.name.clone(),
        }
    }
}

/// Whether a `provider_started` event reports the first process of a
/// provider or one started after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStart {
    /// The first process spawned since `provider.start` (earlier attempts
    /// may have failed to spawn).
    Started,
    /// A later process, after an earlier one exited.
    Restarted,
}

/// `provider_started`: a provider process was spawned and handed its host
/// data. It may not serve yet; the health-check events say when it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStartedData {
    /// The provider instance.
    #[serde(flatten)]
    pub provider: ProviderInstance,
    /// The process id. Always written; `null` only if the process had
    /// already been reaped when the event was built.
    pub pid: Option<u32>,
    /// First start or restart.
    pub start: ProviderStart,
}

/// `provider_failed`: a provider process could not be spawned, or exited
/// without being asked to. The host restarts it after a delay that starts
/// at its `provider_restart_delay` (250 ms by default), doubles with each
/// failure up to `provider_restart_max_delay` (30 s), and returns to the
/// first value after a process has run for a minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFailedData {
    /// The provider instance.
    #[serde(flatten)]
    pub provider: ProviderInstance,
    /// What went wrong, for people: `exited: {status}` (e.g.
    /// `exited: exit status: 1`, `exited: signal: 9 (SIGKILL)`) when the
    /// process exited, else the operating system's error from spawning it.
    pub error: String,
    /// Delay before the restart, in ms. Present only when the process
    /// exited; left out (not `null`) when it could not be spawned, although
    /// that is retried after a delay too. The Trellis host takes the value
    /// before it resets the delay for a process that ran at least a minute,
    /// so after such a process it restarts sooner than this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_in_ms: Option<u64>,
}

/// `provider_stopped`: a provider instance was stopped (by
/// `provider.stop` or because its host stops) and its process reaped; it
/// will not be restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStoppedData {
    /// The provider instance.
    #[serde(flatten)]
    pub provider: ProviderInstance,
}

/// `health_check_passed`: a provider answered its health check with
/// `healthy: true`, for the first time or after failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckPassedData {
    /// The provider instance.
    #[serde(flatten)]
    pub provider: ProviderInstance,
    /// The `message` of the provider's answer (often empty).
    pub message: String,
}

/// `health_check_failed`: a provider's health check failed, for the first
/// time or after passing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckFailedData {
    /// The provider instance.
    #[serde(flatten)]
    pub provider: ProviderInstance,
    /// Why: the `message` of an answer with `healthy: false`,
    /// `bad health answer: {error}` for an answer that does not decode,
    /// `no answer: {error}` when the request failed (e.g. no responders), or
    /// `health check timed out` after 2 s without an answer.
    pub message: String,
}

/// `lattice_data_rejected`: a host ignored an entry of the lattice bucket
/// (`docs/protocol.md` §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeDataRejectedData {
    /// The entry's key, e.g. `link.M….wasi:keyvalue.default`.
    pub key: String,
    /// The failed check's code (`docs/protocol.md` §9.7), e.g.
    /// `malformed` for an unsigned entry, `untrusted_issuer` or
    /// `bad_signature`; or `wrong_key` for a signed entry stored under
    /// another key than its own.
    pub reason: String,
}

macro_rules! event_data {
    ($($data:ty => $ty:ident),* $(,)?) => {
        $(impl EventData for $data {
            const TYPE: EventType = EventType::$ty;
        })*
    };
}

event_data! {
    HostStartedData => HostStarted,
    HostStoppedData => HostStopped,
    Heartbeat => HostHeartbeat,
    ActorStartedData => ActorStarted,
    ActorStoppedData => ActorStopped,
    ActorFailedData => ActorFailed,
    ActorScaledData => ActorScaled,
    ActorUpdatedData => ActorUpdated,
    ProviderStartedData => ProviderStarted,
    ProviderStoppedData => ProviderStopped,
    ProviderFailedData => ProviderFailed,
    LinkSetData => LinkSet,
    LinkDeletedData => LinkDeleted,
    HealthCheckPassedData => HealthCheckPassed,
    HealthCheckFailedData => HealthCheckFailed,
    LabelsChangedData => LabelsChanged,
    LatticeDataRejectedData => LatticeDataRejected,
}
