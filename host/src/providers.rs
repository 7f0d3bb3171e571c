//! Supervision of capability providers: separate processes started from
//! signed provider archives, restarted with exponential backoff when they
//! crash, health-checked, and stopped (never left as zombies) with the host.
//!
//! Every control message the host sends a provider (link changes, health
//! checks, shutdown) is signed with the host's key; the provider accepts
//! them only from the host that started it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use trellis_claims::VerifyOptions;
use trellis_claims::invocation::issue_credential;
use trellis_claims::keys::{KeyKind, KeyPair, generate, parse_seed};
use trellis_claims::provider::{ArchiveLimits, ExtractedBinary, ProviderArchive, current_target};
use trellis_protocol::event::{
    HealthCheckFailedData, HealthCheckPassedData, ProviderFailedData, ProviderInstance,
    ProviderStart, ProviderStartedData, ProviderStoppedData,
};
use trellis_protocol::provider::{HealthCheck, HostData, NatsConnection};
use trellis_protocol::subject::ProviderSubjects;
use trellis_protocol::{
    ContractId, DecodeLimits, LinkDefinition, ProviderDescription, decode_json, encode_json,
};

use crate::error::{Error, ErrorKind, Result};
use crate::events::EventPublisher;
use crate::rpc::LatticeClient;
use crate::secrets::LatticeSecrets;
use trellis_protocol::Lattice;
use trellis_protocol::provider::{
    CREDENTIAL_OPERATION, CredentialRenewal, HEALTH_OPERATION, LINK_DEL_OPERATION,
    LINK_PUT_OPERATION, SHUTDOWN_OPERATION,
};

/// A change of a link, as told to its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkChange {
    /// The link was put (new or changed).
    Put,
    /// The link was deleted.
    Delete,
}

/// How the secrets of a link are sealed for the provider process it is
/// sent to.
#[derive(Clone, Copy)]
pub(crate) struct SealFor<'a> {
    /// The lattice's secrets key, which the link's secrets are sealed to.
    pub secrets: &'a LatticeSecrets,
    /// The provider process's public xkey (`X…`).
    pub recipient: &'a str,
}

/// Tells the link's provider on host `host_id` about a link change, signed
/// with the host's key. A put carries the link's secrets sealed again to
/// the process (`seal`); a deletion carries none. Failures are logged: a
/// secret this host cannot open keeps the link from being sent.
pub(crate) async fn notify_link(
    client: &LatticeClient,
    lattice: &Lattice,
    host_id: &str,
    link: &LinkDefinition,
    change: LinkChange,
    seal: SealFor<'_>,
) {
    let Ok(subjects) = lattice.provider(&link.provider_id, &link.link_name, host_id) else {
        return;
    };
    let (subject, operation, sent) = match change {
        LinkChange::Put => match seal.secrets.seal_for(link, seal.recipient) {
            Ok(sealed) => (subjects.link_put, LINK_PUT_OPERATION, sealed),
            Err(e) => {
                tracing::warn!(
                    provider = link.provider_id,
                    actor = link.actor_id,
                    "a link was not sent to its provider: {e}"
                );
                return;
            }
        },
        LinkChange::Delete => {
            let mut bare = link.clone();
            bare.secrets.clear();
            (subjects.link_del, LINK_DEL_OPERATION, bare)
        }
    };
    let body = match sent.encode() {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!("cannot encode a link: {e}");
            return;
        }
    };
    if let Err(e) = client
        .rpc()
        .tell(&link.provider_id, subject, operation, body)
        .await
    {
        tracing::warn!(
            "cannot tell provider {} about a link: {e}",
            link.provider_id
        );
    }
}

/// Asks a provider of this host for its health, signed with the host's
/// key, waiting up to `timeout`. An answer that does not decode is an
/// unhealthy report.
///
/// # Errors
///
/// When no answer comes: see [`trellis_lattice_client::RpcClient::ask`].
pub(crate) async fn ask_health(
    client: &LatticeClient,
    provider_id: &str,
    subject: &str,
    timeout: Duration,
) -> std::result::Result<HealthCheck, trellis_lattice_client::InvokeError> {
    let message = client
        .rpc()
        .ask(
            provider_id,
            subject.to_owned(),
            HEALTH_OPERATION,
            b"{}".to_vec(),
            timeout,
        )
        .await?;
    Ok(
        decode_json::<HealthCheck>(&message.payload, &DecodeLimits::default()).unwrap_or_else(
            |e| HealthCheck {
                healthy: false,
                message: format!("bad health answer: {e}"),
            },
        ),
    )
}

/// Uptime after which a provider's restart delay goes back to the first.
pub const STABLE_UPTIME: Duration = Duration::from_secs(60);

/// Longest health check answer awaited. Defaults to 2 s.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the host needs to start one provider process.
pub(crate) struct Launch {
    pub binary: PathBuf,
    /// Lowercase hex SHA-256 the binary must still have at each spawn.
    pub binary_sha256: String,
    pub description: ProviderDescription,
    pub subjects: ProviderSubjects,
    pub host_data: HostData,
    /// Public xkey (`X…`) of the process, whose seed is in `host_data`:
    /// link secrets are sealed to it.
    pub secrets_key: String,
}

/// Settings of the supervision loop.
#[derive(Clone)]
pub(crate) struct Supervision {
    pub events: EventPublisher,
    /// Signs the host's messages to the provider, and knows the links to
    /// send it when it becomes healthy.
    pub client: Arc<LatticeClient>,
    /// The lattice's secrets key, to seal link secrets again for the
    /// process.
    pub secrets: Arc<LatticeSecrets>,
    pub restart_delay: Duration,
    pub restart_max_delay: Duration,
    pub shutdown_timeout: Duration,
    pub health_interval: Duration,
    /// How long unanswered health checks mean a hung process.
    pub hung_after: Duration,
    /// The host's cluster key, which vouches for each provider process.
    pub cluster: Arc<KeyPair>,
    /// Lifetime of a provider process's credential.
    pub credential_ttl: Duration,
}

/// Why a provider process's run ended.
enum Ended {
    /// The process exited by itself.
    Exited(std::io::Result<std::process::ExitStatus>),
    /// It left its health checks unanswered too long and was killed.
    Hung,
    /// The host asked it to stop.
    Stopping,
}

/// A provider this host supervises.
pub struct RunningProvider {
    /// How it is described in the inventory.
    pub description: ProviderDescription,
    /// Public xkey (`X…`) of its processes: link secrets are sealed to it.
    pub(crate) secrets_key: String,
    stop_tx: watch::Sender<bool>,
    pid: Arc<Mutex<Option<u32>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RunningProvider {
    /// The process id of its current process, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid.lock().ok().and_then(|p| *p)
    }

    /// Asks the provider to shut down, kills it if it does not exit in
    /// time, and waits for the supervision loop to end.
    pub async fn stop(&self) {
        self.stop_tx.send_replace(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        self.stop_tx.send_replace(true);
    }
}

/// Reads and verifies a provider archive, a regular file under one of
/// `dirs`, and unpacks the binary for this host's target into `cache_dir`,
/// a directory private to this user.
///
/// # Errors
///
/// [`ErrorKind::BadRequest`] for a refused path (see
/// [`crate::artifacts`]), [`ErrorKind::Io`], [`ErrorKind::Config`] for a
/// cache directory of another user, [`ErrorKind::Claims`] (claims or
/// binary hashes do not verify), [`ErrorKind::NotFound`] (no binary for
/// this target).
pub(crate) async fn unpack(
    path: &str,
    dirs: &[PathBuf],
    trust: &VerifyOptions,
    cache_dir: &Path,
) -> Result<(
    PathBuf,
    trellis_claims::Claims<trellis_claims::provider::ProviderMetadata>,
)> {
    crate::artifacts::private_dir(cache_dir)?;
    // Stream this host's binary into a private file, hashing it on the way:
    // the archive is never held in memory, so a large provider does not
    // leave the host's heap grown for good.
    let partial = cache_dir.join(format!("unpacking-{}", uuid::Uuid::new_v4()));
    let target = current_target();
    let extracted = {
        let (path, partial, target) = (path.to_owned(), partial.clone(), target.clone());
        let dirs = dirs.to_vec();
        tokio::task::spawn_blocking(move || {
            let io = |e: std::io::Error| Error::with_source(ErrorKind::Io, e);
            let archive = std::io::BufReader::new(crate::artifacts::open(&path, &dirs)?);
            let out = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(io)?);
            Ok::<_, Error>(ProviderArchive::extract(
                archive,
                &target,
                out,
                &ArchiveLimits::default(),
            )?)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))
        .and_then(|r| r)
    };
    let installed = match extracted {
        Ok(extracted) => install(path, &extracted, trust, cache_dir, &partial).await,
        Err(e) => Err(e),
    };
    if installed.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    installed
}

/// Verifies what [`unpack`] extracted into `partial` and moves it to its
/// place in `cache_dir`, named by provider id and binary hash.
async fn install(
    path: &str,
    extracted: &ExtractedBinary,
    trust: &VerifyOptions,
    cache_dir: &Path,
    partial: &Path,
) -> Result<(
    PathBuf,
    trellis_claims::Claims<trellis_claims::provider::ProviderMetadata>,
)> {
    let Some(hash) = extracted.hash.as_deref() else {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("{path} has no binary for {}", extracted.target),
        ));
    };
    let claims = extracted.verify(trust)?;
    let file = cache_dir.join(format!("{}-{}", claims.sub, &hash[..hash.len().min(16)]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tokio::fs::set_permissions(partial, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    }
    tokio::fs::rename(partial, &file)
        .await
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    Ok((file, claims))
}

/// The host data for one provider process: a fresh signing key for the
/// instance, vouched for by the host's cluster key, and a fresh xkey that
/// the secrets of `links` are sealed to. Returns it with the xkey's public
/// half. A link whose secrets this host cannot open is left out (and
/// logged).
#[allow(clippy::too_many_arguments)]
pub(crate) fn host_data(
    secrets: &LatticeSecrets,
    lattice: &str,
    host_id: &str,
    provider_id: &str,
    link_name: &str,
    nats: NatsConnection,
    invocation_issuers: Vec<String>,
    links: Vec<LinkDefinition>,
    config: BTreeMap<String, String>,
    log_level: String,
) -> Result<(HostData, String)> {
    let instance = generate(KeyKind::Provider);
    // Issued afresh before every spawn (see `run`).
    let credential = String::new();
    let xkey = trellis_claims::secrets::generate_xkey();
    let secrets_key = xkey.public_key();
    let links = links
        .iter()
        .filter_map(|link| match secrets.seal_for(link, &secrets_key) {
            Ok(sealed) => Some(sealed),
            Err(e) => {
                tracing::warn!(
                    provider = provider_id,
                    actor = link.actor_id,
                    "a link was not given to its provider: {e}"
                );
                None
            }
        })
        .collect();
    let host_data = HostData {
        lattice: lattice.to_owned(),
        host_id: host_id.to_owned(),
        provider_id: provider_id.to_owned(),
        provider_seed: instance
            .seed()
            .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?,
        secrets_seed: xkey
            .seed()
            .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?,
        credential,
        link_name: link_name.to_owned(),
        nats,
        invocation_issuers,
        links,
        config,
        log_level,
    };
    Ok((host_data, secrets_key))
}

/// Starts supervising `launch`: spawns the process and restarts it when it
/// dies, until stopped.
pub(crate) fn supervise(launch: Launch, supervision: Supervision) -> Arc<RunningProvider> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let pid = Arc::new(Mutex::new(None));
    let description = launch.description.clone();
    let secrets_key = launch.secrets_key.clone();
    let task = tokio::spawn(run(launch, supervision, stop_rx, pid.clone()));
    Arc::new(RunningProvider {
        description,
        secrets_key,
        stop_tx,
        pid,
        task: Mutex::new(Some(task)),
    })
}

/// Spawns the provider after checking that its binary still has the hash
/// it had when it was verified.
async fn checked_spawn(launch: &Launch) -> std::io::Result<Child> {
    let hash = crate::artifacts::sha256_file(&launch.binary)
        .await
        .map_err(std::io::Error::other)?;
    if hash != launch.binary_sha256 {
        return Err(std::io::Error::other(format!(
            "the binary {} changed since it was verified; not starting it",
            launch.binary.display()
        )));
    }
    spawn(launch).await
}

async fn spawn(launch: &Launch) -> std::io::Result<Child> {
    let mut child = Command::new(&launch.binary)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // A process group of its own: a terminal's Ctrl-C reaches only the
        // host, which then stops its providers in order (shutdown request,
        // then kill) instead of racing them.
        .process_group(0)
        .spawn()?;
    let body = launch.host_data.encode().map_err(std::io::Error::other)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body).await?;
        stdin.shutdown().await?;
    }
    let id = launch.description.id.clone();
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_output(stdout, id.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_output(stderr, id));
    }
    Ok(child)
}

/// Forwards a provider's output to the host log, line by line, at most
/// 4,096 characters each, with control characters (ANSI escapes included)
/// escaped and everything else, quotes included, left as it is.
async fn forward_output(stream: impl tokio::io::AsyncRead + Unpin, provider: String) {
    let mut lines = tokio::io::BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = plain_line(&line);
        tracing::info!(provider, "{line}");
    }
}

/// `line` cut to 4,096 characters, with control characters escaped.
fn plain_line(line: &str) -> String {
    let mut plain = String::with_capacity(line.len().min(4096));
    for c in line.chars().take(4096) {
        if c.is_control() {
            plain.extend(c.escape_default());
        } else {
            plain.push(c);
        }
    }
    plain
}

async fn run(
    mut launch: Launch,
    s: Supervision,
    mut stop_rx: watch::Receiver<bool>,
    pid: Arc<Mutex<Option<u32>>>,
) {
    let d = launch.description.clone();
    let mut delay = s.restart_delay;
    let instance_key = parse_seed(&launch.host_data.provider_seed, KeyKind::Provider)
        .map(|k| k.public_key())
        .unwrap_or_default();
    // The health checks report a hung process here; one report at most
    // waits, and a report about an earlier process is dropped at spawn.
    let (hung_tx, mut hung_rx) = tokio::sync::mpsc::channel(1);
    let health = tokio::spawn(health_checks(
        launch.subjects.health.clone(),
        d.clone(),
        s.clone(),
        stop_rx.clone(),
        hung_tx,
    ));
    let mut first = true;
    loop {
        // A new credential for every process, valid for the configured
        // lifetime; `renew_credentials` replaces it before it expires.
        match issue_credential(
            &s.cluster,
            &instance_key,
            &launch.host_data.lattice,
            s.credential_ttl,
        ) {
            Ok(credential) => launch.host_data.credential = credential,
            Err(e) => tracing::error!(provider = d.id, "cannot issue a credential: {e}"),
        }
        let mut child = match checked_spawn(&launch).await {
            Ok(child) => child,
            Err(e) => {
                s.events
                    .publish(ProviderFailedData {
                        provider: ProviderInstance::from(&d),
                        error: e.to_string(),
                        restart_in_ms: None,
                    })
                    .await;
                if wait_or_stop(&mut stop_rx, delay).await {
                    break;
                }
                delay = (delay * 2).min(s.restart_max_delay);
                continue;
            }
        };
        if let Ok(mut p) = pid.lock() {
            *p = child.id();
        }
        while hung_rx.try_recv().is_ok() {}
        let started = Instant::now();
        let start = if first {
            ProviderStart::Started
        } else {
            ProviderStart::Restarted
        };
        s.events
            .publish(ProviderStartedData {
                provider: ProviderInstance::from(&d),
                pid: child.id(),
                start,
            })
            .await;
        first = false;
        let syncing = tokio::spawn(send_links_when_ready(
            launch.subjects.health.clone(),
            launch.host_data.host_id.clone(),
            launch.secrets_key.clone(),
            d.clone(),
            s.clone(),
        ));
        let renewing = tokio::spawn(renew_credentials(
            launch.subjects.credential.clone(),
            instance_key.clone(),
            launch.host_data.lattice.clone(),
            d.id.clone(),
            s.clone(),
        ));
        let outcome = tokio::select! {
            status = child.wait() => Ended::Exited(status),
            Some(()) = hung_rx.recv() => Ended::Hung,
            _ = stop_rx.changed() => Ended::Stopping,
        };
        syncing.abort();
        renewing.abort();
        let error = match outcome {
            Ended::Exited(status) => format!(
                "exited: {}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string())
            ),
            Ended::Hung => {
                // SIGKILL reaches a stopped or wedged process too.
                let _ = child.start_kill();
                let _ = tokio::time::timeout(s.shutdown_timeout, child.wait()).await;
                format!(
                    "hung: no answer to health checks for {} ms; killed",
                    s.hung_after.as_millis()
                )
            }
            Ended::Stopping => {
                shut_down(&d.id, &launch.subjects.shutdown, &mut child, &s).await;
                if let Ok(mut p) = pid.lock() {
                    *p = None;
                }
                break;
            }
        };
        if let Ok(mut p) = pid.lock() {
            *p = None;
        }
        if *stop_rx.borrow() {
            break;
        }
        tracing::warn!(provider = d.id, "provider {error}; restarting in {delay:?}");
        s.events
            .publish(ProviderFailedData {
                provider: ProviderInstance::from(&d),
                error,
                restart_in_ms: Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            })
            .await;
        if started.elapsed() >= STABLE_UPTIME {
            delay = s.restart_delay;
        }
        if wait_or_stop(&mut stop_rx, delay).await {
            break;
        }
        delay = (delay * 2).min(s.restart_max_delay);
    }
    health.abort();
    s.events
        .publish(ProviderStoppedData {
            provider: ProviderInstance::from(&d),
        })
        .await;
}

/// Sleeps `delay`; true if asked to stop meanwhile.
async fn wait_or_stop(stop_rx: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    if *stop_rx.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => *stop_rx.borrow(),
        _ = stop_rx.changed() => true,
    }
}

/// Asks the process to exit, then kills it if it has not within the
/// shutdown timeout, and always reaps it.
async fn shut_down(provider_id: &str, subject: &str, child: &mut Child, s: &Supervision) {
    let asked = s
        .client
        .rpc()
        .ask(
            provider_id,
            subject.to_owned(),
            SHUTDOWN_OPERATION,
            b"{}".to_vec(),
            s.shutdown_timeout,
        )
        .await;
    if asked.is_err() {
        tracing::warn!(subject, "provider did not acknowledge shutdown");
    }
    if tokio::time::timeout(s.shutdown_timeout, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("provider did not exit in time; killing it");
        let _ = child.kill().await;
    }
}

/// How often a provider that has just started is asked whether it answers
/// yet, before its links are sent. Defaults to 50 ms.
pub const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a provider that has just started may take to answer before
/// its host stops waiting to send it its links. Defaults to 60 s.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the provider for its health every [`READY_POLL_INTERVAL`] until
/// it answers; false if it has not by `timeout`.
pub(crate) async fn wait_until_answering(
    client: &LatticeClient,
    provider_id: &str,
    health_subject: &str,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while ask_health(client, provider_id, health_subject, READY_POLL_INTERVAL * 4)
        .await
        .is_err()
    {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
    true
}

/// Waits until a provider process that has just started answers a health
/// check, then sends it every current link naming it: links put while it
/// was starting, or since its previous process died, are not missed.
async fn send_links_when_ready(
    health_subject: String,
    host_id: String,
    secrets_key: String,
    d: ProviderDescription,
    s: Supervision,
) {
    if !wait_until_answering(&s.client, &d.id, &health_subject, READY_TIMEOUT).await {
        tracing::warn!(
            provider = d.id,
            "provider did not answer; its links were not sent"
        );
        return;
    }
    let lattice = s.events.lattice();
    for link in s.client.links() {
        if link.provider_id == d.id && link.link_name == d.link_name {
            let seal = SealFor {
                secrets: &s.secrets,
                recipient: &secrets_key,
            };
            notify_link(&s.client, lattice, &host_id, &link, LinkChange::Put, seal).await;
        }
    }
}

/// Sends the provider process a new credential at every half of the
/// credential lifetime, signed with the host's key, until aborted with the
/// process. Failures are logged; the next round tries again.
async fn renew_credentials(
    subject: String,
    instance_key: String,
    lattice: String,
    provider_id: String,
    s: Supervision,
) {
    let half_life = (s.credential_ttl / 2).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(half_life).await;
        let renewal = issue_credential(&s.cluster, &instance_key, &lattice, s.credential_ttl)
            .map(|credential| CredentialRenewal { credential })
            .map_err(|e| e.to_string())
            .and_then(|r| encode_json(&r).map_err(|e| e.to_string()));
        let sent = match renewal {
            Ok(body) => s
                .client
                .rpc()
                .tell(&provider_id, subject.clone(), CREDENTIAL_OPERATION, body)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!(
                provider = provider_id,
                "cannot renew the provider credential: {e}"
            );
        }
    }
}

/// Checks the provider's health every interval and publishes each change.
async fn health_checks(
    health_subject: String,
    d: ProviderDescription,
    s: Supervision,
    mut stop_rx: watch::Receiver<bool>,
    hung: tokio::sync::mpsc::Sender<()>,
) {
    let mut last: Option<bool> = None;
    // Since when no health check has been answered, if one is pending.
    let mut silent_since: Option<Instant> = None;
    let mut ticker = tokio::time::interval(s.health_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop_rx.changed() => return,
        }
        let status = match ask_health(&s.client, &d.id, &health_subject, HEALTH_CHECK_TIMEOUT).await
        {
            Ok(status) => {
                silent_since = None;
                status
            }
            Err(e) => {
                let since = *silent_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= s.hung_after {
                    // The supervision loop kills and restarts it; the
                    // count starts again for the next process.
                    let _ = hung.try_send(());
                    silent_since = None;
                }
                HealthCheck {
                    healthy: false,
                    message: format!("no answer: {e}"),
                }
            }
        };
        if last != Some(status.healthy) {
            let provider = ProviderInstance::from(&d);
            let message = status.message;
            if status.healthy {
                s.events
                    .publish(HealthCheckPassedData { provider, message })
                    .await;
            } else {
                s.events
                    .publish(HealthCheckFailedData { provider, message })
                    .await;
            }
            last = Some(status.healthy);
        }
    }
}

/// The contract id given in a development-mode start request.
pub(crate) fn dev_contract(config: &BTreeMap<String, String>) -> Result<ContractId> {
    let raw = config.get("contract_id").ok_or_else(|| {
        Error::new(
            ErrorKind::BadRequest,
            "a provider binary started in development mode needs config.contract_id",
        )
    })?;
    ContractId::new(raw.clone()).map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::plain_line;

    #[test]
    fn provider_lines_keep_quotes_and_lose_control_characters() {
        assert_eq!(
            plain_line("INFO link put actor=\"M1\" \u{1b}[0m"),
            "INFO link put actor=\"M1\" \\u{1b}[0m"
        );
        assert_eq!(plain_line(&"x".repeat(5000)).len(), 4096);
    }
}
