//! `trellis push` and `trellis pull`: artifacts in the lattice's own store
//! (`docs/artifacts.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Serialize;
use trellis_lattice_client::artifacts;
use trellis_protocol::artifact::{ArtifactRef, LatticeRef};

use crate::ctl::LatticeArgs;
use crate::output::{Output, emit};

/// Most bytes `trellis push` and `trellis pull` move, the provider archive
/// limit. Defaults to 512 MiB.
pub const MAX_ARTIFACT_BYTES: usize = 512 * 1024 * 1024;

/// `trellis push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The signed actor module or provider archive to push.
    pub file: PathBuf,
    /// Where to push it: `name[:version]` or `lattice://name[:version]`
    /// for the lattice's own store. Defaults to the file's name without
    /// its extensions, at version `latest`.
    pub reference: Option<String>,
    #[command(flatten)]
    pub lattice: LatticeArgs,
}

/// `trellis pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to pull: `name[:version][@sha256:…]` or `lattice://…`.
    pub reference: String,
    /// Where to write it. Defaults to `{name}-{version}` in the current
    /// directory.
    #[arg(short = 'd', long = "destination")]
    pub destination: Option<PathBuf>,
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

/// The lattice reference `reference` names, or why it names none.
fn lattice_ref(reference: &str) -> anyhow::Result<LatticeRef> {
    match reference.parse::<ArtifactRef>()? {
        ArtifactRef::Lattice(r) => Ok(r),
        ArtifactRef::Oci(_) => bail!(
            "{reference} names an OCI registry; this build pushes and pulls the lattice's own store only (name[:version])"
        ),
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
/// An unreadable file, a reference that does not name the lattice's
/// store, or a failed upload.
pub fn push(args: PushArgs, output: Output) -> anyhow::Result<ExitCode> {
    let reference = match &args.reference {
        Some(r) => lattice_ref(r)?,
        None => lattice_ref(&default_name(&args.file)?)?,
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
        let nats = args.lattice.nats().await?;
        let timeout = args.lattice.timeout.max(std::time::Duration::from_secs(60));
        let store = artifacts::open(&nats, &args.lattice.lattice, true, timeout).await?;
        let progress = bar(output, size);
        let mut reader = progress.wrap_async_read(file);
        let info = artifacts::put(&store, &reference.object_name(), &mut reader, timeout).await?;
        progress.finish_and_clear();
        let moved = Moved {
            reference: ArtifactRef::Lattice(reference).to_string(),
            digest: info.digest,
            size: info.size,
            file: None,
        };
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
/// A reference that does not name the lattice's store, a missing
/// artifact, a digest mismatch, or an unwritable destination.
pub fn pull(args: PullArgs, output: Output) -> anyhow::Result<ExitCode> {
    let reference = lattice_ref(&args.reference)?;
    crate::ctl::block_on(async move {
        let nats = args.lattice.nats().await?;
        let timeout = args.lattice.timeout.max(std::time::Duration::from_secs(60));
        let store = artifacts::open(&nats, &args.lattice.lattice, false, timeout).await?;
        let object = reference.object_name();
        let info = artifacts::info(&store, &object, timeout).await?;
        let progress = bar(output, info.size);
        let (info, bytes) = artifacts::get(
            &store,
            &object,
            reference.digest.as_deref(),
            MAX_ARTIFACT_BYTES,
            timeout,
            |read| progress.set_position(read),
        )
        .await?;
        progress.finish_and_clear();
        let destination = args
            .destination
            .unwrap_or_else(|| PathBuf::from(format!("{}-{}", reference.name, reference.version)));
        tokio::fs::write(&destination, &bytes)
            .await
            .with_context(|| format!("writing {}", destination.display()))?;
        let moved = Moved {
            reference: ArtifactRef::Lattice(reference).to_string(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_file_is_pushed_under_its_name_by_default() {
        let name = default_name(std::path::Path::new("build/Hello.signed.wasm")).unwrap();
        assert_eq!(name, "hello");
        assert_eq!(lattice_ref(&name).unwrap().object_name(), "hello:latest");
    }

    #[test]
    fn oci_and_file_references_are_refused_for_the_lattice_store() {
        assert!(lattice_ref("localhost:5000/hello:1").is_err());
        assert!(lattice_ref("/srv/hello.wasm").is_err());
        assert!(lattice_ref("hello:1.0").is_ok());
    }
}
