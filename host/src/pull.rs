//! Pulling artifacts that are not files on the host: from the lattice's
//! own artifact store, or from an OCI registry (`docs/artifacts.md`).
//!
//! A pull resolves the reference to the digest the store records, and is
//! done once per digest: the artifact is kept in a content-addressed cache
//! on disk, private to the host (`{cache}/sha256/{hex}`, mode 0700 for the
//! directory), and concurrent pulls of one digest wait for the first. It is
//! bounded in size (the caller's limit, checked before and while reading)
//! and in time ([`crate::HostConfig::pull_timeout`]), and its bytes are
//! checked against the recorded digest and any digest the reference pins
//! before they are written. Claims and archive signatures are checked
//! afterwards exactly as for a file: a digest never stands in for a
//! signature.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use trellis_lattice_client::artifacts::{self, ArtifactErrorKind};
use trellis_lattice_client::oci::{ArtifactKind, Registry, RegistrySettings};
use trellis_protocol::artifact::{LatticeRef, OciRef};

use crate::error::{Error, ErrorKind, Result};

/// Pulls artifacts into the host's cache.
pub(crate) struct Puller {
    nats: async_nats::Client,
    registry: Registry,
    lattice: String,
    cache_dir: PathBuf,
    timeout: Duration,
    /// One lock per digest being pulled, so that one pull serves all.
    pulls: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Artifacts pulled from the store since the host started, a count.
    pulled: AtomicU64,
}

impl Puller {
    /// A puller for `lattice`'s store over `nats`, caching under
    /// `cache_dir`, each pull bounded by `timeout`.
    pub(crate) fn new(
        nats: async_nats::Client,
        lattice: &str,
        cache_dir: PathBuf,
        timeout: Duration,
        registries: RegistrySettings,
    ) -> Self {
        Self {
            nats,
            registry: Registry::new(registries),
            lattice: lattice.to_owned(),
            cache_dir,
            timeout,
            pulls: Mutex::new(HashMap::new()),
            pulled: AtomicU64::new(0),
        }
    }

    /// Artifacts pulled from the store since the host started (cache hits
    /// not counted).
    pub(crate) fn pulled(&self) -> u64 {
        self.pulled.load(Ordering::Relaxed)
    }

    /// The directory pulled artifacts are kept in.
    pub(crate) fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The cached file holding `reference`'s artifact, pulled from the
    /// lattice's store if this host does not have its digest yet; at most
    /// `max_bytes`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an artifact the store does not have,
    /// [`ErrorKind::Timeout`] when the pull takes longer than the pull
    /// timeout, [`ErrorKind::Artifact`] (with
    /// [`Error::artifact_kind`]) for one over `max_bytes`, a digest
    /// mismatch or a NATS failure, [`ErrorKind::Io`] when the cache cannot
    /// be written.
    pub(crate) async fn fetch(&self, reference: &LatticeRef, max_bytes: usize) -> Result<PathBuf> {
        let object = reference.object_name();
        let store = artifacts::open(&self.nats, &self.lattice, false, self.timeout)
            .await
            .map_err(from_artifact)?;
        let info = artifacts::info(&store, &object, self.timeout)
            .await
            .map_err(from_artifact)?;
        if let Some(pinned) = &reference.digest
            && *pinned != info.digest
        {
            return Err(from_artifact(artifacts::ArtifactError::with_source(
                ArtifactErrorKind::DigestMismatch,
                format!("{object} is {}, not {pinned}", info.digest),
            )));
        }
        let path = self.path_of(&info.digest)?;
        let lock = self.lock_for(&info.digest).await;
        let _pulling = lock.lock().await;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(path);
        }
        let bytes = artifacts::read(&store, &info, None, max_bytes, self.timeout, |_| {})
            .await
            .map_err(from_artifact)?;
        self.write(&path, &bytes).await?;
        self.pulled.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            object,
            digest = info.digest,
            bytes = bytes.len(),
            "pulled an artifact"
        );
        drop(_pulling);
        self.pulls.lock().await.remove(&info.digest);
        Ok(path)
    }

    /// The cached file holding the artifact at the OCI `reference`, which
    /// must be of `kind`, pulled from its registry: at most `max_bytes`.
    /// The manifest is read every time (a tag may move); the layer only
    /// when this host does not hold its digest.
    ///
    /// # Errors
    ///
    /// As [`Puller::fetch`]; [`ErrorKind::Artifact`] also for an artifact
    /// of another kind, a manifest of the wrong media type, a registry
    /// that refuses the credentials, or any registry failure.
    pub(crate) async fn fetch_oci(
        &self,
        reference: &OciRef,
        kind: ArtifactKind,
        max_bytes: usize,
    ) -> Result<PathBuf> {
        let (found, layer, bytes) = self
            .registry
            .pull(reference, max_bytes, self.timeout, |_| {})
            .await
            .map_err(from_artifact)?;
        if found != kind {
            return Err(from_artifact(artifacts::ArtifactError::with_source(
                ArtifactErrorKind::MediaType,
                format!("{} is a {found}, not a {kind}", reference.whole()),
            )));
        }
        let path = self.path_of(&layer.digest)?;
        let lock = self.lock_for(&layer.digest).await;
        let _writing = lock.lock().await;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            self.write(&path, &bytes).await?;
            self.pulled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(reference = %reference.whole(), digest = layer.digest, "pulled an artifact");
        }
        Ok(path)
    }

    /// The lock that the pulls and writes of `digest` share.
    async fn lock_for(&self, digest: &str) -> Arc<Mutex<()>> {
        self.pulls
            .lock()
            .await
            .entry(digest.to_owned())
            .or_default()
            .clone()
    }

    /// Where the artifact with `digest` (`sha256:…`) is cached.
    fn path_of(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| Error::new(ErrorKind::Artifact, format!("not a digest: {digest}")))?;
        Ok(self.cache_dir.join("sha256").join(hex))
    }

    /// Writes `bytes` to `path` through a temporary file in the same
    /// directory, so that the cache never holds a partial artifact.
    async fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let io = |e: std::io::Error| Error::with_source(ErrorKind::Io, e);
        let dir = self.cache_dir.join("sha256");
        crate::artifacts::private_dir(&self.cache_dir)?;
        crate::artifacts::private_dir(&dir)?;
        let partial = dir.join(format!("partial-{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&partial, bytes).await.map_err(io)?;
        if let Err(e) = tokio::fs::rename(&partial, path).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(io(e));
        }
        Ok(())
    }
}

/// The host error for an artifact store failure.
fn from_artifact(e: artifacts::ArtifactError) -> Error {
    let kind = match e.kind() {
        ArtifactErrorKind::NotFound => ErrorKind::NotFound,
        ArtifactErrorKind::Timeout => ErrorKind::Timeout,
        _ => ErrorKind::Artifact,
    };
    Error::with_source(kind, e)
}
