//! `trellis app`: declare applications in manifests and let wadm run them;
//! and `trellis wadm`, which runs wadm.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use futures::StreamExt as _;
use trellis_claims::jwt::VerifyOptions;
use trellis_lattice_client::CtlClient;
use trellis_protocol::artifact::ArtifactRef;
use trellis_protocol::wadm::{
    AppStatus, ModelOperation, ModelRequest, ModelSummary, PutModelReply, StatusKind, VersionInfo,
    status_subject,
};
use trellis_wadm::manifest::{ComponentType, ENV_SECRETS_POLICY, Manifest, SealedValue};

use crate::ctl::{LatticeArgs, block_on};
use crate::output::{Output, emit};

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Store a manifest as a new version and deploy it; waits until the
    /// application is deployed (or failed) unless `--no-wait`.
    Deploy {
        /// The manifest (YAML or JSON).
        manifest: PathBuf,
        /// Return once wadm accepted the deployment.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for `deployed`, e.g. `60s`.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        wait_timeout: Duration,
    },
    /// Store a manifest as a new version, without deploying it.
    Put {
        /// The manifest (YAML or JSON).
        manifest: PathBuf,
    },
    /// Check a manifest without storing it: the format, and the links
    /// against the claims of the actors that can be read here.
    Validate {
        /// The manifest (YAML or JSON).
        manifest: PathBuf,
    },
    /// Stop everything wadm runs for an application; its versions stay.
    Undeploy {
        /// The application.
        name: String,
    },
    /// Delete one version of an undeployed application, or all of them.
    Delete {
        /// The application.
        name: String,
        /// The version; every version when absent.
        #[arg(long)]
        version: Option<String>,
    },
    /// List the applications with their status.
    List,
    /// Show an application's status; `--watch` prints every change.
    Status {
        /// The application.
        name: String,
        /// Keep printing status changes until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// List an application's stored versions.
    History {
        /// The application.
        name: String,
    },
}

/// Runs `trellis app …`.
pub fn run(cmd: AppCommand, lattice: LatticeArgs, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async move {
        match cmd {
            AppCommand::Validate { manifest } => {
                let manifest = load(&manifest)?;
                check_contracts(&manifest, &lattice).await?;
                emit(
                    output,
                    &serde_json::json!({"valid": true, "name": manifest.name(), "version": manifest.version()}),
                    || format!("{} {} is valid", manifest.name(), manifest.version()),
                )?;
                Ok(ExitCode::SUCCESS)
            }
            AppCommand::Put { manifest } => {
                let client = lattice.client().await?;
                let reply = put(&client, &lattice, &manifest).await?;
                emit(output, &reply, || {
                    format!(
                        "Stored {} {} ({} versions).",
                        reply.name, reply.version, reply.total_versions
                    )
                })?;
                Ok(ExitCode::SUCCESS)
            }
            AppCommand::Deploy {
                manifest,
                no_wait,
                wait_timeout,
            } => {
                let client = lattice.client().await?;
                let stored = put(&client, &lattice, &manifest).await?;
                let request = ModelRequest {
                    name: stored.name.clone(),
                    version: Some(stored.version.clone()),
                };
                let summary: ModelSummary = required(
                    client
                        .wadm(ModelOperation::Deploy, serde_json::to_vec(&request)?)
                        .await?,
                )?;
                if no_wait {
                    emit(output, &summary.status, || describe_status(&summary.status))?;
                    return Ok(ExitCode::SUCCESS);
                }
                let status =
                    wait_settled(&client, &stored.name, &stored.version, wait_timeout).await?;
                emit(output, &status, || describe_status(&status))?;
                Ok(if status.kind == StatusKind::Deployed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            AppCommand::Undeploy { name } => {
                let client = lattice.client().await?;
                let request = ModelRequest {
                    name: name.clone(),
                    version: None,
                };
                client
                    .wadm::<serde_json::Value>(
                        ModelOperation::Undeploy,
                        serde_json::to_vec(&request)?,
                    )
                    .await?;
                emit(output, &serde_json::json!({"undeployed": name}), || {
                    format!("Undeploying {name}.")
                })?;
                Ok(ExitCode::SUCCESS)
            }
            AppCommand::Delete { name, version } => {
                let client = lattice.client().await?;
                let request = ModelRequest {
                    name: name.clone(),
                    version: version.clone(),
                };
                client
                    .wadm::<serde_json::Value>(ModelOperation::Del, serde_json::to_vec(&request)?)
                    .await?;
                emit(
                    output,
                    &serde_json::json!({"deleted": name, "version": version}),
                    || {
                        format!(
                            "Deleted {name} {}.",
                            version.as_deref().unwrap_or("(every version)")
                        )
                    },
                )?;
                Ok(ExitCode::SUCCESS)
            }
            AppCommand::List => {
                let client = lattice.client().await?;
                let apps: Vec<ModelSummary> =
                    required(client.wadm(ModelOperation::List, b"{}".to_vec()).await?)?;
                emit(output, &apps, || {
                    let mut text = format!(
                        "{:<24} {:<12} {:<12} {:<12} MESSAGE",
                        "NAME", "LATEST", "DEPLOYED", "STATUS"
                    );
                    for a in &apps {
                        text.push_str(&format!(
                            "\n{:<24} {:<12} {:<12} {:<12} {}",
                            a.name,
                            a.latest_version,
                            a.deployed_version.as_deref().unwrap_or("-"),
                            a.status.kind.as_str(),
                            a.status.message
                        ));
                    }
                    text
                })?;
                Ok(ExitCode::SUCCESS)
            }
            AppCommand::Status { name, watch } => {
                let client = lattice.client().await?;
                let status = status(&client, &name).await?;
                emit(output, &status, || describe_status(&status))?;
                if watch {
                    let subject = status_subject(client.lattice(), &name)?;
                    let mut updates = client.nats().subscribe(subject).await?;
                    while let Some(message) = updates.next().await {
                        if let Ok(status) = serde_json::from_slice::<AppStatus>(&message.payload) {
                            emit(output, &status, || describe_status(&status))?;
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            AppCommand::History { name } => {
                let client = lattice.client().await?;
                let request = ModelRequest {
                    name,
                    version: None,
                };
                let versions: Vec<VersionInfo> = required(
                    client
                        .wadm(ModelOperation::Versions, serde_json::to_vec(&request)?)
                        .await?,
                )?;
                emit(output, &versions, || {
                    versions
                        .iter()
                        .map(|v| {
                            format!(
                                "{}{}",
                                v.version,
                                if v.deployed { "  (deployed)" } else { "" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn required<T>(value: Option<T>) -> anyhow::Result<T> {
    value.context("wadm's reply carries no response")
}

async fn status(client: &CtlClient, name: &str) -> anyhow::Result<AppStatus> {
    let request = ModelRequest {
        name: name.to_owned(),
        version: None,
    };
    required(
        client
            .wadm(ModelOperation::Status, serde_json::to_vec(&request)?)
            .await?,
    )
}

/// Polls the status until `version` is deployed or failed, or `timeout`.
async fn wait_settled(
    client: &CtlClient,
    name: &str,
    version: &str,
    timeout: Duration,
) -> anyhow::Result<AppStatus> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = status(client, name).await?;
        let current = status.version.as_deref() == Some(version);
        let settled = matches!(status.kind, StatusKind::Deployed | StatusKind::Failed);
        if (current && settled) || tokio::time::Instant::now() >= deadline {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn describe_status(status: &AppStatus) -> String {
    let mut text = format!(
        "{} {}: {}",
        status.name,
        status.version.as_deref().unwrap_or("-"),
        status.kind.as_str()
    );
    if !status.message.is_empty() {
        text.push_str(&format!(" ({})", status.message));
    }
    for c in &status.components {
        text.push_str(&format!("\n  {:<24} {}/{}", c.name, c.running, c.desired));
    }
    text
}

/// Reads and validates a manifest; relative file references become
/// absolute (relative to the manifest's directory).
fn load(path: &Path) -> anyhow::Result<Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut manifest = Manifest::parse(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid manifest ({}): {e}",
            path.display(),
            e.kind()
        )
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    for component in &mut manifest.spec.components {
        let image = component.properties.image.clone();
        if let Ok(ArtifactRef::File(file)) = image.parse::<ArtifactRef>() {
            let file = PathBuf::from(file);
            if file.is_relative() {
                let absolute = std::path::absolute(base.join(&file))
                    .with_context(|| format!("resolving {}", file.display()))?;
                component.properties.image = absolute.to_string_lossy().into_owned();
            }
        }
    }
    Ok(manifest)
}

/// Checks the links against the claims of each actor whose module can be
/// read here (a file, or the lattice's artifact store).
async fn check_contracts(manifest: &Manifest, lattice: &LatticeArgs) -> anyhow::Result<()> {
    let mut caps = std::collections::BTreeMap::new();
    for component in &manifest.spec.components {
        if component.component_type != ComponentType::Component {
            continue;
        }
        let bytes = match component.properties.image.parse::<ArtifactRef>() {
            Ok(ArtifactRef::File(path)) => std::fs::read(&path).ok(),
            Ok(ArtifactRef::Lattice(r)) => {
                let timeout = lattice.timeout;
                async {
                    let nats = lattice.nats().await.ok()?;
                    let store = trellis_lattice_client::artifacts::open(
                        &nats,
                        &lattice.lattice,
                        false,
                        timeout,
                    )
                    .await
                    .ok()?;
                    trellis_lattice_client::artifacts::get(
                        &store,
                        &r.object_name(),
                        r.digest.as_deref(),
                        crate::artifacts::MAX_ARTIFACT_BYTES,
                        timeout,
                        |_| {},
                    )
                    .await
                    .ok()
                    .map(|(_, bytes)| bytes)
                }
                .await
            }
            _ => None,
        };
        let Some(bytes) = bytes else { continue };
        let options = VerifyOptions {
            trusted_issuers: None,
            ..VerifyOptions::default()
        };
        let claims = trellis_claims::actor::verify_actor(&bytes, &options)
            .with_context(|| format!("component {}: reading its claims", component.name))?;
        caps.insert(component.name.clone(), claims.trellis.caps);
    }
    manifest
        .check_contracts(|c| caps.get(&c.name).cloned())
        .map_err(|e| anyhow::anyhow!("invalid manifest ({}): {e}", e.kind()))
}

/// Loads, checks, seals the secrets of, and stores a manifest.
async fn put(
    client: &CtlClient,
    lattice: &LatticeArgs,
    path: &Path,
) -> anyhow::Result<PutModelReply> {
    let mut manifest = load(path)?;
    check_contracts(&manifest, lattice).await?;
    seal(client, &mut manifest).await?;
    let body = serde_json::to_vec(&manifest)?;
    required(client.wadm(ModelOperation::Put, body).await?)
}

/// Reads each unsealed secret from the environment (policy type
/// `trellis.secrets.env`) and seals it to the lattice's secrets key.
async fn seal(client: &CtlClient, manifest: &mut Manifest) -> anyhow::Result<()> {
    let policies = manifest.spec.policies.clone();
    let mut wanted = Vec::new();
    for component in &manifest.spec.components {
        for t in &component.traits {
            let trellis_wadm::manifest::Trait::Link(link) = t else {
                continue;
            };
            let mut secrets: Vec<_> = link.source.iter().flat_map(|s| s.secrets.clone()).collect();
            if let trellis_wadm::manifest::LinkTarget::Config(target) = &link.target {
                secrets.extend(target.secrets.clone());
            }
            for secret in secrets
                .into_iter()
                .filter(|s| s.properties.sealed.is_none())
            {
                let policy = policies
                    .iter()
                    .find(|p| p.name == secret.properties.policy)
                    .with_context(|| {
                        format!(
                            "secret {}: no policy {}",
                            secret.name, secret.properties.policy
                        )
                    })?;
                if policy.policy_type != ENV_SECRETS_POLICY {
                    bail!(
                        "secret {}: policy {} is of type {}; this CLI reads secrets of type {ENV_SECRETS_POLICY}",
                        secret.name,
                        policy.name,
                        policy.policy_type
                    );
                }
                let value = std::env::var(&secret.properties.key).with_context(|| {
                    format!(
                        "secret {}: environment variable {} is not set",
                        secret.name, secret.properties.key
                    )
                })?;
                wanted.push((secret.properties.key.clone(), value.into_bytes()));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let sealed = client.seal_secrets(wanted).await?;
    let fill = |secrets: &mut Vec<trellis_wadm::manifest::SecretProperty>| {
        for secret in secrets.iter_mut() {
            if secret.properties.sealed.is_none()
                && let Some(value) = sealed.get(&secret.properties.key)
            {
                secret.properties.sealed = Some(SealedValue::from(value.clone()));
            }
        }
    };
    for component in &mut manifest.spec.components {
        for t in &mut component.traits {
            let trellis_wadm::manifest::Trait::Link(link) = t else {
                continue;
            };
            if let Some(source) = &mut link.source {
                fill(&mut source.secrets);
            }
            if let trellis_wadm::manifest::LinkTarget::Config(target) = &mut link.target {
                fill(&mut target.secrets);
            }
        }
    }
    Ok(())
}

/// Where wadm runs and whom it believes.
#[derive(Debug, clap::Args)]
pub struct WadmArgs {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    /// Operators (`O…`) whose control credentials may use the wadm API.
    /// Defaults to the development operator.
    #[arg(
        long = "ctl-issuer",
        env = "TRELLIS_CTL_ISSUERS",
        value_delimiter = ','
    )]
    pub ctl_issuers: Vec<String>,
    /// Cluster issuers (`C…`) whose hosts' heartbeats and events wadm
    /// believes. Defaults to the development cluster key's.
    #[arg(
        long = "cluster-issuer",
        env = "TRELLIS_CLUSTER_ISSUERS",
        value_delimiter = ','
    )]
    pub cluster_issuers: Vec<String>,
    /// Time between full resyncs against the hosts' inventories.
    #[arg(long, env = "TRELLIS_WADM_RESYNC", default_value = "10s", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,
    /// Time to live of the reconciling wadm's lease.
    #[arg(long, env = "TRELLIS_WADM_LEASE_TTL", default_value = "6s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// Log filter (tracing-subscriber syntax).
    #[arg(long, env = "TRELLIS_LOG", default_value = "info")]
    pub log: String,
}

/// Runs `trellis wadm` until Ctrl-C.
pub fn wadm(args: WadmArgs, output: Output) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log).context("bad --log filter")?,
        )
        .with_writer(std::io::stderr)
        .init();
    block_on(async move {
        let client = args.lattice.client().await?;
        let signer = match (&args.lattice.ctl_key, &args.lattice.ctl_credential) {
            (Some(_), Some(_)) => client
                .signer()
                .cloned()
                .context("wadm needs a control credential")?,
            _ => Arc::new(crate::dev::ctl_signer_for(
                &args.lattice.lattice,
                crate::dev::DEV_WADM_CREDENTIAL_TTL,
            )?),
        };
        let config = config(&args)?;
        let wadm = trellis_wadm::Wadm::start(client.nats().clone(), signer, config).await?;
        // Readiness is one line, so a launcher can read exactly one line.
        let ready = serde_json::json!({"wadm": wadm.id(), "lattice": args.lattice.lattice});
        match output {
            Output::Json => println!("{ready}"),
            Output::Text => println!(
                "wadm {} serves lattice {}. Press Ctrl-C to stop.",
                wadm.id(),
                args.lattice.lattice
            ),
        }
        let _ = tokio::signal::ctrl_c().await;
        wadm.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn config(args: &WadmArgs) -> anyhow::Result<trellis_wadm::WadmConfig> {
    let ctl_issuers = if args.ctl_issuers.is_empty() {
        vec![crate::dev::operator()?.public_key()]
    } else {
        args.ctl_issuers.clone()
    };
    let cluster_issuers = if args.cluster_issuers.is_empty() {
        vec![crate::dev::cluster()?.public_key()]
    } else {
        args.cluster_issuers.clone()
    };
    Ok(trellis_wadm::WadmConfig {
        lattice: args.lattice.lattice.clone(),
        ctl_issuers,
        cluster_issuers,
        resync_interval: args.resync_interval,
        lease_ttl: args.lease_ttl,
        ..trellis_wadm::WadmConfig::default()
    })
}

/// Starts wadm inside `trellis up`, with the development keys.
pub async fn start_in_process(
    nats: async_nats::Client,
    lattice: &str,
    cluster_issuer: String,
) -> anyhow::Result<trellis_wadm::Wadm> {
    let signer = Arc::new(crate::dev::ctl_signer_for(
        lattice,
        crate::dev::DEV_WADM_CREDENTIAL_TTL,
    )?);
    let config = trellis_wadm::WadmConfig {
        lattice: lattice.to_owned(),
        ctl_issuers: vec![crate::dev::operator()?.public_key()],
        cluster_issuers: vec![cluster_issuer],
        ..trellis_wadm::WadmConfig::default()
    };
    Ok(trellis_wadm::Wadm::start(nats, signer, config).await?)
}
