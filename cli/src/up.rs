//! `trellis up`: a local lattice for development, in one process. It
//! starts `nats-server` (from `PATH`) unless one already listens on the
//! port, a host that trusts the development issuer, and the capability
//! providers named on the command line; it stays up until Ctrl-C or
//! SIGTERM, then stops them all in order.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::process::{Child, Command};
use trellis_host::{Host, HostConfig, NatsConfig};
use trellis_protocol::ProviderDescription;

use crate::output::{Output, emit};

/// How long a started nats-server may take to listen. 10 s.
const NATS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long nats-server may take to exit after SIGTERM before it is
/// killed. 5 s.
const NATS_STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Loopback port of NATS. A server already listening there is used;
    /// otherwise `nats-server` from `PATH` is started on it, with
    /// JetStream, storing under `$TRELLIS_HOME/nats`.
    #[arg(long, env = "TRELLIS_NATS_PORT", default_value_t = 4222)]
    pub nats_port: u16,
    /// The `nats-server` binary. Defaults to `nats-server` on `PATH`, then
    /// `/usr/sbin/nats-server`.
    #[arg(long, env = "TRELLIS_NATS_SERVER")]
    pub nats_server: Option<PathBuf>,
    /// Lattice name.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = "default")]
    pub lattice: String,
    /// A capability provider archive (`.par.gz`) to start, serving link
    /// name `default`. Repeat for several.
    #[arg(long = "provider", env = "TRELLIS_PROVIDERS", value_delimiter = ',')]
    pub providers: Vec<String>,
    /// Further account public keys (`A…`) to trust besides the
    /// development issuer. Repeat for several.
    #[arg(long = "trust", env = "TRELLIS_TRUSTED_ISSUERS", value_delimiter = ',')]
    pub trusted_issuers: Vec<String>,
    /// A further directory the host may start actors and providers from,
    /// besides the development home. Repeat for several.
    #[arg(
        long = "allow-dir",
        env = "TRELLIS_ALLOWED_DIRS",
        value_delimiter = ','
    )]
    pub allow_dirs: Vec<PathBuf>,
    /// A registry (`host:port`) this host pulls from over plain HTTP
    /// instead of HTTPS. Repeat for several. Credentials come from the
    /// Docker configuration (`~/.docker/config.json`).
    #[arg(
        long = "allow-insecure-registry",
        env = "TRELLIS_ALLOW_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Further operators (`O…`) whose control credentials the host
    /// accepts, besides the development operator. Repeat for several.
    #[arg(
        long = "ctl-issuer",
        env = "TRELLIS_CTL_ISSUERS",
        value_delimiter = ','
    )]
    pub ctl_issuers: Vec<String>,
    /// A host label `key=value`. Repeat for several.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// How long to wait for each provider's first health answer, e.g. `30s`.
    #[arg(long, env = "TRELLIS_PROVIDER_START_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub provider_start_timeout: Duration,
    /// Log filter, tracing-subscriber `EnvFilter` syntax.
    #[arg(long, env = "TRELLIS_LOG", default_value = "info")]
    pub log: String,
    /// Do not run wadm beside the host (by default `trellis up` runs one,
    /// so `trellis app deploy` works at once).
    #[arg(long, env = "TRELLIS_NO_WADM")]
    pub no_wadm: bool,
}

/// What `trellis up` prints once the lattice is ready: with `-o json`, one
/// line of JSON (a launcher reads exactly one line).
#[derive(Serialize)]
struct Ready {
    nats_url: String,
    nats_started: bool,
    lattice: String,
    host_id: String,
    trusted_issuer: String,
    providers: Vec<ProviderDescription>,
}

pub fn run(args: UpArgs, output: Output) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).context("bad --log filter")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(up(args, output))
}

async fn up(args: UpArgs, output: Output) -> anyhow::Result<ExitCode> {
    let issuer = crate::dev::issuer()?;
    let cluster = crate::dev::cluster()?;
    let nats_url = format!("nats://127.0.0.1:{}", args.nats_port);
    let mut nats = if port_open(args.nats_port).await {
        tracing::info!("using the NATS server already listening at {nats_url}");
        None
    } else {
        Some(start_nats(&args).await?)
    };
    let result = serve(&args, &nats_url, nats.is_some(), &issuer, &cluster, output).await;
    if let Some(child) = nats.as_mut() {
        stop_nats(child).await;
    }
    result
}

async fn serve(
    args: &UpArgs,
    nats_url: &str,
    nats_started: bool,
    issuer: &trellis_claims::keys::KeyPair,
    cluster: &trellis_claims::keys::KeyPair,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let mut trusted = vec![issuer.public_key()];
    trusted.extend(args.trusted_issuers.iter().cloned());
    let labels = trellis_host::labels::resolve(std::env::vars(), args.labels.clone())?;
    let config = HostConfig {
        lattice: args.lattice.clone(),
        nats: NatsConfig {
            urls: vec![nats_url.to_owned()],
            ..NatsConfig::default()
        },
        cluster_seed: Some(cluster.seed()?),
        trusted_issuers: trusted,
        ctl_issuers: ctl_issuers(args)?,
        artifact_dirs: artifact_dirs(args),
        registries: trellis_lattice_client::oci::RegistrySettings {
            insecure: args.insecure_registries.clone(),
            ..Default::default()
        },
        labels: labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with(trellis_host::labels::BUILTIN_PREFIX))
            .collect(),
        provider_cache_dir: crate::dev::home().join("providers"),
        ..HostConfig::default()
    };
    let host = Host::start(config).await?;
    let started = start_providers(&host, args).await;
    let providers = match started {
        Ok(p) => p,
        Err(e) => {
            host.stop(None).await;
            return Err(e);
        }
    };
    let wadm = if args.no_wadm {
        None
    } else {
        match crate::app::start_in_process(host.nats().clone(), &args.lattice, cluster.public_key())
            .await
        {
            Ok(w) => Some(w),
            Err(e) => {
                host.stop(None).await;
                return Err(e);
            }
        }
    };
    let ready = Ready {
        nats_url: nats_url.to_owned(),
        nats_started,
        lattice: args.lattice.clone(),
        host_id: host.id().to_owned(),
        trusted_issuer: issuer.public_key(),
        providers,
    };
    // JSON readiness is one line, so a launcher can read exactly one line.
    match output {
        Output::Json => println!("{}", serde_json::to_string(&ready)?),
        Output::Text => emit(output, &ready, || describe(&ready))?,
    }
    tokio::select! {
        () = terminated() => tracing::info!("stopping the lattice"),
        () = host.stopped() => tracing::info!("the host was stopped"),
    }
    if let Some(wadm) = wadm {
        wadm.stop().await;
    }
    host.stop(None).await;
    Ok(ExitCode::SUCCESS)
}

/// The directories `trellis up`'s host starts artifacts from: the
/// development home (the CLI stages files there) and any `--allow-dir`.
fn artifact_dirs(args: &UpArgs) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![crate::dev::home()];
    dirs.extend(args.allow_dirs.iter().cloned());
    dirs
}

/// The control issuers of `trellis up`'s host: the development operator
/// (so the CLI works with no set-up) and any `--ctl-issuer`.
fn ctl_issuers(args: &UpArgs) -> anyhow::Result<Vec<String>> {
    // Make the CLI's control key now too, so that tools reading the
    // development home find both keys once the lattice is up.
    crate::dev::ctl_signer(&args.lattice)?;
    let mut issuers = vec![crate::dev::operator()?.public_key()];
    issuers.extend(args.ctl_issuers.iter().cloned());
    Ok(issuers)
}

fn describe(ready: &Ready) -> String {
    let mut text = format!(
        "Lattice {} is up.\n  NATS:    {}{}\n  Host:    {}\n  Trusts:  {} (the development issuer)",
        ready.lattice,
        ready.nats_url,
        if ready.nats_started {
            " (started here)"
        } else {
            ""
        },
        ready.host_id,
        ready.trusted_issuer
    );
    for p in &ready.providers {
        text.push_str(&format!(
            "\n  Provider {} ({}): {}",
            p.name, p.contract_id, p.id
        ));
    }
    text.push_str("\nPress Ctrl-C to stop.");
    text
}

/// Starts each provider and waits until it answers its health subject,
/// so that links put afterwards reach it.
async fn start_providers(host: &Host, args: &UpArgs) -> anyhow::Result<Vec<ProviderDescription>> {
    let mut started = Vec::new();
    for reference in &args.providers {
        let path = crate::dev::stage(reference)
            .with_context(|| format!("provider archive {reference}"))?;
        let provider = host
            .start_provider(
                &path,
                trellis_protocol::DEFAULT_LINK_NAME,
                Default::default(),
                Default::default(),
            )
            .await
            .with_context(|| format!("starting provider {reference}"))?;
        host.wait_for_provider(
            &provider.id,
            &provider.link_name,
            args.provider_start_timeout,
        )
        .await
        .with_context(|| {
            format!(
                "provider {} did not become ready; see the log above",
                provider.name
            )
        })?;
        tracing::info!(
            provider = provider.id,
            name = provider.name,
            "provider ready"
        );
        started.push(provider);
    }
    Ok(started)
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

fn nats_server_binary(args: &UpArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.nats_server {
        return Ok(path.clone());
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
        .context("nats-server is not on PATH: install it (Debian: apt-get install nats-server) or pass --nats-server")
}

async fn start_nats(args: &UpArgs) -> anyhow::Result<Child> {
    let binary = nats_server_binary(args)?;
    let home = crate::dev::home();
    let store = home.join("nats");
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let log_path = home.join("nats-server.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    tracing::info!(
        "starting {} with JetStream on 127.0.0.1:{} (log: {})",
        binary.display(),
        args.nats_port,
        log_path.display()
    );
    let mut child = Command::new(&binary)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &args.nats_port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let deadline = tokio::time::Instant::now() + NATS_START_TIMEOUT;
    while !port_open(args.nats_port).await {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "nats-server exited ({status}) before listening; see {}",
                log_path.display()
            );
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill().await;
            bail!(
                "nats-server did not listen on 127.0.0.1:{} within {NATS_START_TIMEOUT:?}",
                args.nats_port
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

/// SIGTERM, then SIGKILL if it has not exited in time; always reaped.
async fn stop_nats(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(NATS_STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("nats-server did not exit in time; killing it");
        let _ = child.kill().await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
