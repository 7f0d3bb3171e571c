//! The Trellis lattice host.
//!
//! A host is the program that runs on every device of a lattice — a cloud
//! VM, a Kubernetes pod, a Raspberry Pi. It joins a lattice over NATS, runs
//! actors whose signed claims it trusts, and (with the providers milestone)
//! supervises capability providers.
//!
//! # Map
//!
//! One module per concern:
//!
//! - [`config`]: [`HostConfig`] and [`RuntimeLimits`], every default in one
//!   `impl Default`.
//! - [`runtime`]: wasmtime with the pooling allocator, an epoch ticker,
//!   a compile cache, and a fresh deny-by-default instance per invocation;
//!   [`runtime::capabilities`] serves `wasi:keyvalue`, `trellis:sqldb`,
//!   `wasi:logging` and `wasi:config` to actors.
//! - [`actors`]: verifying, starting, scaling, updating and stopping actors,
//!   and serving their invocations.
//! - [`providers`]: supervising capability provider processes.
//! - [`artifacts`]: reading actor and provider references from disk, only
//!   regular files under the configured directories.
//! - [`rpc`]: signed invocations to providers.
//! - [`control`]: the control interface.
//! - [`lattice_data`]: links in the lattice's JetStream bucket.
//! - [`events`]: CloudEvents on `trellis.evt.{lattice}.{type}`.
//! - [`labels`]: host labels.
//! - [`policy`]: the optional policy service, asked before starts, link
//!   puts and invocations.
//! - `secrets`: the lattice's secrets key; link secrets are checked on
//!   put and sealed again for each provider process.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), trellis_host::Error> {
//! use trellis_host::{Host, HostConfig};
//!
//! let config = HostConfig {
//!     trusted_issuers: vec!["A…issuer public key…".into()],
//!     ctl_issuers: vec!["O…operator public key…".into()],
//!     artifact_dirs: vec!["/srv/trellis/actors".into()],
//!     ..HostConfig::default()
//! };
//! let host = Host::start(config).await?;
//! host.start_actor("/srv/trellis/actors/hello.signed.wasm", 10, Default::default()).await?;
//! host.stopped().await;
//! # Ok(()) }
//! ```

pub mod actors;
pub mod artifacts;
pub mod config;
mod control;
mod error;
pub mod events;
mod host;
pub mod labels;
pub mod lattice_data;
pub mod policy;
pub mod providers;
mod pull;
pub mod rpc;
pub mod runtime;
mod secrets;

pub use config::{HostConfig, NatsConfig, RuntimeLimits};
pub use error::{Error, ErrorKind, Result};
pub use host::Host;
