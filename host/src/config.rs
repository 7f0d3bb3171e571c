//! Host configuration. Every default sits in one [`Default`] impl.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use trellis_protocol::provider::{NatsAuth, NatsTls};

/// Limits on what actors may use. Defaults in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// Largest component accepted, in bytes. Defaults to 50 MiB.
    pub max_component_bytes: usize,
    /// Linear memory per instance, in bytes. Defaults to 64 MiB.
    pub max_memory_bytes: usize,
    /// Wall-clock deadline of one invocation's guest, counted from the
    /// creation of its instance: enforced by epoch interruption while wasm
    /// runs, and by a timer while the guest waits in a host call (a
    /// provider call, a sleep). Defaults to 10,000 ms.
    pub execution_deadline: Duration,
    /// Interval of the engine's epoch ticker. Deadlines are rounded up to
    /// it. Defaults to 10 ms.
    pub epoch_tick: Duration,
    /// WebAssembly stack size, in bytes. Defaults to 512 KiB.
    pub max_wasm_stack_bytes: usize,
    /// Most instances alive at once on this host, all actors together (the
    /// pooling allocator's slots). Defaults to 1,000.
    pub max_total_instances: u32,
    /// Instances of the pool that no single actor may take: an actor's
    /// `max_instances` is at most `max_total_instances` minus this, so one
    /// actor cannot fill the pool for the others. Defaults to 100.
    pub reserved_instances: u32,
    /// Most tables per instance. Defaults to 8.
    pub max_tables_per_instance: u32,
    /// Most table elements. Defaults to 20,000.
    pub max_table_elements: usize,
    /// Longest a component may take to compile before its start fails with
    /// a timeout (the compiling thread cannot be interrupted and finishes
    /// in the background; its result is dropped). Defaults to 60 s.
    pub compile_timeout: Duration,
    /// Most compiled components kept in the in-memory cache. Defaults to 1,024.
    pub compile_cache_entries: usize,
    /// Largest HTTP body an actor may produce, in bytes. Defaults to 10 MiB.
    pub max_response_body_bytes: usize,
    /// Bytes of each linear memory kept resident when its instance ends and
    /// reset with `memset` instead of `madvise`: the next instance in that
    /// pool slot takes no page faults for them, and the host sends no
    /// TLB-shootdown interrupts to other cores. Costs up to this much RSS
    /// per pool slot that has been used. Defaults to 1 MiB. See wasmtime's
    /// `PoolingAllocationConfig::linear_memory_keep_resident`.
    pub memory_keep_resident_bytes: usize,
    /// As [`RuntimeLimits::memory_keep_resident_bytes`], for tables.
    /// Defaults to 64 KiB.
    pub table_keep_resident_bytes: usize,
    /// Memory decommits (`madvise` calls) batched together once an instance
    /// ends, a count. Defaults to 8. See wasmtime's
    /// `PoolingAllocationConfig::decommit_batch_size`.
    pub decommit_batch_size: usize,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self {
            max_component_bytes: 50 * 1024 * 1024,
            max_memory_bytes: 64 * 1024 * 1024,
            execution_deadline: Duration::from_secs(10),
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack_bytes: 512 * 1024,
            max_total_instances: 1_000,
            reserved_instances: 100,
            compile_timeout: Duration::from_secs(60),
            max_tables_per_instance: 8,
            max_table_elements: 20_000,
            compile_cache_entries: 1_024,
            max_response_body_bytes: 10 * 1024 * 1024,
            memory_keep_resident_bytes: 1024 * 1024,
            table_keep_resident_bytes: 64 * 1024,
            decommit_batch_size: 8,
        }
    }
}

/// How to reach NATS. Defaults in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URLs. Defaults to `nats://127.0.0.1:4222`.
    pub urls: Vec<String>,
    /// Authentication. Defaults to none.
    pub auth: NatsAuth,
    /// TLS. Defaults to none (plain TCP).
    pub tls: Option<NatsTls>,
    /// Timeout of the first connection, and of each request the host makes
    /// to NATS. Defaults to 5 s.
    pub request_timeout: Duration,
    /// Messages each of the host's subscriptions buffers before further
    /// ones are dropped as a NATS slow consumer; the host's providers get
    /// the same. At most this many times the server's `max_payload` bytes
    /// per subscription. Defaults to
    /// [`DEFAULT_SUBSCRIPTION_CAPACITY`](trellis_protocol::provider::DEFAULT_SUBSCRIPTION_CAPACITY)
    /// (4,096).
    pub subscription_capacity: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".to_owned()],
            auth: NatsAuth::None,
            tls: None,
            request_timeout: Duration::from_secs(5),
            subscription_capacity: trellis_protocol::provider::DEFAULT_SUBSCRIPTION_CAPACITY,
        }
    }
}

/// Everything a host needs to start. Defaults in [`Default`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Lattice to join. Defaults to `default`.
    pub lattice: String,
    /// NATS connection for RPC, the lattice bucket and events; also the
    /// control interface unless [`HostConfig::ctl_nats_auth`] is set.
    pub nats: NatsConfig,
    /// NATS credentials for a second connection that serves the control
    /// interface, so that NATS permissions can tell control traffic from
    /// RPC (as wasmCloud's `ctl_*` and `rpc_*` settings). Same servers and
    /// TLS as [`HostConfig::nats`]. Defaults to none: one connection.
    pub ctl_nats_auth: Option<NatsAuth>,
    /// NATS credentials handed to the providers this host starts, in place
    /// of the host's own: give them an RPC-only user. Defaults to none:
    /// providers get [`HostConfig::nats`]'s credentials.
    pub provider_nats_auth: Option<NatsAuth>,
    /// The host's seed (`SN…`). Defaults to none: a new key per start.
    pub host_seed: Option<String>,
    /// Cluster seed (`SC…`) used to issue this host's credential and those
    /// of its providers. Defaults to none: a new cluster key, which only
    /// suits a single-host lattice; every host of a lattice must share one
    /// cluster issuer.
    pub cluster_seed: Option<String>,
    /// Further cluster issuers (`C…`) whose members' invocations are
    /// accepted, besides the cluster seed's own key. Defaults to none.
    pub cluster_issuers: Vec<String>,
    /// Seed (`SX…`) of the lattice's secrets key, the xkey that link
    /// secrets are sealed to; every host of a lattice needs the same one.
    /// Defaults to none: derived from the cluster seed
    /// (`trellis_claims::secrets::derive_lattice_key`), so hosts that share
    /// a cluster seed share it.
    pub secrets_seed: Option<String>,
    /// Accounts (`A…`) whose actor and provider claims are trusted.
    /// Defaults to none: nothing runs until one is configured.
    pub trusted_issuers: Vec<String>,
    /// Operators (`O…`), the control issuers, whose control credentials
    /// are accepted on the control interface. Defaults to none: every
    /// control request is refused with `denied` until one is configured.
    pub ctl_issuers: Vec<String>,
    /// Labels beyond the built-ins. Defaults to none.
    pub labels: BTreeMap<String, String>,
    /// Interval between heartbeats. Defaults to 2 s, so that wadm, which
    /// declares a host lost after three missed heartbeats, reschedules
    /// within seconds.
    pub heartbeat_interval: Duration,
    /// How long an actor invocation may take end to end (queueing for an
    /// instance included, counted from the invocation's receipt) before the
    /// caller gets a timeout. Defaults to 30 s.
    pub rpc_timeout: Duration,
    /// Most control requests handled at once, a count; further ones wait
    /// in their subscriptions until one finishes. Defaults to 64.
    pub max_concurrent_ctl_requests: usize,
    /// Most verified invocations of one actor that may wait for an
    /// instance or run at once, a count; further ones are answered
    /// `timeout` at once instead of queueing. Defaults to 4,096
    /// (`trellis_lattice_client::rpc::DEFAULT_MAX_PENDING`).
    pub max_pending_invocations: usize,
    /// Most bytes the lattice bucket (links and actor claims) holds, when
    /// this host is the one that creates it; once full, putting a link or
    /// starting a new actor fails with a `nats` error until entries are
    /// deleted. Defaults to 64 MiB.
    pub lattice_bucket_max_bytes: usize,
    /// How long an actor's call to a provider may take. Defaults to 10 s.
    pub provider_call_timeout: Duration,
    /// How long stopping the host waits for in-flight invocations. Defaults to 10 s.
    pub drain_timeout: Duration,
    /// Lifetime of invocation tokens. Defaults to 30 s.
    pub invocation_token_ttl: Duration,
    /// Largest payload the host sends over NATS, in bytes; larger ones are
    /// refused with a `too_large` error. Defaults to the server's
    /// `max_payload`, learnt on connect.
    pub max_payload_bytes: Option<usize>,
    /// Actor limits.
    pub limits: RuntimeLimits,
    /// Directories that actors and providers may be started from by path.
    /// A path is followed (symbolic links, `..`) and must end at a regular
    /// file under one of them. Defaults to none: every path is refused, and
    /// actors start only from bytes ([`crate::Host::start_actor_bytes`]).
    pub artifact_dirs: Vec<PathBuf>,
    /// Development mode: providers may be started from plain binaries
    /// (unsigned). Defaults to `false`.
    pub dev_mode: bool,
    /// Where provider binaries are unpacked from their archives: a
    /// directory made private to the host's user (mode 0700), refused if
    /// another user owns it. Defaults to `$XDG_CACHE_HOME/trellis/providers`,
    /// else `$HOME/.cache/trellis/providers`, else
    /// `{temp dir}/trellis-providers-{user id}`.
    pub provider_cache_dir: PathBuf,
    /// How long pulling one artifact from the lattice's artifact store may
    /// take, its metadata and all its chunks. Defaults to 60 s. Pulled
    /// artifacts are kept under `{provider_cache_dir}/artifacts`.
    pub pull_timeout: Duration,
    /// Whether compiled components are kept on disk, under
    /// `{provider_cache_dir}/compiled`, so that a restarted host starts its
    /// actors without compiling them again. Defaults to `true`.
    pub compiled_cache: bool,
    /// How OCI registries are reached: which may be plain HTTP, and with
    /// which credentials. Defaults to HTTPS everywhere, with the Docker
    /// configuration's credentials, else anonymous.
    pub registries: trellis_lattice_client::oci::RegistrySettings,
    /// Interval between provider health checks. Defaults to 10 s.
    pub provider_health_interval: Duration,
    /// Lifetime of each credential the host issues for a provider process:
    /// a new one at every spawn, and a renewed one pushed to the running
    /// process at half its lifetime. Defaults to 24 h.
    pub provider_credential_ttl: Duration,
    /// Clock skew tolerated when checking the `exp`, `nbf` and `iat` of
    /// invocation tokens and credentials. Defaults to 30 s.
    pub clock_skew: Duration,
    /// How long a provider may leave its health checks unanswered before
    /// it is taken as hung: it is then killed and restarted (with the
    /// crash backoff) and a `provider_failed` event says why. A provider
    /// that answers "unhealthy" is alive and is not restarted. Defaults to
    /// 30 s.
    pub provider_hung_after: Duration,
    /// First delay before restarting a crashed provider; it doubles up to
    /// [`HostConfig::provider_restart_max_delay`] and resets after a minute
    /// of uptime. Defaults to 250 ms.
    pub provider_restart_delay: Duration,
    /// Longest delay between provider restarts. Defaults to 30 s.
    pub provider_restart_max_delay: Duration,
    /// How long a provider may take to exit when asked before it is
    /// killed. Defaults to 5 s.
    pub provider_shutdown_timeout: Duration,
    /// Log filter handed to providers. Defaults to `info`.
    pub provider_log_level: String,
    /// The policy service asked before actor and provider starts, link
    /// puts and invocations. Defaults to none: no policy service.
    pub policy: Option<crate::policy::PolicyConfig>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            lattice: trellis_protocol::Lattice::DEFAULT.to_owned(),
            nats: NatsConfig::default(),
            ctl_nats_auth: None,
            provider_nats_auth: None,
            host_seed: None,
            cluster_seed: None,
            cluster_issuers: Vec::new(),
            secrets_seed: None,
            trusted_issuers: Vec::new(),
            ctl_issuers: Vec::new(),
            labels: BTreeMap::new(),
            heartbeat_interval: Duration::from_secs(2),
            rpc_timeout: Duration::from_secs(30),
            max_pending_invocations: trellis_lattice_client::rpc::DEFAULT_MAX_PENDING,
            lattice_bucket_max_bytes: 64 * 1024 * 1024,
            max_concurrent_ctl_requests: 64,
            provider_call_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            invocation_token_ttl: trellis_claims::invocation::DEFAULT_TOKEN_TTL,
            max_payload_bytes: None,
            limits: RuntimeLimits::default(),
            artifact_dirs: Vec::new(),
            dev_mode: false,
            provider_cache_dir: default_provider_cache(),
            pull_timeout: Duration::from_secs(60),
            compiled_cache: true,
            registries: trellis_lattice_client::oci::RegistrySettings::default(),
            provider_health_interval: Duration::from_secs(10),
            provider_hung_after: Duration::from_secs(30),
            provider_credential_ttl: trellis_claims::invocation::DEFAULT_CREDENTIAL_TTL,
            clock_skew: Duration::from_secs(trellis_claims::jwt::DEFAULT_CLOCK_SKEW_SECS),
            provider_restart_delay: Duration::from_millis(250),
            provider_restart_max_delay: Duration::from_secs(30),
            provider_shutdown_timeout: Duration::from_secs(5),
            provider_log_level: "info".to_owned(),
            policy: None,
        }
    }
}

/// The default [`HostConfig::provider_cache_dir`].
fn default_provider_cache() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|home| home.join(".cache")))
        .map_or_else(
            || {
                std::env::temp_dir().join(format!(
                    "trellis-providers-{}",
                    nix::unistd::geteuid().as_raw()
                ))
            },
            |cache| cache.join("trellis").join("providers"),
        )
}
