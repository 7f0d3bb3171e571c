//! Publishing lattice events as CloudEvents on
//! `trellis.evt.{lattice}.{event_type}`.

use std::time::SystemTime;

use trellis_protocol::{CloudEvent, EventData, Lattice};

/// Publishes this host's events.
#[derive(Clone)]
pub struct EventPublisher {
    nats: async_nats::Client,
    lattice: Lattice,
    host_id: String,
}

impl EventPublisher {
    /// A publisher for `host_id` in `lattice`.
    pub fn new(nats: async_nats::Client, lattice: Lattice, host_id: String) -> Self {
        Self {
            nats,
            lattice,
            host_id,
        }
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
        match event.encode() {
            Ok(bytes) => {
                if let Err(e) = self
                    .nats
                    .publish(self.lattice.event(event_type), bytes.into())
                    .await
                {
                    tracing::warn!("cannot publish {event_type} event: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot encode {event_type} event: {e}"),
        }
    }
}
