//! The Trellis capability provider SDK.
//!
//! A capability provider is a separate process that serves one contract
//! (key-value, SQL, HTTP) to linked actors over NATS. The host starts it,
//! writes a [`HostData`] as JSON to its stdin and closes stdin; the provider
//! then joins the lattice.
//!
//! This crate starts with [`read_host_data`]; serving invocations, link
//! updates, health checks and the `run()` entry point follow with the
//! providers issue.

use std::io::Read;

pub use trellis_protocol::provider::HostData;
use trellis_protocol::{DecodeError, DecodeLimits};

/// Largest host data accepted on stdin, in bytes. Host data holds link
/// definitions and configuration, never payloads; 1 MiB is ample.
pub const MAX_HOST_DATA_BYTES: usize = 1024 * 1024;

/// Host data could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostDataError {
    /// Reading stdin failed.
    #[error("cannot read host data: {0}")]
    Io(#[from] std::io::Error),
    /// The data is too large or not valid host data.
    #[error("invalid host data: {0}")]
    Decode(#[from] DecodeError),
}

/// Reads and decodes host data from `input` (the provider's stdin), reading
/// at most [`MAX_HOST_DATA_BYTES`] + 1 bytes.
///
/// # Errors
///
/// [`HostDataError::Io`] if reading fails; [`HostDataError::Decode`] with
/// [`DecodeError::TooLarge`] for more than [`MAX_HOST_DATA_BYTES`], or
/// another kind for malformed data.
///
/// # Examples
///
/// ```
/// use trellis_provider_sdk::{read_host_data, HostDataError};
///
/// let err = read_host_data(&b"{not json"[..]).unwrap_err();
/// assert!(matches!(err, HostDataError::Decode(_)));
/// ```
pub fn read_host_data(input: impl Read) -> Result<HostData, HostDataError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_HOST_DATA_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    let limits = DecodeLimits {
        max_message_bytes: MAX_HOST_DATA_BYTES,
        ..DecodeLimits::default()
    };
    Ok(HostData::decode(&bytes, &limits)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_protocol::provider::{NatsAuth, NatsConnection};

    fn sample() -> HostData {
        HostData {
            lattice: "default".into(),
            host_id: "NHOST".into(),
            provider_seed: "SVSEED".into(),
            link_name: "default".into(),
            nats: NatsConnection {
                urls: vec!["nats://127.0.0.1:4222".into()],
                auth: NatsAuth::None,
                tls: None,
            },
            invocation_issuers: vec!["CCLUSTER".into()],
            links: vec![],
            config: Default::default(),
            log_level: "info".into(),
        }
    }

    #[test]
    fn host_data_round_trips_through_stdin() {
        let bytes = sample().encode().unwrap();
        assert_eq!(read_host_data(&bytes[..]).unwrap(), sample());
    }

    #[test]
    fn oversized_host_data_is_refused_without_reading_it_all() {
        let endless = std::io::repeat(b' ');
        let err = read_host_data(endless).unwrap_err();
        assert!(matches!(
            err,
            HostDataError::Decode(DecodeError::TooLarge { .. })
        ));
    }
}
