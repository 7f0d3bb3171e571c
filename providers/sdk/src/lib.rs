//! The Trellis capability provider SDK.
//!
//! A capability provider is a separate process that serves one contract
//! (key-value, SQL, HTTP) to linked actors over NATS. The host starts it
//! with a cleared environment, writes a [`HostData`] as JSON to its stdin and
//! closes stdin. The provider then:
//!
//! 1. connects to NATS with the settings in the host data;
//! 2. receives the link definitions that name it (at start, then as they
//!    are put and deleted);
//! 3. serves signed invocations on `trellis.rpc.{lattice}.{provider_id}.{link_name}`,
//!    concurrently, verifying each token exactly as a host does;
//! 4. answers health checks from its host;
//! 5. shuts down gracefully when its host asks, or on SIGTERM / Ctrl-C.
//!
//! A provider implements [`Provider`], and its `main.rs` is three lines:
//!
//! ```no_run
//! # struct MyProvider;
//! # impl trellis_provider_sdk::Provider for MyProvider {
//! #     async fn handle(&self, _: trellis_provider_sdk::ProviderInvocation) -> Result<Vec<u8>, trellis_provider_sdk::CallError> { Ok(vec![]) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     trellis_provider_sdk::run(|_ctx| async { Ok(MyProvider) })
//! }
//! ```

mod serve;

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

pub use serve::{ProviderContext, serve};
pub use trellis_lattice_client::{CallError, InvokeError};
pub use trellis_protocol::provider::{HealthCheck, HostData};
use trellis_protocol::{DecodeError, DecodeLimits, Entity, LinkDefinition};

/// Largest host data accepted on stdin, in bytes. Host data holds link
/// definitions and configuration, never payloads; 1 MiB is ample.
pub const MAX_HOST_DATA_BYTES: usize = 1024 * 1024;

/// Most invocations a provider handles at once. Defaults to 1,024; more
/// wait in the subscription's buffer.
pub const DEFAULT_MAX_CONCURRENT_INVOCATIONS: usize = 1_024;

/// Timeout of the first NATS connection and of each NATS request. Defaults to 5 s.
pub const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a provider could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// Reading stdin failed.
    #[error("cannot read host data: {0}")]
    Io(#[from] std::io::Error),
    /// The host data is too large or malformed.
    #[error("invalid host data: {0}")]
    HostData(#[from] DecodeError),
    /// A key, credential or subject in the host data is invalid.
    #[error("invalid host data: {0}")]
    Config(String),
    /// NATS could not be reached or a subscription failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// The provider's own start-up failed.
    #[error("provider failed to start: {0}")]
    Provider(String),
}

/// One invocation of a provider by an actor.
#[derive(Debug, Clone)]
pub struct ProviderInvocation {
    /// The calling actor (its id, the contract and link name it used).
    pub origin: Entity,
    /// The operation, e.g. `wasi:keyvalue/store.call`.
    pub operation: String,
    /// The contract payload.
    pub payload: Vec<u8>,
}

/// A capability provider's logic. Only [`Provider::handle`] is required.
pub trait Provider: Send + Sync + 'static {
    /// Handles one invocation and returns the response payload.
    ///
    /// # Errors
    ///
    /// `(kind, message)`, sent back to the caller as the invocation's error.
    fn handle(
        &self,
        invocation: ProviderInvocation,
    ) -> impl Future<Output = Result<Vec<u8>, CallError>> + Send;

    /// A link definition naming this provider was put (or was current at
    /// start). Defaults to accepting it.
    ///
    /// # Errors
    ///
    /// A message, logged by the SDK, when the link's configuration is unusable.
    fn put_link(&self, link: &LinkDefinition) -> impl Future<Output = Result<(), String>> + Send {
        let _ = link;
        async { Ok(()) }
    }

    /// A link definition naming this provider was deleted. Defaults to nothing.
    fn delete_link(&self, link: &LinkDefinition) -> impl Future<Output = ()> + Send {
        let _ = link;
        async {}
    }

    /// Health of the provider, e.g. whether its backend answers. Defaults
    /// to healthy.
    fn health(&self) -> impl Future<Output = HealthCheck> + Send {
        async {
            HealthCheck {
                healthy: true,
                message: String::new(),
            }
        }
    }

    /// Called once before the process exits. Defaults to nothing.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Reads and decodes host data from `input` (the provider's stdin), reading
/// at most [`MAX_HOST_DATA_BYTES`] + 1 bytes.
///
/// # Errors
///
/// [`SdkError::Io`] if reading fails; [`SdkError::HostData`] with
/// [`DecodeError::TooLarge`] for more than [`MAX_HOST_DATA_BYTES`], or
/// another kind for malformed data.
///
/// # Examples
///
/// ```
/// use trellis_provider_sdk::{read_host_data, SdkError};
///
/// let err = read_host_data(&b"{not json"[..]).unwrap_err();
/// assert!(matches!(err, SdkError::HostData(_)));
/// ```
pub fn read_host_data(input: impl Read) -> Result<HostData, SdkError> {
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

/// The entry point of a provider binary: reads the host data from stdin,
/// sets up logging (to stderr, with the host data's log level), connects,
/// builds the provider with `make`, hands it the current links and serves
/// until shutdown. Returns the process exit code.
pub fn run<P, F, Fut>(make: F) -> std::process::ExitCode
where
    P: Provider,
    F: FnOnce(Arc<ProviderContext>) -> Fut,
    Fut: Future<Output = Result<P, SdkError>>,
{
    let host_data = match read_host_data(std::io::stdin()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&host_data.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The host forwards this output to its own log: plain text, no colours.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let ctx = Arc::new(ProviderContext::connect(host_data).await?);
        let provider = Arc::new(make(ctx.clone()).await?);
        serve(ctx, provider).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_protocol::provider::{NatsAuth, NatsConnection};

    fn sample() -> HostData {
        HostData {
            lattice: "default".into(),
            host_id: "NHOST".into(),
            provider_id: "VPROVIDER".into(),
            provider_seed: "SVSEED".into(),
            credential: "a.b.c".into(),
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
        let err = read_host_data(std::io::repeat(b' ')).unwrap_err();
        assert!(matches!(
            err,
            SdkError::HostData(DecodeError::TooLarge { .. })
        ));
    }
}
