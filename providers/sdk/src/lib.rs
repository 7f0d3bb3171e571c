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
//! A provider implements [`Provider`]: what it makes of a link
//! ([`Provider::bind`]) and how it answers a call on one
//! ([`Provider::dispatch`], normally one line handing the call to its
//! contract's `dispatch`, e.g.
//! [`trellis_protocol::contracts::keyvalue::dispatch`], with the provider
//! implementing that contract's typed `Handler`). The SDK keeps the link
//! table ([`LinkedProvider`]), verifies every invocation (through
//! [`trellis_lattice_client::rpc::serve`]) and denies calls from actors
//! without a link, so a provider's code is its backend only. Its `main.rs`
//! is three lines:
//!
//! ```no_run
//! # struct MyProvider;
//! # impl trellis_provider_sdk::Provider for MyProvider {
//! #     type Link = ();
//! #     async fn bind(&self, _: &trellis_protocol::LinkDefinition) -> Result<(), String> { Ok(()) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     trellis_provider_sdk::run(|_ctx| async { Ok(MyProvider) })
//! }
//! ```

mod config;
mod links;
mod serve;

pub use config::{LinkConfigError, parse_number};

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

pub use links::{Call, LinkedProvider};
pub use serve::{ProviderContext, serve};
pub use trellis_lattice_client::{InvokeError, InvokeErrorKind};
pub use trellis_protocol::provider::{HealthCheck, HostData};
use trellis_protocol::{DecodeLimits, LinkDefinition, RpcError, RpcErrorKind};

/// Largest host data accepted on stdin, in bytes. Host data holds link
/// definitions and configuration, never payloads; 1 MiB is ample.
pub const MAX_HOST_DATA_BYTES: usize = 1024 * 1024;

/// Most invocations a provider handles at once. Defaults to 1,024; more
/// wait in the subscription's buffer.
pub const DEFAULT_MAX_CONCURRENT_INVOCATIONS: usize = 1_024;

/// Timeout of the first NATS connection and of each NATS request. Defaults to 5 s.
pub const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a provider could not start or keep running: a [`SdkErrorKind`]
/// and the error that caused it.
pub type SdkError = trellis_lattice_client::Error<SdkErrorKind>;

/// The kinds of [`SdkError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdkErrorKind {
    /// Reading stdin failed.
    Io,
    /// The host data is too large or malformed (the source is the
    /// [`DecodeError`]).
    HostData,
    /// A key, credential or subject in the host data is invalid.
    Config,
    /// NATS could not be reached or a subscription failed.
    Nats,
    /// The provider's own start-up failed.
    Provider,
}

impl std::fmt::Display for SdkErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SdkErrorKind::Io => "cannot read host data",
            SdkErrorKind::HostData | SdkErrorKind::Config => "invalid host data",
            SdkErrorKind::Nats => "NATS",
            SdkErrorKind::Provider => "provider failed to start",
        })
    }
}

/// A capability provider's backend: what it makes of each link, and how
/// it answers a call on one. The SDK keeps the link table, verifies every
/// invocation and refuses calls from actors without a link before any of
/// these methods run.
pub trait Provider: Send + Sync + 'static {
    /// What the provider keeps per link (a connection, a prefix, a
    /// listener); `()` when it keeps nothing.
    type Link: Send + Sync + 'static;

    /// A link definition naming this provider was put (or was current at
    /// start): check its configuration and set up what calls over it need.
    ///
    /// # Errors
    ///
    /// A message when the link's configuration is unusable. The SDK logs
    /// it and answers every call over that link with a denial that
    /// carries it.
    fn bind(
        &self,
        link: &LinkDefinition,
    ) -> impl Future<Output = Result<Self::Link, String>> + Send;

    /// A link was deleted or replaced: release what `bound` holds. Calls
    /// already running keep their own reference. `bound` is `None` for a
    /// link that [`Provider::bind`] had refused; a refused link is unbound
    /// before its replacement is bound, a bound one after. Defaults to
    /// nothing (dropping `bound`).
    fn unbind(
        &self,
        link: &LinkDefinition,
        bound: Option<Arc<Self::Link>>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (link, bound);
        async {}
    }

    /// Answers one verified call from a linked actor and returns the
    /// response payload (the contract's encoded answer). Defaults to
    /// [`RpcErrorKind::NotFound`], for providers that serve no contract to
    /// actors (the HTTP server calls actors instead).
    ///
    /// # Errors
    ///
    /// The [`RpcError`] sent back as the invocation's error.
    fn dispatch(
        &self,
        call: Call<'_, Self::Link>,
    ) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send {
        let operation = call.operation.to_owned();
        async move {
            Err(RpcError::new(
                RpcErrorKind::NotFound,
                format!("this provider serves no operation {operation:?}"),
            ))
        }
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
/// [`SdkErrorKind::Io`] if reading fails; [`SdkErrorKind::HostData`], with
/// a [`DecodeError`] source ([`DecodeError::TooLarge`] for more than
/// [`MAX_HOST_DATA_BYTES`]), for malformed data.
///
/// # Examples
///
/// ```
/// use trellis_provider_sdk::{read_host_data, SdkErrorKind};
///
/// let err = read_host_data(&b"{not json"[..]).unwrap_err();
/// assert_eq!(err.kind(), SdkErrorKind::HostData);
/// ```
pub fn read_host_data(input: impl Read) -> Result<HostData, SdkError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_HOST_DATA_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SdkError::with_source(SdkErrorKind::Io, e))?;
    let limits = DecodeLimits {
        max_message_bytes: MAX_HOST_DATA_BYTES,
        ..DecodeLimits::default()
    };
    HostData::decode(&bytes, &limits).map_err(|e| SdkError::with_source(SdkErrorKind::HostData, e))
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
    // Started by a host, stderr is a pipe into the host's log, which adds
    // its own time stamp: plain text, no colours, no second time stamp.
    // Run by hand in a terminal, it logs as any program would.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    if terminal {
        logger.init();
    } else {
        logger.without_time().init();
    }
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
        let provider = make(ctx.clone()).await?;
        serve(ctx, Arc::new(LinkedProvider::new(provider))).await
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
    use trellis_protocol::DecodeError;
    use trellis_protocol::provider::{NatsAuth, NatsConnection};

    fn sample() -> HostData {
        HostData {
            lattice: "default".into(),
            host_id: "NHOST".into(),
            provider_id: "VPROVIDER".into(),
            provider_seed: "SVSEED".into(),
            secrets_seed: "SXSEED".into(),
            credential: "a.b.c".into(),
            link_name: "default".into(),
            nats: NatsConnection::new(vec!["nats://127.0.0.1:4222".into()], NatsAuth::None),
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
        assert_eq!(err.kind(), SdkErrorKind::HostData);
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<DecodeError>())
            .unwrap();
        assert!(matches!(source, DecodeError::TooLarge { .. }));
    }
}
