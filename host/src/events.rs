//! Publishing lattice events as CloudEvents on
//! `trellis.evt.{lattice}.{event_type}`, each signed by the host
//! (`docs/protocol.md` §7.2), so that wadm and dashboards can tell a real
//! host's heartbeat from a forged one.

use std::sync::Arc;
use std::time::SystemTime;

use trellis_claims::invocation::InvocationSigner;
use trellis_protocol::{CloudEvent, EventData, Lattice};

/// Publishes this host's events.
#[derive(Clone)]
pub struct EventPublisher {
    nats: async_nats::Client,
    lattice: Lattice,
    host_id: String,
    signer: Arc<InvocationSigner>,
}

impl EventPublisher {
    /// A publisher for `host_id` in `lattice`, signing each event with
    /// `signer` (the host's key and credential).
    pub fn new(
        nats: async_nats::Client,
        lattice: Lattice,
        host_id: String,
        signer: Arc<InvocationSigner>,
    ) -> Self {
        Self {
            nats,
            lattice,
            host_id,
            signer,
        }
    }

    /// The lattice it publishes in.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    /// Publishes one event; its type is the one `data` is the data of.
    /// Failures are logged, never returned: an event that cannot be sent
    /// must not fail the state change it reports.
    pub async fn publish<T: EventData>(&self, data: T) {
        let event_type = T::TYPE;
        let event = CloudEvent::from_data(
            uuid::Uuid::new_v4().to_string(),
            self.host_id.clone(),
            SystemTime::now(),
            data,
        );
        let bytes = match event.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!("cannot encode {event_type} event: {e}");
                return;
            }
        };
        let subject = self.lattice.event(event_type);
        let headers = match self
            .signer
            .sign_control(&subject, event_type.as_str(), &bytes)
        {
            Ok(token) => trellis_lattice_client::signed::headers(&token),
            Err(e) => {
                tracing::warn!("cannot sign {event_type} event: {e}");
                return;
            }
        };
        if let Err(e) = self
            .nats
            .publish_with_headers(subject, headers, bytes.into())
            .await
        {
            tracing::warn!("cannot publish {event_type} event: {e}");
        }
    }
}
