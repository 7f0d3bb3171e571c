//! OCI registries: pushing and pulling actor modules and provider archives
//! with the `oci-client` crate (`docs/artifacts.md`).
//!
//! Layouts:
//!
//! - a component follows the CNCF TAG Runtime *Wasm OCI Artifact* layout:
//!   an image manifest (`application/vnd.oci.image.manifest.v1+json`), a
//!   config of media type [`WASM_CONFIG_MEDIA_TYPE`] and one layer of
//!   [`WASM_LAYER_MEDIA_TYPE`];
//! - a provider archive is one layer of [`PROVIDER_ARCHIVE_MEDIA_TYPE`]
//!   (the media type wasmCloud uses), with a config of
//!   [`PROVIDER_CONFIG_MEDIA_TYPE`].
//!
//! A pull reads the manifest (checking its media type, its digest and any
//! digest the reference pins), requires exactly one layer of a known media
//! type within the size limit, then streams the layer, checking its size
//! while reading and its digest at the end. Registries are reached over
//! HTTPS; plain HTTP only for those listed in
//! [`RegistrySettings::insecure`], never as a fallback.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use trellis_protocol::artifact::OciRef;

use crate::artifacts::{ArtifactError, ArtifactErrorKind, ArtifactInfo, sha256_digest};

/// Media type of a Wasm component's config (CNCF Wasm OCI Artifact).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of a Wasm component's one layer (CNCF Wasm OCI Artifact).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Media type of a provider archive's layer (as wasmCloud's).
pub const PROVIDER_ARCHIVE_MEDIA_TYPE: &str =
    "application/vnd.wasmcloud.provider.archive.layer.v1+par";
/// Media type of a provider archive's config (as wasmCloud's).
pub const PROVIDER_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasmcloud.provider.archive.config";

/// What an artifact holds, by its layer's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A Wasm component: [`WASM_LAYER_MEDIA_TYPE`].
    Component,
    /// A provider archive: [`PROVIDER_ARCHIVE_MEDIA_TYPE`].
    ProviderArchive,
}

impl ArtifactKind {
    /// The media type of its layer.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Self::Component => WASM_LAYER_MEDIA_TYPE,
            Self::ProviderArchive => PROVIDER_ARCHIVE_MEDIA_TYPE,
        }
    }

    /// The kind a layer media type names, if any.
    pub fn from_layer_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            WASM_LAYER_MEDIA_TYPE => Some(Self::Component),
            PROVIDER_ARCHIVE_MEDIA_TYPE => Some(Self::ProviderArchive),
            _ => None,
        }
    }

    /// The kind of a file, by its bytes: a provider archive is gzip.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            Self::ProviderArchive
        } else {
            Self::Component
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Component => "component",
            Self::ProviderArchive => "provider archive",
        })
    }
}

/// How registries are reached. Defaults in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Registries (`host:port`, as in references) reached over plain
    /// HTTP. Defaults to none: every registry over HTTPS.
    pub insecure: Vec<String>,
    /// User name and password per registry (`host:port`). Defaults to
    /// none; a registry without an entry is tried with the credentials of
    /// the Docker configuration (`~/.docker/config.json`, or
    /// `$DOCKER_CONFIG/config.json`), else anonymously.
    pub credentials: BTreeMap<String, (String, String)>,
    /// Bound on each registry request (connect and each read). Defaults
    /// to 30 s; a whole pull is also bounded by its caller's timeout.
    pub request_timeout: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            credentials: BTreeMap::new(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A client of OCI registries.
pub struct Registry {
    client: Client,
    settings: RegistrySettings,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("insecure", &self.settings.insecure)
            .finish_non_exhaustive()
    }
}

/// What a push stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest: `reference@digest` names exactly this push.
    pub manifest_digest: String,
    /// The layer's digest and size.
    pub layer: ArtifactInfo,
}

impl Registry {
    /// A client with `settings`.
    pub fn new(settings: RegistrySettings) -> Self {
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(settings.insecure.clone()),
            read_timeout: Some(settings.request_timeout),
            connect_timeout: Some(settings.request_timeout),
            ..ClientConfig::default()
        };
        Self {
            client: Client::new(config),
            settings,
        }
    }

    fn auth(&self, registry: &str) -> RegistryAuth {
        if let Some((user, password)) = self.settings.credentials.get(registry) {
            return RegistryAuth::Basic(user.clone(), password.clone());
        }
        match docker_credential::get_credential(registry) {
            Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
                RegistryAuth::Basic(user, password)
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                RegistryAuth::Bearer(token)
            }
            Err(_) => RegistryAuth::Anonymous,
        }
    }

    /// Pushes `bytes` as the one layer of an artifact of `kind` at
    /// `reference`, within `timeout`.
    ///
    /// # Errors
    ///
    /// [`ArtifactErrorKind::Denied`] when the registry refuses the
    /// credentials, [`ArtifactErrorKind::Timeout`],
    /// [`ArtifactErrorKind::Registry`] for any other registry or transport
    /// failure (an HTTPS connection to a plain-HTTP registry among them).
    pub async fn push(
        &self,
        reference: &OciRef,
        bytes: Vec<u8>,
        kind: ArtifactKind,
        timeout: Duration,
    ) -> Result<Pushed, ArtifactError> {
        let image = to_reference(reference)?;
        let layer = ArtifactInfo {
            object: reference.whole(),
            size: bytes.len() as u64,
            digest: sha256_digest(&bytes),
        };
        let config = match kind {
            ArtifactKind::Component => Config::new(
                serde_json::to_vec(&serde_json::json!({
                    "created": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                    "architecture": "wasm",
                    "os": "wasip2",
                    "layerDigests": [layer.digest],
                }))
                .map_err(|e| ArtifactError::with_source(ArtifactErrorKind::Registry, e))?,
                WASM_CONFIG_MEDIA_TYPE.to_owned(),
                None,
            ),
            ArtifactKind::ProviderArchive => {
                Config::new(b"{}".to_vec(), PROVIDER_CONFIG_MEDIA_TYPE.to_owned(), None)
            }
        };
        let layers = [ImageLayer::new(
            bytes,
            kind.layer_media_type().to_owned(),
            None,
        )];
        let auth = self.auth(&reference.registry);
        let push = self.client.push(&image, &layers, config, &auth, None);
        let response = tokio::time::timeout(timeout, push)
            .await
            .map_err(|_| timed_out(reference))?
            .map_err(from_oci)?;
        let manifest_digest = response
            .manifest_url
            .rsplit('/')
            .next()
            .filter(|d| d.starts_with("sha256:"))
            .map(str::to_owned)
            .unwrap_or_default();
        Ok(Pushed {
            manifest_digest,
            layer,
        })
    }

    /// Pulls the artifact at `reference`, within `timeout`: at most
    /// `max_bytes`. `progress` is told the bytes read so far. Returns its
    /// kind, its layer's digest and size, and its bytes.
    ///
    /// # Errors
    ///
    /// [`ArtifactErrorKind::NotFound`], [`ArtifactErrorKind::Denied`],
    /// [`ArtifactErrorKind::MediaType`] for a manifest that is not an OCI
    /// image manifest or does not hold exactly one layer of a known media
    /// type, [`ArtifactErrorKind::TooLarge`],
    /// [`ArtifactErrorKind::DigestMismatch`] (the manifest's or the
    /// layer's), [`ArtifactErrorKind::Timeout`],
    /// [`ArtifactErrorKind::Registry`].
    pub async fn pull(
        &self,
        reference: &OciRef,
        max_bytes: usize,
        timeout: Duration,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<(ArtifactKind, ArtifactInfo, Vec<u8>), ArtifactError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (kind, layer, image) = tokio::time::timeout_at(deadline, self.manifest(reference))
            .await
            .map_err(|_| timed_out(reference))??;
        let info = ArtifactInfo {
            object: reference.whole(),
            size: u64::try_from(layer.size).unwrap_or(u64::MAX),
            digest: layer.digest.clone(),
        };
        if info.size > max_bytes as u64 {
            return Err(ArtifactError::with_source(
                ArtifactErrorKind::TooLarge,
                format!(
                    "{} is {} bytes, over the limit of {max_bytes}",
                    info.object, info.size
                ),
            ));
        }
        let read = async {
            let mut stream = self
                .client
                .pull_blob_stream(&image, &layer)
                .await
                .map_err(from_oci)?;
            let mut bytes = Vec::with_capacity(usize::try_from(info.size).unwrap_or(0));
            let mut hash = Sha256::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(from_stream)?;
                if bytes.len() + chunk.len() > max_bytes {
                    return Err(ArtifactError::with_source(
                        ArtifactErrorKind::TooLarge,
                        format!("{} is over the limit of {max_bytes} bytes", info.object),
                    ));
                }
                hash.update(&chunk);
                bytes.extend_from_slice(&chunk);
                progress(bytes.len() as u64);
            }
            Ok((bytes, format!("sha256:{}", hex::encode(hash.finalize()))))
        };
        let (bytes, actual) = tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| timed_out(reference))??;
        if actual != info.digest || bytes.len() as u64 != info.size {
            return Err(ArtifactError::with_source(
                ArtifactErrorKind::DigestMismatch,
                format!(
                    "{} has {} bytes hashing to {actual}; its manifest says {} bytes, {}",
                    info.object,
                    bytes.len(),
                    info.size,
                    info.digest
                ),
            ));
        }
        Ok((kind, info, bytes))
    }

    /// Reads and checks the manifest of `reference`: its kind, its one
    /// layer, and the reference to pull that layer with.
    async fn manifest(
        &self,
        reference: &OciRef,
    ) -> Result<(ArtifactKind, oci_client::manifest::OciDescriptor, Reference), ArtifactError> {
        let image = to_reference(reference)?;
        let auth = self.auth(&reference.registry);
        let (raw, digest) = self
            .client
            .pull_manifest_raw(&image, &auth, &[OCI_IMAGE_MEDIA_TYPE])
            .await
            .map_err(from_oci)?;
        let actual = sha256_digest(&raw);
        let pinned = reference.digest.as_deref();
        if actual != digest || pinned.is_some_and(|p| p != actual) {
            return Err(ArtifactError::with_source(
                ArtifactErrorKind::DigestMismatch,
                format!(
                    "the manifest of {} hashes to {actual}, not {}",
                    reference.whole(),
                    pinned.unwrap_or(&digest)
                ),
            ));
        }
        let media_type = |m: &str| {
            ArtifactError::with_source(
                ArtifactErrorKind::MediaType,
                format!("{}: {m}", reference.whole()),
            )
        };
        let manifest: OciImageManifest = serde_json::from_slice(&raw)
            .map_err(|e| media_type(&format!("not an OCI image manifest: {e}")))?;
        // `mediaType` is optional in an OCI image manifest; another value
        // (a Docker manifest, an index) is refused.
        if manifest
            .media_type
            .as_deref()
            .is_some_and(|m| m != OCI_IMAGE_MEDIA_TYPE)
        {
            return Err(media_type(&format!(
                "manifest media type {:?}, expected {OCI_IMAGE_MEDIA_TYPE}",
                manifest.media_type
            )));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(media_type(&format!(
                "{} layers; an artifact has exactly one",
                manifest.layers.len()
            )));
        };
        let kind = ArtifactKind::from_layer_media_type(&layer.media_type)
            .ok_or_else(|| media_type(&format!("layer media type {}", layer.media_type)))?;
        Ok((kind, layer.clone(), image))
    }
}

fn to_reference(reference: &OciRef) -> Result<Reference, ArtifactError> {
    reference
        .whole()
        .parse()
        .map_err(|e: oci_client::ParseError| {
            ArtifactError::with_source(ArtifactErrorKind::Registry, e.to_string())
        })
}

fn timed_out(reference: &OciRef) -> ArtifactError {
    ArtifactError::with_source(
        ArtifactErrorKind::Timeout,
        format!("{} did not arrive in time", reference.whole()),
    )
}

/// The artifact error for a failed read of a layer: the stream reports a
/// digest mismatch as an I/O error holding a `DigestError`.
fn from_stream(e: std::io::Error) -> ArtifactError {
    let digest = e.get_ref().is_some_and(|inner| {
        inner
            .downcast_ref::<oci_client::errors::DigestError>()
            .is_some()
    });
    let kind = if digest {
        ArtifactErrorKind::DigestMismatch
    } else {
        ArtifactErrorKind::Registry
    };
    ArtifactError::with_source(kind, e)
}

/// The artifact error for an `oci-client` error.
fn from_oci(e: OciDistributionError) -> ArtifactError {
    use oci_client::errors::OciErrorCode;
    let kind = match &e {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => ArtifactErrorKind::Denied,
        OciDistributionError::ImageManifestNotFoundError(_) => ArtifactErrorKind::NotFound,
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => ArtifactErrorKind::Denied,
        OciDistributionError::ServerError { code: 404, .. } => ArtifactErrorKind::NotFound,
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                ArtifactErrorKind::Denied
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                ArtifactErrorKind::NotFound
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::ManifestInvalid | OciErrorCode::Unsupported))
            {
                // What a registry answers when the manifest it holds is not
                // of a media type the client accepts (a Docker manifest
                // asked for as an OCI one), or it refuses one pushed.
                ArtifactErrorKind::MediaType
            } else {
                ArtifactErrorKind::Registry
            }
        }
        OciDistributionError::DigestError(_) => ArtifactErrorKind::DigestMismatch,
        OciDistributionError::IncompatibleLayerMediaTypeError(_)
        | OciDistributionError::UnsupportedMediaTypeError(_)
        | OciDistributionError::ManifestParsingError(_) => ArtifactErrorKind::MediaType,
        _ => ArtifactErrorKind::Registry,
    };
    ArtifactError::with_source(kind, e)
}
