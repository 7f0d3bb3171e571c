//! The lattice's artifact store: actor modules and provider archives kept
//! in a JetStream object store, so that any host that reaches NATS (one
//! behind a leaf node with no route to a registry, say) can pull them
//! (`docs/protocol.md` §6.5).
//!
//! One object store per lattice, `TRELLIS_ARTIFACTS_{lattice}`; an
//! artifact `name` at `version` is the object `{name}:{version}`
//! ([`trellis_protocol::artifact::LatticeRef::object_name`]). The object
//! store is the NATS one (ADR-20 of the NATS architecture decisions):
//! 128 KiB chunks on `$O.{bucket}.C.{nuid}`, its metadata on
//! `$O.{bucket}.M.{name, base64url}`, with the SHA-256 of the whole object
//! in the metadata. Reads here are bounded in size and time, and verify
//! that digest, and the one the reference pins, before returning a byte.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectStore};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

/// Name of the lattice's object store.
pub fn bucket_name(lattice: &str) -> String {
    format!("TRELLIS_ARTIFACTS_{lattice}")
}

/// Most bytes the artifact store created by [`open`] holds. Defaults to
/// 1 GiB; pushes beyond it fail.
pub const DEFAULT_STORE_MAX_BYTES: i64 = 1024 * 1024 * 1024;

/// Why an artifact could not be stored or fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArtifactErrorKind {
    /// No artifact by that name and version (or no store yet).
    NotFound,
    /// The artifact is larger than the caller accepts.
    TooLarge,
    /// Its bytes do not hash to the digest recorded with it, or to the one
    /// the reference pins.
    DigestMismatch,
    /// The store did not answer, or the transfer did not finish, in time.
    Timeout,
    /// NATS or JetStream failed.
    Nats,
    /// The registry refused the credentials (or their absence).
    Denied,
    /// The manifest is not an OCI image manifest, or does not hold exactly
    /// one layer of a known media type.
    MediaType,
    /// The registry, or the connection to it, failed otherwise (a plain
    /// HTTP registry reached over HTTPS among them).
    Registry,
}

impl fmt::Display for ArtifactErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::TooLarge => "too large",
            Self::DigestMismatch => "digest mismatch",
            Self::Timeout => "timed out",
            Self::Nats => "NATS error",
            Self::Denied => "denied by the registry",
            Self::MediaType => "wrong media type",
            Self::Registry => "registry error",
        })
    }
}

/// An artifact store failure: its kind, and what happened.
pub type ArtifactError = crate::Error<ArtifactErrorKind>;

/// What the store records about one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// The object's name, `{name}:{version}`.
    pub object: String,
    /// Its size, in bytes.
    pub size: u64,
    /// Its SHA-256 digest, `sha256:` and 64 lowercase hex digits.
    pub digest: String,
}

/// Opens the lattice's artifact store, creating it when `create` is true
/// and it does not exist yet (at most [`DEFAULT_STORE_MAX_BYTES`], file
/// storage), within `timeout`.
///
/// # Errors
///
/// [`ArtifactErrorKind::NotFound`] when it does not exist and `create` is
/// false, [`ArtifactErrorKind::Timeout`], [`ArtifactErrorKind::Nats`].
pub async fn open(
    nats: &async_nats::Client,
    lattice: &str,
    create: bool,
    timeout: Duration,
) -> Result<ObjectStore, ArtifactError> {
    let js = async_nats::jetstream::new(nats.clone());
    let name = bucket_name(lattice);
    let open = async {
        match js.get_object_store(&name).await {
            Ok(store) => Ok(store),
            Err(e) if !create => Err(ArtifactError::with_source(ArtifactErrorKind::NotFound, e)),
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: name.clone(),
                    description: Some("Trellis artifacts".to_owned()),
                    max_bytes: DEFAULT_STORE_MAX_BYTES,
                    ..Default::default()
                })
                .await
                .map_err(|e| ArtifactError::with_source(ArtifactErrorKind::Nats, e)),
        }
    };
    tokio::time::timeout(timeout, open).await.map_err(|_| {
        ArtifactError::with_source(ArtifactErrorKind::Timeout, "opening the artifact store")
    })?
}

/// Stores what `reader` yields as `object` (`{name}:{version}`), in
/// 128 KiB chunks, replacing what was stored under that name, within
/// `timeout`. Returns what was stored.
///
/// # Errors
///
/// [`ArtifactErrorKind::Timeout`], [`ArtifactErrorKind::Nats`] (a full
/// store, or a failed read of `reader`, among them).
pub async fn put(
    store: &ObjectStore,
    object: &str,
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    timeout: Duration,
) -> Result<ArtifactInfo, ArtifactError> {
    let info = tokio::time::timeout(timeout, store.put(object, reader))
        .await
        .map_err(|_| {
            ArtifactError::with_source(ArtifactErrorKind::Timeout, "storing the artifact")
        })?
        .map_err(|e| ArtifactError::with_source(ArtifactErrorKind::Nats, e))?;
    describe(object, &info)
}

/// The digest of a stored object as `sha256:…`, from the base64url
/// `SHA-256=…` form the object store records.
fn describe(object: &str, info: &object_store::ObjectInfo) -> Result<ArtifactInfo, ArtifactError> {
    let digest = info
        .digest
        .as_deref()
        .and_then(|d| d.strip_prefix("SHA-256="))
        .and_then(|b64| base64::engine::general_purpose::URL_SAFE.decode(b64).ok())
        .filter(|raw| raw.len() == 32)
        .map(|raw| format!("sha256:{}", hex::encode(raw)))
        .ok_or_else(|| {
            ArtifactError::with_source(
                ArtifactErrorKind::DigestMismatch,
                format!("artifact {object} records no SHA-256 digest"),
            )
        })?;
    Ok(ArtifactInfo {
        object: object.to_owned(),
        size: info.size as u64,
        digest,
    })
}

/// What the store records about `object`, within `timeout`.
///
/// # Errors
///
/// [`ArtifactErrorKind::NotFound`], [`ArtifactErrorKind::DigestMismatch`]
/// when the recorded digest is not a SHA-256, [`ArtifactErrorKind::Timeout`],
/// [`ArtifactErrorKind::Nats`].
pub async fn info(
    store: &ObjectStore,
    object: &str,
    timeout: Duration,
) -> Result<ArtifactInfo, ArtifactError> {
    let info = tokio::time::timeout(timeout, store.info(object))
        .await
        .map_err(|_| {
            ArtifactError::with_source(ArtifactErrorKind::Timeout, "reading artifact metadata")
        })?
        .map_err(|e| match e.kind() {
            object_store::InfoErrorKind::NotFound => ArtifactError::with_source(
                ArtifactErrorKind::NotFound,
                format!("no artifact {object}"),
            ),
            _ => ArtifactError::with_source(ArtifactErrorKind::Nats, e),
        })?;
    if info.deleted {
        return Err(ArtifactError::with_source(
            ArtifactErrorKind::NotFound,
            format!("artifact {object} was deleted"),
        ));
    }
    describe(object, &info)
}

/// Reads `object` whole, within `timeout`: at most `max_bytes`, checked
/// against the size recorded before reading and while reading. Its bytes
/// must hash to the digest recorded with it and, when `pinned` is given,
/// to that digest too (`sha256:…`). `progress` is told the bytes read so
/// far after each chunk.
///
/// # Errors
///
/// [`ArtifactErrorKind::NotFound`], [`ArtifactErrorKind::TooLarge`],
/// [`ArtifactErrorKind::DigestMismatch`], [`ArtifactErrorKind::Timeout`],
/// [`ArtifactErrorKind::Nats`].
pub async fn get(
    store: &ObjectStore,
    object: &str,
    pinned: Option<&str>,
    max_bytes: usize,
    timeout: Duration,
    progress: impl FnMut(u64) + Send,
) -> Result<(ArtifactInfo, Vec<u8>), ArtifactError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let info = info(store, object, timeout).await?;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let bytes = read(store, &info, pinned, max_bytes, remaining, progress).await?;
    Ok((info, bytes))
}

/// Reads the artifact `info` describes (as [`info`] returned it), as
/// [`get`] does, without reading its metadata again.
///
/// # Errors
///
/// As [`get`].
pub async fn read(
    store: &ObjectStore,
    info: &ArtifactInfo,
    pinned: Option<&str>,
    max_bytes: usize,
    timeout: Duration,
    mut progress: impl FnMut(u64) + Send,
) -> Result<Vec<u8>, ArtifactError> {
    let object = info.object.as_str();
    let deadline = tokio::time::Instant::now() + timeout;
    if let Some(pinned) = pinned
        && pinned != info.digest
    {
        return Err(ArtifactError::with_source(
            ArtifactErrorKind::DigestMismatch,
            format!("artifact {object} is {}, not {pinned}", info.digest),
        ));
    }
    if info.size > max_bytes as u64 {
        return Err(ArtifactError::with_source(
            ArtifactErrorKind::TooLarge,
            format!(
                "artifact {object} is {} bytes, over the limit of {max_bytes}",
                info.size
            ),
        ));
    }
    let read = async {
        let mut reader = store.get(object).await.map_err(|e| match e.kind() {
            object_store::GetErrorKind::NotFound => ArtifactError::with_source(
                ArtifactErrorKind::NotFound,
                format!("no artifact {object}"),
            ),
            _ => ArtifactError::with_source(ArtifactErrorKind::Nats, e),
        })?;
        let mut bytes = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
        let mut chunk = vec![0u8; 128 * 1024];
        loop {
            // The object store reports a digest mismatch as a read error.
            let n = reader
                .read(&mut chunk)
                .await
                .map_err(|e| ArtifactError::with_source(ArtifactErrorKind::DigestMismatch, e))?;
            if n == 0 {
                break;
            }
            if bytes.len() + n > max_bytes {
                return Err(ArtifactError::with_source(
                    ArtifactErrorKind::TooLarge,
                    format!("artifact {object} is over the limit of {max_bytes} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk[..n]);
            progress(bytes.len() as u64);
        }
        Ok::<_, ArtifactError>(bytes)
    };
    let bytes = tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| {
            ArtifactError::with_source(ArtifactErrorKind::Timeout, format!("pulling {object}"))
        })??;
    let actual = sha256_digest(&bytes);
    if actual != info.digest {
        return Err(ArtifactError::with_source(
            ArtifactErrorKind::DigestMismatch,
            format!("artifact {object} hashes to {actual}, not {}", info.digest),
        ));
    }
    Ok(bytes)
}

/// The SHA-256 digest of `bytes`, as `sha256:` and 64 lowercase hex digits
/// (the OCI digest form).
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
