//! Lattice events as CloudEvents 1.0 envelopes in JSON.
//!
//! Every state change of a host is published on
//! `trellis.evt.{lattice}.{event_type}` (see [`crate::subject::Lattice::event`])
//! as a CloudEvent, following the CloudEvents 1.0 specification and its JSON
//! format (<https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md>,
//! <https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md>).
//!
//! The `data` of each [`EventType`] is one type implementing [`EventData`]
//! ([`ActorStartedData`], [`ActorFailedData`], [`ProviderFailedData`], ...,
//! and [`crate::Heartbeat`] for heartbeats); build envelopes with
//! [`CloudEvent::from_data`] so that `type` and `data` always agree.

use std::fmt;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, DecodeLimits, EncodeError, decode_json, encode_json};

mod data;

pub use data::{
    ActorFailedData, ActorScaledData, ActorStartedData, ActorStoppedData, ActorUpdatedData,
    HealthCheckFailedData, HealthCheckPassedData, HostStartedData, HostStoppedData,
    LabelsChangedData, LatticeDataRejectedData, LinkDeletedData, LinkSetData, ProviderFailedData,
    ProviderInstance, ProviderStart, ProviderStartedData, ProviderStoppedData,
};

/// Value of the `specversion` attribute.
pub const CLOUDEVENTS_SPEC_VERSION: &str = "1.0";

/// Prefix of the CloudEvents `type` attribute of every Trellis event.
pub const EVENT_TYPE_PREFIX: &str = "dev.trellis.lattice.";

/// The kinds of lattice event. The subject token and the CloudEvents `type`
/// both derive from [`EventType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventType {
    /// A host joined the lattice; data [`HostStartedData`].
    HostStarted,
    /// A host left the lattice; data [`HostStoppedData`].
    HostStopped,
    /// A host's periodic heartbeat; data is a [`crate::Heartbeat`].
    HostHeartbeat,
    /// An actor started; data [`ActorStartedData`].
    ActorStarted,
    /// An actor stopped; data [`ActorStoppedData`].
    ActorStopped,
    /// A module to start or update an actor with was refused; data
    /// [`ActorFailedData`].
    ActorFailed,
    /// An actor's maximum instances were set; data [`ActorScaledData`].
    ActorScaled,
    /// An actor's module was replaced; data [`ActorUpdatedData`].
    ActorUpdated,
    /// A capability provider's process started; data [`ProviderStartedData`].
    ProviderStarted,
    /// A capability provider stopped; data [`ProviderStoppedData`].
    ProviderStopped,
    /// A capability provider's process could not be spawned or exited;
    /// data [`ProviderFailedData`].
    ProviderFailed,
    /// A link definition was put; data [`LinkSetData`].
    LinkSet,
    /// A link definition was deleted; data [`LinkDeletedData`].
    LinkDeleted,
    /// A provider's health check passed after failing or for the first
    /// time; data [`HealthCheckPassedData`].
    HealthCheckPassed,
    /// A provider's health check failed after passing or for the first
    /// time; data [`HealthCheckFailedData`].
    HealthCheckFailed,
    /// A host's labels changed; data [`LabelsChangedData`].
    LabelsChanged,
    /// A host ignored an entry of the lattice bucket that is unsigned,
    /// tampered or signed by an issuer it does not trust; data
    /// [`LatticeDataRejectedData`].
    LatticeDataRejected,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: [EventType; 17] = [
        EventType::HostStarted,
        EventType::HostStopped,
        EventType::HostHeartbeat,
        EventType::ActorStarted,
        EventType::ActorStopped,
        EventType::ActorFailed,
        EventType::ActorScaled,
        EventType::ActorUpdated,
        EventType::ProviderStarted,
        EventType::ProviderStopped,
        EventType::ProviderFailed,
        EventType::LinkSet,
        EventType::LinkDeleted,
        EventType::HealthCheckPassed,
        EventType::HealthCheckFailed,
        EventType::LabelsChanged,
        EventType::LatticeDataRejected,
    ];

    /// The snake_case token used in subjects, e.g. `actor_started`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::HostStarted => "host_started",
            EventType::HostStopped => "host_stopped",
            EventType::HostHeartbeat => "host_heartbeat",
            EventType::ActorStarted => "actor_started",
            EventType::ActorStopped => "actor_stopped",
            EventType::ActorFailed => "actor_failed",
            EventType::ActorScaled => "actor_scaled",
            EventType::ActorUpdated => "actor_updated",
            EventType::ProviderStarted => "provider_started",
            EventType::ProviderStopped => "provider_stopped",
            EventType::ProviderFailed => "provider_failed",
            EventType::LinkSet => "link_set",
            EventType::LinkDeleted => "link_deleted",
            EventType::HealthCheckPassed => "health_check_passed",
            EventType::HealthCheckFailed => "health_check_failed",
            EventType::LabelsChanged => "labels_changed",
            EventType::LatticeDataRejected => "lattice_data_rejected",
        }
    }

    /// The CloudEvents `type` attribute, e.g. `dev.trellis.lattice.actor_started`.
    pub fn cloudevent_type(self) -> String {
        format!("{EVENT_TYPE_PREFIX}{}", self.as_str())
    }

    /// Parses a subject token or a CloudEvents `type` back into an event type.
    pub fn parse(s: &str) -> Option<Self> {
        let token = s.strip_prefix(EVENT_TYPE_PREFIX).unwrap_or(s);
        Self::ALL.into_iter().find(|t| t.as_str() == token)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data` of one event type: implemented by one type per [`EventType`],
/// so that [`CloudEvent::from_data`] can take the event's `type` from its
/// data and a publisher cannot pair an event type with the wrong data.
pub trait EventData: Serialize {
    /// The event type this is the data of.
    const TYPE: EventType;
}

/// A CloudEvents 1.0 envelope with JSON `data` of type `T`.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use trellis_protocol::{CloudEvent, DecodeLimits, EventType};
///
/// let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
/// let event = CloudEvent::new("ev-1", "NHOST", EventType::ActorStarted, at, serde_json::json!({"actor_id": "MA"}));
/// assert_eq!(event.time, "2023-11-14T22:13:20.123Z");
/// let bytes = event.encode().unwrap();
/// let back: CloudEvent = CloudEvent::decode(&bytes, &DecodeLimits::default()).unwrap();
/// assert_eq!(back.event_type(), Some(EventType::ActorStarted));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<T = serde_json::Value> {
    /// Always [`CLOUDEVENTS_SPEC_VERSION`].
    pub specversion: String,
    /// Unique id of the event (a UUID from Trellis hosts).
    pub id: String,
    /// Who emitted it: the host's public key.
    pub source: String,
    /// `dev.trellis.lattice.{event_type}`.
    #[serde(rename = "type")]
    pub ty: String,
    /// When it happened, RFC 3339 in UTC with millisecond precision.
    pub time: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The event's data.
    pub data: T,
}

impl<T> CloudEvent<T> {
    /// A new envelope.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        event_type: EventType,
        time: SystemTime,
        data: T,
    ) -> Self {
        Self {
            specversion: CLOUDEVENTS_SPEC_VERSION.to_owned(),
            id: id.into(),
            source: source.into(),
            ty: event_type.cloudevent_type(),
            time: humantime::format_rfc3339_millis(time).to_string(),
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }

    /// The event type, if it is one this build knows.
    pub fn event_type(&self) -> Option<EventType> {
        EventType::parse(&self.ty)
    }
}

impl<T: EventData> CloudEvent<T> {
    /// A new envelope whose `type` is the one `data` is the data of.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use std::time::UNIX_EPOCH;
    /// use trellis_protocol::event::{CloudEvent, EventType, LabelsChangedData};
    ///
    /// let data = LabelsChangedData { labels: BTreeMap::from([("zone".into(), "eu-1".into())]) };
    /// let event = CloudEvent::from_data("ev-1", "NHOST", UNIX_EPOCH, data);
    /// assert_eq!(event.event_type(), Some(EventType::LabelsChanged));
    /// ```
    pub fn from_data(
        id: impl Into<String>,
        source: impl Into<String>,
        time: SystemTime,
        data: T,
    ) -> Self {
        Self::new(id, source, T::TYPE, time, data)
    }
}

impl<T: Serialize> CloudEvent<T> {
    /// Encodes the envelope as JSON.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if `T` cannot be serialised.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_json(self)
    }
}

impl<T: DeserializeOwned> CloudEvent<T> {
    /// Decodes an envelope received from the network and checks its
    /// `specversion`.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`]; a `specversion` other than 1.0 is
    /// [`DecodeError::Shape`].
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let event: Self = decode_json(bytes, limits)?;
        if event.specversion != CLOUDEVENTS_SPEC_VERSION {
            return Err(DecodeError::Shape(format!(
                "unsupported CloudEvents specversion {:?}",
                event.specversion
            )));
        }
        Ok(event)
    }
}

impl<T: EventData + DeserializeOwned> CloudEvent<T> {
    /// Decodes an envelope as [`CloudEvent::decode`] does, and checks that
    /// its `type` is the one `T` is the data of.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`]; another `type` is [`DecodeError::Shape`].
    pub fn decode_typed(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let event = Self::decode(bytes, limits)?;
        if event.event_type() != Some(T::TYPE) {
            return Err(DecodeError::Shape(format!(
                "event type {:?} is not {}",
                event.ty,
                T::TYPE.cloudevent_type()
            )));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_parses_back_from_its_token_and_type() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(EventType::parse(&t.cloudevent_type()), Some(t));
            crate::subject::validate_token(crate::subject::TokenKind::Id, t.as_str()).unwrap();
        }
        assert_eq!(EventType::parse("nope"), None);
    }
}
