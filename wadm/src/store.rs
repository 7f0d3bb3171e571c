//! Where wadm keeps its state: the JetStream key-value bucket
//! `TRELLIS_WADM_{lattice}` (`docs/protocol.md` §12.3).
//!
//! | key | value |
//! |---|---|
//! | `app.{name}` | [`AppRecord`]: the stored versions and the deployed one |
//! | `status.{name}` | the application's last [`AppStatus`] |
//! | `lease` | the id of the wadm that reconciles ([`Lease`]) |
//!
//! Every write of an application record is a compare-and-set on the key's
//! revision, so wadm processes that serve the API at the same time never
//! lose one another's writes.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use trellis_protocol::wadm::AppStatus;

use crate::error::{Error, ErrorKind};
use crate::manifest::Manifest;

/// Most versions kept per application, a count; the oldest version that
/// is not deployed goes first. Defaults to 32.
pub const MAX_VERSIONS: usize = 32;
/// Most applications one lattice may hold, a count. Defaults to 1,000.
pub const MAX_APPS: usize = 1_000;
/// Most attempts of one compare-and-set before giving up, a count.
const CAS_ATTEMPTS: usize = 8;

/// One stored version of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVersion {
    /// Its version.
    pub version: String,
    /// Its manifest (secrets sealed).
    pub manifest: Manifest,
}

/// Everything stored about one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Its name.
    pub name: String,
    /// Its versions, oldest first; at most [`MAX_VERSIONS`].
    pub versions: Vec<StoredVersion>,
    /// The deployed version, if any.
    #[serde(default)]
    pub deployed: Option<String>,
}

impl AppRecord {
    /// The latest stored version.
    pub fn latest(&self) -> Option<&StoredVersion> {
        self.versions.last()
    }

    /// The stored version `version`.
    pub fn version(&self, version: &str) -> Option<&StoredVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The deployed manifest, if a version is deployed.
    pub fn deployed_manifest(&self) -> Option<&Manifest> {
        self.deployed
            .as_deref()
            .and_then(|v| self.version(v))
            .map(|v| &v.manifest)
    }
}

/// The bucket, opened.
#[derive(Clone)]
pub struct Store {
    kv: kv::Store,
    timeout: Duration,
}

fn app_key(name: &str) -> String {
    format!("app.{name}")
}

fn status_key(name: &str) -> String {
    format!("status.{name}")
}

fn timeout_error(name: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("writing {name}: no answer from JetStream"),
    )
}

fn nats_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with_source(ErrorKind::Nats, format!("{what}: {e}"), e)
}

impl Store {
    /// Opens (creating it if missing) the bucket of `lattice`, waiting up
    /// to `timeout` for NATS on every operation.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Nats`] if JetStream is unavailable.
    pub async fn open(
        nats: &async_nats::Client,
        lattice: &str,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let kv = trellis_lattice_client::kv::open_or_create(
            nats,
            &format!("TRELLIS_WADM_{lattice}"),
            trellis_lattice_client::kv::BucketSettings::default(),
            timeout,
        )
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, e.to_string()))?;
        Ok(Self { kv, timeout })
    }

    /// The key-value store itself (for watching).
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    async fn timed<T, E: std::error::Error + Send + Sync + 'static>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(nats_error(what, e)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{what}: no answer from JetStream within {:?}", self.timeout),
            )),
        }
    }

    /// The record of `name` with its revision, if stored.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Nats`] or [`ErrorKind::Timeout`] when the bucket
    /// cannot be read, [`ErrorKind::Internal`] for a record that does not
    /// decode.
    pub async fn get(&self, name: &str) -> Result<Option<(AppRecord, u64)>, Error> {
        let entry = self
            .timed("reading an application", self.kv.entry(app_key(name)))
            .await?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let record: AppRecord = serde_json::from_slice(&entry.value).map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("stored record of {name} does not decode: {e}"),
                    )
                })?;
                Ok(Some((record, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Every stored application. Fails as a whole rather than return part
    /// of the list: the reconciler stops what no listed application
    /// declares, so a partial list would stop running applications.
    ///
    /// # Errors
    ///
    /// As [`Store::get`], for the listing or any record.
    pub async fn list(&self) -> Result<Vec<AppRecord>, Error> {
        let keys = async {
            let mut keys = self.kv.keys().await.map_err(std::io::Error::other)?;
            let mut out = Vec::new();
            while let Some(key) = keys.next().await {
                out.push(key.map_err(std::io::Error::other)?);
                if out.len() > MAX_APPS * 2 + 1 {
                    break;
                }
            }
            Ok::<_, std::io::Error>(out)
        };
        let keys = self.timed("listing applications", keys).await?;
        let mut records = Vec::new();
        for key in keys {
            let Some(name) = key.strip_prefix("app.") else {
                continue;
            };
            if let Some((record, _)) = self.get(name).await? {
                records.push(record);
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Reads `name`, lets `change` edit (or create) its record, and writes
    /// it back if the key did not change meanwhile, retrying otherwise.
    /// `change` returns the value to answer with; a record with no
    /// versions left is deleted.
    async fn modify<T>(
        &self,
        name: &str,
        mut change: impl FnMut(Option<AppRecord>) -> Result<(AppRecord, T), Error>,
    ) -> Result<T, Error> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self.get(name).await?;
            let revision = current.as_ref().map(|(_, r)| *r);
            let (record, answer) = change(current.map(|(r, _)| r))?;
            let key = app_key(name);
            if record.versions.is_empty() {
                if revision.is_some() {
                    self.timed("deleting an application", self.kv.delete(&key))
                        .await?;
                    // Its status goes with it, so that a new application
                    // of the same name starts with none.
                    self.timed("deleting a status", self.kv.delete(status_key(name)))
                        .await?;
                }
                return Ok(answer);
            }
            let value = serde_json::to_vec(&record)
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
            // Only a lost race is retried; any other failure is reported.
            let lost = match revision {
                Some(r) => {
                    match tokio::time::timeout(self.timeout, self.kv.update(&key, value.into(), r))
                        .await
                    {
                        Ok(Ok(_)) => return Ok(answer),
                        Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                            e.to_string()
                        }
                        Ok(Err(e)) => return Err(nats_error("writing an application", e)),
                        Err(_) => return Err(timeout_error(name)),
                    }
                }
                None => {
                    match tokio::time::timeout(self.timeout, self.kv.create(&key, value.into()))
                        .await
                    {
                        Ok(Ok(_)) => return Ok(answer),
                        Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                            e.to_string()
                        }
                        Ok(Err(e)) => return Err(nats_error("writing an application", e)),
                        Err(_) => return Err(timeout_error(name)),
                    }
                }
            };
            tracing::debug!("compare-and-set of {name} lost: {lost}");
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!("{name} changed {CAS_ATTEMPTS} times while being written; try again"),
        ))
    }

    /// Stores `manifest` as a new version. Putting a version that is
    /// already stored with the same content changes nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conflict`] when the version is stored with other
    /// content, or the errors of reading and writing.
    pub async fn put(&self, manifest: &Manifest) -> Result<usize, Error> {
        let name = manifest.name().to_owned();
        let version = manifest.version().to_owned();
        let apps = if self.get(&name).await?.is_none() {
            self.count_apps().await?
        } else {
            0
        };
        if apps >= MAX_APPS {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!("the lattice holds {apps} applications; at most {MAX_APPS} are accepted"),
            ));
        }
        self.modify(&name, |current| {
            let mut record = current.unwrap_or_else(|| AppRecord {
                name: name.clone(),
                versions: Vec::new(),
                deployed: None,
            });
            if let Some(existing) = record.version(&version) {
                if !same_but_seals(&existing.manifest, manifest) {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "{name} {version} is already stored with other content; give the new manifest a new version"
                        ),
                    ));
                }
                let total = record.versions.len();
                return Ok((record, total));
            }
            record.versions.push(StoredVersion {
                version: version.clone(),
                manifest: manifest.clone(),
            });
            while record.versions.len() > MAX_VERSIONS {
                let deployed = record.deployed.clone();
                match record
                    .versions
                    .iter()
                    .position(|v| Some(&v.version) != deployed.as_ref())
                {
                    Some(i) => {
                        record.versions.remove(i);
                    }
                    None => break,
                }
            }
            let total = record.versions.len();
            Ok((record, total))
        })
        .await
    }

    async fn count_apps(&self) -> Result<usize, Error> {
        let keys = async {
            let mut keys = self.kv.keys().await.map_err(std::io::Error::other)?;
            let mut n = 0;
            while let Some(key) = keys.next().await {
                if key.map_err(std::io::Error::other)?.starts_with("app.") {
                    n += 1;
                }
            }
            Ok::<_, std::io::Error>(n)
        };
        self.timed("counting applications", keys).await
    }

    /// Marks `version` of `name` deployed (the latest when `None`), or with
    /// `deploy == false` marks nothing deployed. Returns the record.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an unknown application or version, or
    /// the errors of reading and writing.
    pub async fn set_deployed(
        &self,
        name: &str,
        version: Option<&str>,
        deploy: bool,
    ) -> Result<AppRecord, Error> {
        self.modify(name, |current| {
            let mut record = current
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no application {name}")))?;
            if deploy {
                let chosen = match version {
                    Some(v) => record.version(v).map(|s| s.version.clone()),
                    None => record.latest().map(|s| s.version.clone()),
                }
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("{name} has no version {}", version.unwrap_or("at all")),
                    )
                })?;
                record.deployed = Some(chosen);
            } else {
                record.deployed = None;
            }
            Ok((record.clone(), record))
        })
        .await
    }

    /// Deletes one version of `name`, or every version when `None`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Conflict`] when the version (or, for all, any version)
    /// is deployed, [`ErrorKind::NotFound`] when there is nothing to
    /// delete, or the errors of reading and writing.
    pub async fn delete(&self, name: &str, version: Option<&str>) -> Result<(), Error> {
        self.modify(name, |current| {
            let mut record = current
                .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no application {name}")))?;
            match version {
                None => {
                    if record.deployed.is_some() {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!("{name} is deployed; undeploy it first"),
                        ));
                    }
                    record.versions.clear();
                }
                Some(v) => {
                    if record.deployed.as_deref() == Some(v) {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!("{name} {v} is deployed; undeploy it first"),
                        ));
                    }
                    let before = record.versions.len();
                    record.versions.retain(|s| s.version != v);
                    if record.versions.len() == before {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!("{name} has no version {v}"),
                        ));
                    }
                }
            }
            Ok((record, ()))
        })
        .await
    }

    /// The last status the reconciler stored for `name`.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    pub async fn status(&self, name: &str) -> Result<Option<AppStatus>, Error> {
        let value = self
            .timed("reading a status", self.kv.get(status_key(name)))
            .await?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Stores `status`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Nats`] or [`ErrorKind::Timeout`].
    pub async fn put_status(&self, status: &AppStatus) -> Result<(), Error> {
        let value = serde_json::to_vec(status)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        self.timed(
            "writing a status",
            self.kv.put(status_key(&status.name), value.into()),
        )
        .await
        .map(drop)
    }
}

/// Whether two manifests are the same once their sealed secrets are left
/// out: sealing the same value twice gives different boxes.
fn same_but_seals(a: &Manifest, b: &Manifest) -> bool {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("sealed");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(mut a), Ok(mut b)) => {
            strip(&mut a);
            strip(&mut b);
            a == b
        }
        _ => false,
    }
}

/// Leadership among the wadm processes of a lattice: the one holding the
/// `lease` key reconciles; the others serve the API and wait.
///
/// The holder renews the key (a compare-and-set on its revision) every
/// third of `ttl`, from a task of its own, so a long reconciliation pass
/// never delays a renewal. Another process takes it over (again by
/// compare-and-set) only once it has seen the key's revision stay the same
/// for a whole `ttl`, measured on its own monotonic clock, so clocks never
/// need to agree. A holder that cannot renew stops reconciling two thirds
/// of `ttl` after its last renewal, before anyone may take over
/// (`docs/adr/0011-wadm.md`).
pub struct Lease {
    store: Store,
    id: String,
    ttl: Duration,
    seen_revision: Option<u64>,
    seen_at: Instant,
    held_revision: Option<u64>,
    leader_until: LeaderUntil,
}

/// Until when this process may act as the leader; `None` while it is not.
pub type LeaderUntil = std::sync::Arc<std::sync::Mutex<Option<Instant>>>;

/// Whether `until` says this process leads now.
pub fn is_leader(until: &LeaderUntil) -> bool {
    until
        .lock()
        .map(|u| u.is_some_and(|at| Instant::now() < at))
        .unwrap_or(false)
}

impl Lease {
    /// A lease contender named `id` (unique per process), publishing its
    /// leadership in `leader_until`.
    pub fn new(store: Store, id: String, ttl: Duration, leader_until: LeaderUntil) -> Self {
        Self {
            store,
            id,
            ttl,
            seen_revision: None,
            seen_at: Instant::now(),
            held_revision: None,
            leader_until,
        }
    }

    fn set_leader(&mut self, revision: Option<u64>) {
        self.held_revision = revision;
        let until = revision.map(|_| Instant::now() + self.ttl * 2 / 3);
        if let Ok(mut guard) = self.leader_until.lock() {
            *guard = until;
        }
    }

    /// Renews or contends for the lease every third of the ttl until
    /// `stop`, then gives it up.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.tick().await {
                        tracing::debug!("lease: {e}");
                    }
                }
            }
        }
        self.release().await;
    }

    async fn tick(&mut self) -> Result<(), Error> {
        let kv = self.store.kv.clone();
        let entry = self
            .store
            .timed("reading the lease", kv.entry("lease"))
            .await?;
        let me = self.id.clone();
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let holder = String::from_utf8_lossy(&entry.value).into_owned();
                if holder == me {
                    let renewed = self
                        .store
                        .timed(
                            "renewing the lease",
                            kv.update("lease", me.into_bytes().into(), entry.revision),
                        )
                        .await;
                    match renewed {
                        Ok(revision) => self.set_leader(Some(revision)),
                        Err(e) => {
                            self.set_leader(None);
                            return Err(e);
                        }
                    }
                    return Ok(());
                }
                self.set_leader(None);
                if self.seen_revision != Some(entry.revision) {
                    self.seen_revision = Some(entry.revision);
                    self.seen_at = Instant::now();
                    return Ok(());
                }
                if self.seen_at.elapsed() >= self.ttl {
                    let revision = self
                        .store
                        .timed(
                            "taking over the lease",
                            kv.update("lease", me.into_bytes().into(), entry.revision),
                        )
                        .await?;
                    tracing::info!("took over the wadm lease from {holder}");
                    self.set_leader(Some(revision));
                }
            }
            _ => {
                let revision = self
                    .store
                    .timed(
                        "taking the lease",
                        kv.create("lease", me.into_bytes().into()),
                    )
                    .await?;
                self.set_leader(Some(revision));
            }
        }
        Ok(())
    }

    /// Gives the lease up (on a clean stop), so that another process takes
    /// over at once; only if this process still holds it.
    async fn release(&mut self) {
        if let Some(revision) = self.held_revision.take() {
            self.set_leader(None);
            let _ = self
                .store
                .timed(
                    "releasing the lease",
                    self.store
                        .kv
                        .delete_expect_revision("lease", Some(revision)),
                )
                .await;
        }
    }
}
