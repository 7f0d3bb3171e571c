//! wadm for Trellis: the WebAssembly application deployment manager.
//!
//! Ops teams declare applications in manifests ([`manifest`]: OAM YAML as
//! wasmCloud wadm 1.x writes it); wadm stores them, versioned, in a
//! JetStream key-value bucket ([`store`]) and makes the lattice run what
//! the deployed versions declare, keeping it so while hosts, NATS and wadm
//! itself come and go.
//!
//! - [`Wadm::start`] runs the API ([`api`], `wadm.api.{lattice}.model.*`)
//!   and the reconciler on one NATS connection.
//! - The reconciler plans with [`plan::plan`], a pure function of the
//!   deployed manifests and the hosts' real inventories, and applies the
//!   plan through the signed control interface. Heartbeats and events make
//!   it act within moments; a periodic full resync against the hosts'
//!   inventories repairs anything they missed.
//! - Several wadm processes may run: all serve the API, and the one holding
//!   the lease ([`store::Lease`]) reconciles (`docs/adr/0011-wadm.md`).
//!
//! `docs/wadm.md` documents the manifest format and what wadm guarantees.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run(nats: async_nats::Client, signer: std::sync::Arc<trellis_claims::invocation::InvocationSigner>) {
//! use trellis_wadm::{Wadm, WadmConfig};
//!
//! let config = WadmConfig {
//!     lattice: "default".into(),
//!     ctl_issuers: vec!["O…operator".into()],
//!     cluster_issuers: vec!["C…cluster".into()],
//!     ..WadmConfig::default()
//! };
//! let wadm = Wadm::start(nats, signer, config).await.unwrap();
//! // … until shut down:
//! wadm.stop().await;
//! # }
//! ```

pub mod api;
mod error;
pub mod manifest;
pub mod plan;
mod reconciler;
pub mod spread;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use error::{Error, ErrorKind};
use tokio::sync::watch;
use trellis_claims::invocation::InvocationSigner;
use trellis_lattice_client::CtlClient;
use trellis_protocol::Lattice;

/// How wadm runs. Build it with struct update syntax over
/// [`WadmConfig::default`].
#[derive(Debug, Clone)]
pub struct WadmConfig {
    /// The lattice. Defaults to `default`.
    pub lattice: String,
    /// This process's id in the lease. Defaults to a new random id.
    pub id: String,
    /// Operators (`O…`) whose control credentials may use the API.
    /// Defaults to none: every request is refused.
    pub ctl_issuers: Vec<String>,
    /// Cluster issuers (`C…`) whose hosts' heartbeats and events are
    /// believed. Defaults to none: wadm then learns of hosts only from
    /// resyncs.
    pub cluster_issuers: Vec<String>,
    /// Time between full resyncs against the hosts' inventories. Defaults
    /// to 10 s.
    pub resync_interval: Duration,
    /// How long a ping collects answers during a resync. Defaults to
    /// 500 ms.
    pub ping_window: Duration,
    /// Heartbeats a host may miss before it is considered lost and its
    /// instances are rescheduled, a count. Defaults to 3.
    pub missed_heartbeats: u32,
    /// Heartbeat interval assumed for a host seen only in a resync, until
    /// its first heartbeat tells the real one. Defaults to 2 s (the host's
    /// default).
    pub assumed_heartbeat_interval: Duration,
    /// The lease's time to live: how long a wadm that stopped renewing
    /// keeps others from reconciling. Defaults to 6 s.
    pub lease_ttl: Duration,
    /// Timeout of reads (inventories, links, the bucket). Defaults to 5 s.
    pub ctl_timeout: Duration,
    /// Timeout of one start, stop, scale, update or link command, which
    /// may pull and compile an artifact. Defaults to 60 s.
    pub command_timeout: Duration,
    /// Commands sent at once, a count. Defaults to 16.
    pub max_parallel_commands: usize,
    /// First delay after a failed command; it doubles with each failure.
    /// Defaults to 500 ms.
    pub backoff_base: Duration,
    /// Longest delay between attempts of a failing command. Defaults to
    /// 30 s.
    pub backoff_max: Duration,
}

impl Default for WadmConfig {
    fn default() -> Self {
        Self {
            lattice: "default".to_owned(),
            id: format!("wadm-{}", uuid::Uuid::new_v4().simple()),
            ctl_issuers: Vec::new(),
            cluster_issuers: Vec::new(),
            resync_interval: Duration::from_secs(10),
            ping_window: Duration::from_millis(500),
            missed_heartbeats: 3,
            assumed_heartbeat_interval: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(6),
            ctl_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(60),
            max_parallel_commands: 16,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Waits until the server has processed everything sent so far
/// (subscriptions included).
async fn nats_flush(nats: &async_nats::Client, timeout: Duration) -> Result<(), Error> {
    trellis_lattice_client::round_trip(nats, timeout)
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("NATS round trip: {e}")))
}

/// A running wadm: its API server and reconciler. Dropping it stops both.
pub struct Wadm {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    passes: Arc<AtomicU64>,
    id: String,
}

impl Wadm {
    /// Opens the store and starts serving the API and reconciling, over
    /// `nats`, signing control requests to hosts with `signer` (a control
    /// credential of the `full` scope).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a bad lattice name or settings,
    /// [`ErrorKind::Nats`] when the bucket cannot be opened.
    pub async fn start(
        nats: async_nats::Client,
        signer: Arc<InvocationSigner>,
        config: WadmConfig,
    ) -> Result<Self, Error> {
        let lattice = Lattice::new(config.lattice.clone())
            .map_err(|e| Error::new(ErrorKind::Config, format!("lattice: {e}")))?;
        if config.max_parallel_commands == 0 || config.missed_heartbeats == 0 {
            return Err(Error::new(
                ErrorKind::Config,
                "max_parallel_commands and missed_heartbeats must be at least 1",
            ));
        }
        let store = store::Store::open(&nats, lattice.as_str(), config.ctl_timeout).await?;
        // Subscribed before returning: a request sent once `start` returns
        // is answered, and no event is missed.
        let requests = nats
            .queue_subscribe(
                trellis_protocol::wadm::api_subscription(&lattice),
                api::API_QUEUE_GROUP.to_owned(),
            )
            .await
            .map_err(|e| Error::with_source(ErrorKind::Nats, "cannot serve the wadm API", e))?;
        let events = nats.subscribe(lattice.all_events()).await.map_err(|e| {
            Error::with_source(ErrorKind::Nats, "cannot watch the lattice's events", e)
        })?;
        crate::nats_flush(&nats, config.ctl_timeout).await?;
        let ctl = CtlClient::new(nats.clone(), lattice).with_signer(signer);
        let (stop, stopped) = watch::channel(false);
        let passes = Arc::new(AtomicU64::new(0));
        let leader_until = store::LeaderUntil::default();
        let lease = store::Lease::new(
            store.clone(),
            config.id.clone(),
            config.lease_ttl,
            leader_until.clone(),
        );
        let reconciler = reconciler::Reconciler::new(
            config.clone(),
            ctl,
            store.clone(),
            leader_until,
            passes.clone(),
        );
        let id = config.id.clone();
        let tasks = vec![
            tokio::spawn(lease.run(stopped.clone())),
            tokio::spawn(api::serve(nats, requests, config, store, stopped.clone())),
            tokio::spawn(reconciler.run(events, stopped)),
        ];
        Ok(Self {
            stop,
            tasks,
            passes,
            id,
        })
    }

    /// This process's id in the lease.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reconciliation passes run so far, a count (0 while another wadm
    /// holds the lease).
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// Stops serving and reconciling, and gives up the lease so that
    /// another wadm takes over at once. Waits up to 5 s.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Wadm {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
