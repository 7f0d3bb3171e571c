//! `trellis get|start|stop|link`: drive a lattice's hosts through the
//! control interface.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde::Serialize;
use trellis_claims::invocation::{DEFAULT_TOKEN_TTL, InvocationSigner};
use trellis_claims::keys::KeyKind;
use trellis_lattice_client::CtlClient;
use trellis_protocol::ctl::{
    DeleteLinkRequest, StartActorRequest, StartProviderRequest, StopProviderRequest,
};
use trellis_protocol::provider::{NatsAuth, NatsConnection};
use trellis_protocol::{ContractId, HostInventory, Lattice, LinkDefinition};

use crate::output::{Output, emit};

/// Where the lattice is and how long to wait for it.
#[derive(Debug, Clone, clap::Args)]
pub struct LatticeArgs {
    /// NATS server URLs, comma-separated.
    #[arg(
        long = "nats-url",
        env = "TRELLIS_NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_urls: Vec<String>,
    /// NATS credentials file (JWT and seed).
    #[arg(long, env = "TRELLIS_NATS_CREDENTIALS", global = true)]
    pub nats_credentials: Option<std::path::PathBuf>,
    /// Lattice to talk to.
    #[arg(
        long,
        env = "TRELLIS_LATTICE",
        default_value = "default",
        global = true
    )]
    pub lattice: String,
    /// How long to wait for each answer, e.g. `500ms` or `30s`.
    #[arg(long, env = "TRELLIS_CTL_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// The control key (`SU…` seed, or a file holding it) that signs
    /// requests. Defaults to the development user key of the development
    /// home, with a credential from the development operator.
    #[arg(
        long,
        env = "TRELLIS_CTL_KEY",
        requires = "ctl_credential",
        global = true
    )]
    pub ctl_key: Option<String>,
    /// The control credential (a JWT, or a file holding it) issued to
    /// `--ctl-key` by an operator the hosts trust.
    #[arg(
        long,
        env = "TRELLIS_CTL_CREDENTIAL",
        requires = "ctl_key",
        global = true
    )]
    pub ctl_credential: Option<String>,
}

impl LatticeArgs {
    /// Connects and returns a control client of the lattice.
    pub async fn client(&self) -> anyhow::Result<CtlClient> {
        let nats = self.nats().await?;
        let lattice = Lattice::new(self.lattice.clone()).context("bad --lattice")?;
        Ok(CtlClient::new(nats, lattice)
            .with_timeout(self.timeout)
            .with_signer(Arc::new(self.signer()?)))
    }

    /// Connects to the lattice's NATS servers.
    pub async fn nats(&self) -> anyhow::Result<async_nats::Client> {
        let config = NatsConnection {
            urls: self.nats_urls.clone(),
            auth: self.nats_credentials.as_ref().map_or(NatsAuth::None, |p| {
                NatsAuth::Credentials {
                    path: p.to_string_lossy().into_owned(),
                }
            }),
            tls: None,
            subscription_capacity: trellis_protocol::provider::DEFAULT_SUBSCRIPTION_CAPACITY,
        };
        Ok(trellis_lattice_client::connect(&config, "trellis-cli", self.timeout).await?)
    }

    /// The signer of control requests: `--ctl-key` with `--ctl-credential`,
    /// or the development home's user key and operator.
    fn signer(&self) -> anyhow::Result<InvocationSigner> {
        let (Some(key), Some(credential)) = (&self.ctl_key, &self.ctl_credential) else {
            return crate::dev::ctl_signer(&self.lattice);
        };
        let key = crate::output::read_key(key, KeyKind::User).context("bad --ctl-key")?;
        let credential = if Path::new(credential).is_file() {
            std::fs::read_to_string(credential)
                .with_context(|| format!("reading {credential}"))?
                .trim()
                .to_owned()
        } else {
            credential.trim().to_owned()
        };
        Ok(InvocationSigner::new(key, credential, DEFAULT_TOKEN_TTL)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// List the hosts of the lattice (those answering a ping within 1 s).
    Hosts,
    /// Show a host's labels, actors and providers (the only host's when
    /// the lattice has one).
    Inventory {
        /// The host (`N…`).
        host_id: Option<String>,
    },
    /// List the link definitions of the lattice.
    Links,
    /// List the claims of the actors and providers seen in the lattice.
    Claims,
}

#[derive(Debug, Subcommand)]
pub enum StartCommand {
    /// Start a signed actor by reference: `name[:version]` from the
    /// lattice's artifact store (see `trellis push`), or a file on the host
    /// (a local path is made absolute); prints its id (`M…`).
    Actor {
        /// The signed component: an artifact reference or a path.
        actor_ref: String,
        /// The host to start it on. Defaults to the first host that answers.
        #[arg(long, env = "TRELLIS_HOST_ID")]
        host_id: Option<String>,
        /// Most instances running at once (a count).
        #[arg(long, default_value_t = trellis_protocol::ctl::DEFAULT_MAX_INSTANCES)]
        max_instances: u32,
    },
    /// Start a capability provider from a signed archive (`.par.gz`) on the
    /// host; prints its id (`V…`).
    Provider {
        /// The archive (or, on a development-mode host, a plain binary).
        provider_ref: String,
        /// The link name it serves.
        #[arg(long, default_value = trellis_protocol::DEFAULT_LINK_NAME)]
        link_name: String,
        /// Provider configuration `KEY=VALUE`. Repeat for several.
        #[arg(long = "config", value_parser = parse_pair)]
        config: Vec<(String, String)>,
        /// The host to start it on. Defaults to the first host that answers.
        #[arg(long, env = "TRELLIS_HOST_ID")]
        host_id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StopCommand {
    /// Stop an actor on every host running it (or on `--host-id` only).
    Actor {
        /// The actor (`M…`).
        actor_id: String,
        /// Only this host.
        #[arg(long, env = "TRELLIS_HOST_ID")]
        host_id: Option<String>,
    },
    /// Stop a capability provider on every host running it (or on
    /// `--host-id` only).
    Provider {
        /// The provider (`V…`).
        provider_id: String,
        /// The link name it serves.
        #[arg(long, default_value = trellis_protocol::DEFAULT_LINK_NAME)]
        link_name: String,
        /// Only this host.
        #[arg(long, env = "TRELLIS_HOST_ID")]
        host_id: Option<String>,
    },
    /// Drain and stop a host.
    Host {
        /// The host (`N…`).
        host_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Put a link definition: let an actor use a provider's contract.
    Put {
        /// The actor (`M…`).
        actor_id: String,
        /// The provider (`V…`).
        provider_id: String,
        /// The contract, e.g. `wasi:keyvalue`.
        contract_id: String,
        /// Link configuration `KEY=VALUE`, handed to the provider (and,
        /// for keys starting with `actor.`, to the actor through
        /// `wasi:config`).
        #[arg(value_parser = parse_pair)]
        config: Vec<(String, String)>,
        /// A secret configuration entry `KEY=PATH`, read from the file at
        /// PATH (one trailing newline dropped) and sealed to the lattice's
        /// secrets key: only the provider sees it, never the actor, the
        /// lattice bucket, events or logs. Repeatable.
        #[arg(long = "secret-file", value_name = "KEY=PATH", value_parser = parse_pair)]
        secret_files: Vec<(String, String)>,
        /// A secret configuration entry `KEY=VAR`, read from environment
        /// variable VAR and sealed like `--secret-file`. Repeatable.
        #[arg(long = "secret-env", value_name = "KEY=VAR", value_parser = parse_pair)]
        secret_envs: Vec<(String, String)>,
        /// The link name.
        #[arg(long, default_value = trellis_protocol::DEFAULT_LINK_NAME)]
        link_name: String,
    },
    /// Delete a link definition.
    Del {
        /// The actor (`M…`).
        actor_id: String,
        /// The contract, e.g. `wasi:keyvalue`.
        contract_id: String,
        /// The link name.
        #[arg(long, default_value = trellis_protocol::DEFAULT_LINK_NAME)]
        link_name: String,
    },
    /// List the link definitions of the lattice.
    List,
}

/// The values of `--secret-file` and `--secret-env`, by key.
fn read_secrets(
    files: Vec<(String, String)>,
    envs: Vec<(String, String)>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let limit = trellis_claims::secrets::MAX_SECRET_BYTES;
    let mut values = Vec::new();
    for (key, path) in files {
        let mut value = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, limit as u64 + 3),
                    &mut value,
                )
            })
            .with_context(|| format!("secret `{key}`: cannot read {path}"))?;
        for end in [&b"\n"[..], b"\r"] {
            if value.ends_with(end) {
                value.pop();
            }
        }
        anyhow::ensure!(
            value.len() <= limit,
            "secret `{key}`: {path} is over {limit} bytes"
        );
        values.push((key, value));
    }
    for (key, var) in envs {
        let value = std::env::var(&var)
            .with_context(|| format!("secret `{key}`: environment variable {var} is not set"))?;
        values.push((key, value.into_bytes()));
    }
    Ok(values)
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Runs `future` to completion on a runtime of its own.
pub(crate) fn block_on_value<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    future: F,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Runs a command's `future` to completion on a runtime of its own.
pub(crate) fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    future: F,
) -> anyhow::Result<ExitCode> {
    block_on_value(future)
}

/// Runs `trellis get …`.
pub fn get(cmd: GetCommand, lattice: LatticeArgs, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = lattice.client().await?;
        match cmd {
            GetCommand::Hosts => {
                let hosts = client
                    .ping(trellis_lattice_client::ctl::DEFAULT_PING_WINDOW)
                    .await?;
                emit(output, &hosts, || {
                    if hosts.is_empty() {
                        return format!("No host answered in lattice {}.", lattice.lattice);
                    }
                    let mut text = format!("{:<58} {:>10}  LABELS", "HOST", "UPTIME");
                    for h in &hosts {
                        let labels: Vec<String> =
                            h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        text.push_str(&format!(
                            "\n{:<58} {:>9}s  {}",
                            h.host_id,
                            h.uptime_ms / 1000,
                            labels.join(",")
                        ));
                    }
                    text
                })?;
            }
            GetCommand::Inventory { host_id } => {
                let host_id = host_or_any(&client, host_id).await?;
                let inventory = client.inventory(&host_id).await?;
                emit(output, &inventory, || describe_inventory(&inventory))?;
            }
            GetCommand::Links => print_links(&client, output).await?,
            GetCommand::Claims => {
                let claims = client.claims().await?;
                emit(output, &claims, || {
                    let mut text = format!("{:<58} {:<20} ISSUER", "SUBJECT", "NAME");
                    for c in &claims {
                        let field = |k: &str| {
                            c.get(k)
                                .and_then(serde_json::Value::as_str)
                                .unwrap_or("")
                                .to_owned()
                        };
                        let name = c
                            .pointer("/trellis/name")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("");
                        text.push_str(&format!(
                            "\n{:<58} {:<20} {}",
                            field("sub"),
                            name,
                            field("iss")
                        ));
                    }
                    text
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `trellis start …`.
pub fn start(cmd: StartCommand, lattice: LatticeArgs, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = lattice.client().await?;
        match cmd {
            StartCommand::Actor {
                actor_ref,
                host_id,
                max_instances,
            } => {
                let host_id = host_or_any(&client, host_id).await?;
                let request = StartActorRequest {
                    actor_ref: lattice.reference(&actor_ref)?,
                    max_instances,
                    annotations: BTreeMap::new(),
                };
                let actor = client.start_actor(&host_id, &request).await?;
                emit(output, &actor, || actor.id.clone())?;
            }
            StartCommand::Provider {
                provider_ref,
                link_name,
                config,
                host_id,
            } => {
                let host_id = host_or_any(&client, host_id).await?;
                let request = StartProviderRequest {
                    provider_ref: lattice.reference(&provider_ref)?,
                    link_name,
                    config: config.into_iter().collect(),
                    annotations: BTreeMap::new(),
                };
                let provider = client.start_provider(&host_id, &request).await?;
                emit(output, &provider, || provider.id.clone())?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Serialize)]
struct Stopped {
    stopped_on: Vec<String>,
}

/// Runs `trellis stop …`.
pub fn stop(cmd: StopCommand, lattice: LatticeArgs, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = lattice.client().await?;
        let mut stopped_on = Vec::new();
        match cmd {
            StopCommand::Actor { actor_id, host_id } => {
                for host in hosts_running(&client, host_id, |inv| {
                    inv.actors.iter().any(|a| a.id == actor_id)
                })
                .await?
                {
                    client.stop_actor(&host, &actor_id).await?;
                    stopped_on.push(host);
                }
                if stopped_on.is_empty() {
                    bail!("actor {actor_id} runs on no host of the lattice");
                }
            }
            StopCommand::Provider {
                provider_id,
                link_name,
                host_id,
            } => {
                for host in hosts_running(&client, host_id, |inv| {
                    inv.providers
                        .iter()
                        .any(|p| p.id == provider_id && p.link_name == link_name)
                })
                .await?
                {
                    let request = StopProviderRequest {
                        provider_id: provider_id.clone(),
                        link_name: link_name.clone(),
                    };
                    client.stop_provider(&host, &request).await?;
                    stopped_on.push(host);
                }
                if stopped_on.is_empty() {
                    bail!("provider {provider_id} ({link_name}) runs on no host of the lattice");
                }
            }
            StopCommand::Host { host_id } => {
                client.stop_host(&host_id, None).await?;
                stopped_on.push(host_id);
            }
        }
        let report = Stopped { stopped_on };
        emit(output, &report, || {
            format!("Stopped on {}", report.stopped_on.join(", "))
        })?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `trellis link …`.
pub fn link(cmd: LinkCommand, lattice: LatticeArgs, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let client = lattice.client().await?;
        match cmd {
            LinkCommand::Put {
                actor_id,
                provider_id,
                contract_id,
                config,
                secret_files,
                secret_envs,
                link_name,
            } => {
                let contract = ContractId::new(contract_id).context("bad contract id")?;
                let mut link = config.into_iter().fold(
                    LinkDefinition::new(actor_id, contract, link_name, provider_id),
                    |link, (k, v)| link.with_config(k, v),
                );
                let values = read_secrets(secret_files, secret_envs)?;
                if !values.is_empty() {
                    link.secrets = client.seal_secrets(values).await?;
                }
                client.put_link(&link).await?;
                emit(output, &link, || {
                    format!(
                        "Linked {} to {} ({}, link name {})",
                        link.actor_id, link.provider_id, link.contract_id, link.link_name
                    )
                })?;
            }
            LinkCommand::Del {
                actor_id,
                contract_id,
                link_name,
            } => {
                let request = DeleteLinkRequest {
                    actor_id,
                    contract_id: ContractId::new(contract_id).context("bad contract id")?,
                    link_name,
                };
                client.delete_link(&request).await?;
                emit(output, &request, || {
                    format!(
                        "Deleted the {} link {} of {}",
                        request.contract_id, request.link_name, request.actor_id
                    )
                })?;
            }
            LinkCommand::List => print_links(&client, output).await?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn print_links(client: &CtlClient, output: Output) -> anyhow::Result<()> {
    let links = client.links().await?;
    emit(output, &links, || {
        let mut text = format!(
            "{:<58} {:<16} {:<10} {:<58} CONFIG",
            "ACTOR", "CONTRACT", "LINK NAME", "PROVIDER"
        );
        for l in &links {
            let config: Vec<String> = l
                .config
                .keys()
                .cloned()
                .chain(l.secrets.keys().map(|k| format!("{k} (sealed)")))
                .collect();
            text.push_str(&format!(
                "\n{:<58} {:<16} {:<10} {:<58} {}",
                l.actor_id,
                l.contract_id.to_string(),
                l.link_name,
                l.provider_id,
                config.join(",")
            ));
        }
        text
    })
}

/// `host_id`, or else the first host to answer a ping.
async fn host_or_any(client: &CtlClient, host_id: Option<String>) -> anyhow::Result<String> {
    if let Some(id) = host_id {
        return Ok(id);
    }
    let hosts = client
        .ping(trellis_lattice_client::ctl::DEFAULT_PING_WINDOW)
        .await?;
    match hosts.into_iter().next() {
        Some(h) => Ok(h.host_id),
        None => {
            bail!("no host of the lattice answered; is `trellis up` or `trellis host` running?")
        }
    }
}

/// The hosts (only `only`, when given) whose inventory satisfies `runs`.
async fn hosts_running(
    client: &CtlClient,
    only: Option<String>,
    runs: impl Fn(&HostInventory) -> bool,
) -> anyhow::Result<Vec<String>> {
    let candidates = match only {
        Some(id) => vec![id],
        None => client
            .ping(trellis_lattice_client::ctl::DEFAULT_PING_WINDOW)
            .await?
            .into_iter()
            .map(|h| h.host_id)
            .collect(),
    };
    let mut found = Vec::new();
    for host in candidates {
        if runs(&client.inventory(&host).await?) {
            found.push(host);
        }
    }
    Ok(found)
}

/// `reference` made absolute when it names a local file, as is otherwise.
fn absolute(reference: &str) -> String {
    std::fs::canonicalize(Path::new(reference)).map_or_else(
        |_| reference.to_owned(),
        |p| p.to_string_lossy().into_owned(),
    )
}

impl LatticeArgs {
    /// The reference to send for a file the user named: with the
    /// development credential, a local file is staged into the
    /// development home, the only place `trellis up`'s host starts files
    /// from; with `--ctl-key`, the path as it is (made absolute), for a
    /// host configured with `--allow-dir`.
    fn reference(&self, reference: &str) -> anyhow::Result<String> {
        if self.ctl_key.is_none() && Path::new(reference).is_file() {
            return crate::dev::stage(reference);
        }
        Ok(absolute(reference))
    }
}

fn describe_inventory(inv: &HostInventory) -> String {
    let labels: Vec<String> = inv.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut text = format!(
        "Host:      {}\nLattice:   {}\nVersion:   {}\nUptime:    {} s\nLabels:    {}\n\nACTORS",
        inv.host_id,
        inv.lattice,
        inv.version,
        inv.uptime_ms / 1000,
        labels.join(", ")
    );
    if inv.actors.is_empty() {
        text.push_str("\n  (none)");
    }
    for a in &inv.actors {
        text.push_str(&format!(
            "\n  {:<58} {:<16} max {} instances",
            a.id, a.name, a.max_instances
        ));
    }
    text.push_str("\n\nPROVIDERS");
    if inv.providers.is_empty() {
        text.push_str("\n  (none)");
    }
    for p in &inv.providers {
        text.push_str(&format!(
            "\n  {:<58} {:<16} {:<16} link {}",
            p.id,
            p.name,
            p.contract_id.to_string(),
            p.link_name
        ));
    }
    text
}
