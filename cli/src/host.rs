//! `trellis host`: run a lattice host until Ctrl-C or a `host.stop`
//! control request.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use trellis_host::policy::PolicyConfig;
use trellis_host::{Host, HostConfig, NatsConfig};
use trellis_protocol::provider::{NatsAuth, NatsTls};

use crate::output::{Output, read_any_key};

#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// NATS server URLs, comma-separated.
    #[arg(
        long = "nats-url",
        env = "TRELLIS_NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_urls: Vec<String>,
    /// NATS nkey seed (`SU…`) for authentication.
    #[arg(long, env = "TRELLIS_NATS_SEED", conflicts_with_all = ["nats_credentials", "nats_user"])]
    pub nats_seed: Option<String>,
    /// NATS credentials file (JWT and seed).
    #[arg(long, env = "TRELLIS_NATS_CREDENTIALS", conflicts_with = "nats_user")]
    pub nats_credentials: Option<PathBuf>,
    /// NATS user name (with --nats-password).
    #[arg(long, env = "TRELLIS_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,
    /// NATS password.
    #[arg(long, env = "TRELLIS_NATS_PASSWORD")]
    pub nats_password: Option<String>,
    /// CA certificate (PEM) to verify the NATS server with; enables TLS.
    #[arg(long, env = "TRELLIS_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS TLS.
    #[arg(long, env = "TRELLIS_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// Client key (PEM) for NATS TLS.
    #[arg(long, env = "TRELLIS_NATS_TLS_KEY")]
    pub nats_tls_key: Option<PathBuf>,
    /// Lattice to join.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
    pub lattice: String,
    /// The host's key: a seed `SN…` or a file holding one. A new key per
    /// start by default.
    #[arg(long, env = "TRELLIS_HOST_KEY")]
    pub host_key: Option<String>,
    /// The cluster key (`SC…` or a file) that vouches for this host and its
    /// providers; every host of a lattice needs one of the same cluster.
    /// A new key by default, which suits a single-host lattice only.
    #[arg(long, env = "TRELLIS_CLUSTER_KEY")]
    pub cluster_key: Option<String>,
    /// The lattice's secrets key (`SX…` or a file), the xkey link secrets
    /// are sealed to; every host of a lattice needs the same one. Derived
    /// from the cluster key by default.
    #[arg(long, env = "TRELLIS_SECRETS_KEY")]
    pub secrets_key: Option<String>,
    /// Further cluster issuers (`C…`) whose hosts' invocations are accepted.
    #[arg(
        long = "cluster-issuer",
        env = "TRELLIS_CLUSTER_ISSUERS",
        value_delimiter = ','
    )]
    pub cluster_issuers: Vec<String>,
    /// Account public key (`A…`) whose signed actors may run here. Repeat
    /// for several. Nothing runs without one.
    #[arg(long = "trust", env = "TRELLIS_TRUSTED_ISSUERS", value_delimiter = ',')]
    pub trusted_issuers: Vec<String>,
    /// A directory actors and provider archives may be started from by
    /// path. Repeat for several. Without one, every path is refused.
    #[arg(
        long = "allow-dir",
        env = "TRELLIS_ALLOWED_DIRS",
        value_delimiter = ','
    )]
    pub allow_dirs: Vec<std::path::PathBuf>,
    /// A registry (`host:port`) this host pulls from over plain HTTP
    /// instead of HTTPS. Repeat for several. Credentials come from the
    /// Docker configuration (`~/.docker/config.json`).
    #[arg(
        long = "allow-insecure-registry",
        env = "TRELLIS_ALLOW_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// NATS credentials file of a second connection that serves the
    /// control interface, so NATS permissions can tell control from RPC
    /// (docs/security.md). Defaults to none: one connection.
    #[arg(long, env = "TRELLIS_CTL_NATS_CREDENTIALS")]
    pub ctl_nats_credentials: Option<PathBuf>,
    /// NATS credentials file handed to the providers this host starts
    /// (an RPC-only user) instead of the host's own.
    #[arg(long, env = "TRELLIS_PROVIDER_NATS_CREDENTIALS")]
    pub provider_nats_credentials: Option<PathBuf>,
    /// NATS subject of a policy service to ask before every actor and
    /// provider start, link put and (cached) invocation; fail-closed.
    /// Defaults to none.
    #[arg(long, env = "TRELLIS_POLICY_SUBJECT")]
    pub policy_subject: Option<String>,
    /// How long a policy decision may take before it counts as a denial.
    #[arg(long, env = "TRELLIS_POLICY_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub policy_timeout: Duration,
    /// How long a policy decision is reused.
    #[arg(long, env = "TRELLIS_POLICY_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub policy_cache_ttl: Duration,
    /// Operator public key (`O…`), a control issuer whose control
    /// credentials are accepted. Repeat for several. Without one, every
    /// control request is refused.
    #[arg(
        long = "ctl-issuer",
        env = "TRELLIS_CTL_ISSUERS",
        value_delimiter = ','
    )]
    pub ctl_issuers: Vec<String>,
    /// A label `key=value`. Repeat for several; `TRELLIS_LABEL_<key>=<value>`
    /// variables add more.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Seconds between heartbeats.
    #[arg(long, env = "TRELLIS_HEARTBEAT_SECS", default_value_t = 2)]
    pub heartbeat_secs: u64,
    /// Log filter, tracing-subscriber `EnvFilter` syntax.
    #[arg(long, env = "TRELLIS_LOG", default_value = "info")]
    pub log: String,
}

pub fn run(args: HostArgs, _output: Output) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).context("bad --log filter")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: HostArgs) -> anyhow::Result<ExitCode> {
    let auth = match (&args.nats_seed, &args.nats_credentials, &args.nats_user) {
        (Some(seed), _, _) => NatsAuth::Nkey { seed: seed.clone() },
        (_, Some(path), _) => NatsAuth::Credentials {
            path: path.to_string_lossy().into_owned(),
        },
        (_, _, Some(user)) => NatsAuth::UserPassword {
            user: user.clone(),
            password: args.nats_password.clone().unwrap_or_default(),
        },
        _ => NatsAuth::None,
    };
    let tls = args.nats_tls_ca.as_ref().map(|ca| NatsTls {
        ca_file: Some(ca.to_string_lossy().into_owned()),
        cert_file: args
            .nats_tls_cert
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        key_file: args
            .nats_tls_key
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    });
    let seed = |value: &Option<String>| -> anyhow::Result<Option<String>> {
        value
            .as_deref()
            .map(|v| read_any_key(v).and_then(|k| Ok(k.seed()?)))
            .transpose()
    };
    let labels = trellis_host::labels::resolve(std::env::vars(), args.labels.clone())?;
    let config = HostConfig {
        lattice: args.lattice.clone(),
        nats: NatsConfig {
            urls: args.nats_urls.clone(),
            auth,
            tls,
            ..NatsConfig::default()
        },
        host_seed: seed(&args.host_key)?,
        cluster_seed: seed(&args.cluster_key)?,
        secrets_seed: args
            .secrets_key
            .as_deref()
            .map(crate::output::seed_text)
            .transpose()?
            .map(|s| s.trim().to_owned()),
        cluster_issuers: args.cluster_issuers.clone(),
        trusted_issuers: args.trusted_issuers.clone(),
        ctl_issuers: args.ctl_issuers.clone(),
        artifact_dirs: args.allow_dirs.clone(),
        registries: trellis_lattice_client::oci::RegistrySettings {
            insecure: args.insecure_registries.clone(),
            ..Default::default()
        },
        ctl_nats_auth: args.ctl_nats_credentials.as_ref().map(credentials),
        provider_nats_auth: args.provider_nats_credentials.as_ref().map(credentials),
        policy: args.policy_subject.as_ref().map(|subject| PolicyConfig {
            timeout: args.policy_timeout,
            cache_ttl: args.policy_cache_ttl,
            ..PolicyConfig::new(subject.clone())
        }),
        labels: labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with(trellis_host::labels::BUILTIN_PREFIX))
            .collect(),
        heartbeat_interval: Duration::from_secs(args.heartbeat_secs.max(1)),
        ..HostConfig::default()
    };
    if config.trusted_issuers.is_empty() {
        tracing::warn!("no --trust issuer given: this host will refuse every actor");
    }
    if config.ctl_issuers.is_empty() {
        tracing::warn!("no --ctl-issuer given: this host will refuse every control request");
    }
    let host = Host::start(config).await?;
    println!("{}", host.id());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        () = host.stopped() => {}
    }
    host.stop(None).await;
    Ok(ExitCode::SUCCESS)
}

/// NATS authentication with the credentials file at `path`.
fn credentials(path: impl AsRef<std::path::Path>) -> NatsAuth {
    NatsAuth::Credentials {
        path: path.as_ref().to_string_lossy().into_owned(),
    }
}
