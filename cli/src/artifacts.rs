//! `trellis push` and `trellis pull`: artifacts in the lattice's own store
//! or in an OCI registry (`docs/artifacts.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;
use trellis_lattice_client::artifacts;
use trellis_lattice_client::oci::{ArtifactKind, Registry, RegistrySettings};
use trellis_protocol::artifact::{ArtifactRef, LatticeRef, OciRef};

use crate::ctl::LatticeArgs;
use crate::output::{Output, emit};

/// Most bytes `trellis push` and `trellis pull` move, the provider archive
/// limit. Defaults to 512 MiB.
pub const MAX_ARTIFACT_BYTES: usize = 512 * 1024 * 1024;

/// How OCI registries are reached, for every command that reaches one.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// A registry (`host:port`) reached over plain HTTP instead of HTTPS.
    /// Repeat, or separate with commas. Nothing else is ever downgraded.
    #[arg(
        long = "allow-insecure-registry",
        env = "TRELLIS_ALLOW_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure: Vec<String>,
    /// User name for the registry of the reference (else the Docker
    /// configuration's credentials, else anonymous).
    #[arg(long, env = "TRELLIS_REGISTRY_USER", requires = "registry_password")]
    pub registry_user: Option<String>,
    /// Password for `--registry-user`.
    #[arg(
        long,
        env = "TRELLIS_REGISTRY_PASSWORD",
        requires = "registry_user",
        hide_env_values = true
    )]
    pub registry_password: Option<String>,
}

impl RegistryArgs {
    /// The settings for reaching `registry` (the user and password apply
    /// to it alone).
    pub fn settings(&self, registry: Option<&str>) -> RegistrySettings {
        let mut settings = RegistrySettings {
            insecure: self.insecure.clone(),
            ..RegistrySettings::default()
        };
        if let (Some(registry), Some(user), Some(password)) =
            (registry, &self.registry_user, &self.registry_password)
        {
            settings
                .credentials
                .insert(registry.to_owned(), (user.clone(), password.clone()));
        }
        settings
    }
}

/// `trellis push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The signed actor module or provider archive to push.
    pub file: PathBuf,
    /// Where to push it: `name[:version]` or `lattice://name[:version]`
    /// for the lattice's own store, `oci://registry/repository:tag` (or
    /// `registry/repository:tag`) for an OCI registry. Defaults to the
    /// file's name without its extensions, at version `latest`, in the
    /// lattice's store.
    pub reference: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub lattice: LatticeArgs,
}

/// `trellis pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: `name[:version][@sha256:…]`, `lattice://…`, or an
    /// OCI reference.
    pub reference: String,
    /// Where to write it. Defaults to `{name}-{version}` in the current
    /// directory.
    #[arg(short = 'd', long = "destination")]
    pub destination: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub lattice: LatticeArgs,
}

/// What push and pull report.
#[derive(Debug, Serialize)]
struct Moved {
    reference: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

/// Where an artifact is pushed to or pulled from.
enum Target {
    Lattice(LatticeRef),
    Oci(OciRef),
}

/// Where an inspected artifact came from.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// The reference, in canonical form.
    pub reference: String,
    /// The SHA-256 digest of its bytes (for OCI, of its layer).
    pub digest: String,
    /// Its size, in bytes.
    pub size: u64,
}

impl Fetched {
    /// Lines for people, ahead of the claims.
    pub fn describe(&self) -> String {
        format!(
            "Artifact:     {}\nDigest:       {}\nSize:         {} bytes\n",
            self.reference, self.digest, self.size
        )
    }
}

/// `trellis inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// What to inspect: an artifact reference or a file.
    pub reference: String,
    /// Public key of an issuer to trust. Repeat for several. Without it,
    /// any account issuer is accepted.
    #[arg(long = "trust", env = "TRELLIS_TRUSTED_ISSUERS", value_delimiter = ',')]
    pub trusted_issuers: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub lattice: LatticeArgs,
}

/// Runs `trellis inspect`: fetches the artifact (nothing is started) and
/// shows its digest and its claims, checked; the exit code is that of
/// `trellis claims inspect` or `trellis par inspect`.
///
/// # Errors
///
/// A reference that cannot be fetched, or bytes that are neither a
/// component nor a provider archive.
pub fn inspect(args: InspectArgs, output: Output) -> anyhow::Result<ExitCode> {
    let reference: ArtifactRef = args.reference.parse()?;
    let (fetched, bytes) = crate::ctl::block_on_value(async {
        let timeout = args.lattice.timeout.max(std::time::Duration::from_secs(60));
        Ok(match &reference {
            ArtifactRef::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .with_context(|| format!("reading {path}"))?;
                (artifacts::sha256_digest(&bytes), bytes)
            }
            ArtifactRef::Lattice(r) => {
                let nats = args.lattice.nats().await?;
                let store = artifacts::open(&nats, &args.lattice.lattice, false, timeout).await?;
                let (info, bytes) = artifacts::get(
                    &store,
                    &r.object_name(),
                    r.digest.as_deref(),
                    MAX_ARTIFACT_BYTES,
                    timeout,
                    |_| {},
                )
                .await?;
                (info.digest, bytes)
            }
            ArtifactRef::Oci(r) => {
                let registry = Registry::new(args.registry.settings(Some(&r.registry)));
                let (_, info, bytes) = registry
                    .pull(r, MAX_ARTIFACT_BYTES, timeout, |_| {})
                    .await?;
                (info.digest, bytes)
            }
        })
    })?;
    let fetched = Fetched {
        reference: reference.to_string(),
        digest: fetched,
        size: bytes.len() as u64,
    };
    match ArtifactKind::of_bytes(&bytes) {
        ArtifactKind::Component => {
            crate::claims::inspect_module(&bytes, &args.trusted_issuers, Some(fetched), output)
        }
        ArtifactKind::ProviderArchive => {
            crate::par::inspect_archive(&bytes, &args.trusted_issuers, Some(fetched), output)
        }
    }
}

/// The store `reference` names, or why it names none.
fn target(reference: &str) -> anyhow::Result<Target> {
    match reference.parse::<ArtifactRef>()? {
        ArtifactRef::Lattice(r) => Ok(Target::Lattice(r)),
        ArtifactRef::Oci(r) => Ok(Target::Oci(r)),
        ArtifactRef::File(_) => bail!("{reference} is a file path, not an artifact reference"),
    }
}

/// The name a file is pushed under by default: its file name up to the
/// first `.`, lowercased (`hello.signed.wasm` → `hello`).
fn default_name(file: &std::path::Path) -> anyhow::Result<String> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .map(str::to_ascii_lowercase)
        .filter(|n| !n.is_empty())
        .with_context(|| format!("cannot name an artifact after {}", file.display()))?;
    Ok(name)
}

fn bar(output: Output, length: u64) -> indicatif::ProgressBar {
    if output == Output::Json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(length);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Runs `trellis push`.
///
/// # Errors
///
/// An unreadable file, a reference that names no store, or a failed
/// upload (a registry refusing the credentials among them).
pub fn push(args: PushArgs, output: Output) -> anyhow::Result<ExitCode> {
    let target = match &args.reference {
        Some(r) => target(r)?,
        None => target(&default_name(&args.file)?)?,
    };
    crate::ctl::block_on(async move {
        let file = tokio::fs::File::open(&args.file)
            .await
            .with_context(|| format!("opening {}", args.file.display()))?;
        let size = file.metadata().await?.len();
        if size > MAX_ARTIFACT_BYTES as u64 {
            bail!(
                "{} is over the {MAX_ARTIFACT_BYTES}-byte limit",
                args.file.display()
            );
        }
        let timeout = args.lattice.timeout.max(std::time::Duration::from_secs(60));
        let progress = bar(output, size);
        let moved = match target {
            Target::Lattice(reference) => {
                let nats = args.lattice.nats().await?;
                let store = artifacts::open(&nats, &args.lattice.lattice, true, timeout).await?;
                let mut reader = progress.wrap_async_read(file);
                let info =
                    artifacts::put(&store, &reference.object_name(), &mut reader, timeout).await?;
                Moved {
                    reference: ArtifactRef::Lattice(reference).to_string(),
                    digest: info.digest,
                    size: info.size,
                    file: None,
                }
            }
            Target::Oci(reference) => {
                drop(file);
                let bytes = tokio::fs::read(&args.file).await?;
                let kind = ArtifactKind::of_bytes(&bytes);
                let registry = Registry::new(args.registry.settings(Some(&reference.registry)));
                progress.set_position(0);
                let pushed = registry.push(&reference, bytes, kind, timeout).await?;
                progress.set_position(size);
                Moved {
                    reference: ArtifactRef::Oci(reference).to_string(),
                    digest: pushed.manifest_digest,
                    size: pushed.layer.size,
                    file: None,
                }
            }
        };
        progress.finish_and_clear();
        emit(output, &moved, || {
            format!(
                "{}@{} ({} bytes)",
                moved.reference, moved.digest, moved.size
            )
        })?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `trellis pull`.
///
/// # Errors
///
/// A reference that names no store, a missing artifact, a digest
/// mismatch, a registry refusing the credentials, or an unwritable
/// destination.
pub fn pull(args: PullArgs, output: Output) -> anyhow::Result<ExitCode> {
    let target = target(&args.reference)?;
    crate::ctl::block_on(async move {
        let timeout = args.lattice.timeout.max(std::time::Duration::from_secs(60));
        let (reference, default_file, info, bytes) = match target {
            Target::Lattice(reference) => {
                let nats = args.lattice.nats().await?;
                let store = artifacts::open(&nats, &args.lattice.lattice, false, timeout).await?;
                let object = reference.object_name();
                let info = artifacts::info(&store, &object, timeout).await?;
                let progress = bar(output, info.size);
                let bytes = artifacts::read(
                    &store,
                    &info,
                    reference.digest.as_deref(),
                    MAX_ARTIFACT_BYTES,
                    timeout,
                    |read| progress.set_position(read),
                )
                .await?;
                progress.finish_and_clear();
                let file = format!("{}-{}", reference.name, reference.version);
                (ArtifactRef::Lattice(reference), file, info, bytes)
            }
            Target::Oci(reference) => {
                let registry = Registry::new(args.registry.settings(Some(&reference.registry)));
                let progress = bar(output, 0);
                let (_, info, bytes) = registry
                    .pull(&reference, MAX_ARTIFACT_BYTES, timeout, |read| {
                        progress.set_length(read);
                        progress.set_position(read);
                    })
                    .await?;
                progress.finish_and_clear();
                let name = reference
                    .repository
                    .rsplit('/')
                    .next()
                    .unwrap_or("artifact");
                let file = format!(
                    "{name}-{}",
                    reference.tag.as_deref().unwrap_or(artifact_default_tag())
                );
                (ArtifactRef::Oci(reference), file, info, bytes)
            }
        };
        let destination = args
            .destination
            .unwrap_or_else(|| PathBuf::from(default_file));
        tokio::fs::write(&destination, &bytes)
            .await
            .with_context(|| format!("writing {}", destination.display()))?;
        let moved = Moved {
            reference: reference.to_string(),
            digest: info.digest,
            size: info.size,
            file: Some(destination.display().to_string()),
        };
        emit(output, &moved, || {
            format!(
                "{}@{} → {} ({} bytes)",
                moved.reference,
                moved.digest,
                moved.file.as_deref().unwrap_or_default(),
                moved.size
            )
        })?;
        Ok(ExitCode::SUCCESS)
    })
}

fn artifact_default_tag() -> &'static str {
    trellis_protocol::artifact::DEFAULT_TAG
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_file_is_pushed_under_its_name_by_default() {
        let name = default_name(std::path::Path::new("build/Hello.signed.wasm")).unwrap();
        assert_eq!(name, "hello");
        let Target::Lattice(reference) = target(&name).unwrap() else {
            panic!("not the lattice store");
        };
        assert_eq!(reference.object_name(), "hello:latest");
    }

    #[test]
    fn each_reference_names_its_store_and_a_path_none() {
        assert!(matches!(
            target("localhost:5000/hello:1"),
            Ok(Target::Oci(_))
        ));
        assert!(matches!(target("hello:1.0"), Ok(Target::Lattice(_))));
        assert!(target("/srv/hello.wasm").is_err());
    }
}
