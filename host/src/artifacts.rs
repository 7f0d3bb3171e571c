//! Artifact references on disk: the actor modules and provider archives
//! that control requests name by path.
//!
//! A control request comes from the network, so its path is untrusted:
//!
//! - it must resolve (symbolic links and `..` followed) to a file under one
//!   of [`crate::HostConfig::artifact_dirs`];
//! - it must be a regular file: a FIFO, device, socket or directory is
//!   refused, and the file is opened without blocking (a FIFO with no
//!   writer would otherwise hang the open) and checked again on the open
//!   handle, so a path swapped after the first check is caught;
//! - at most `limit` bytes are read (`take(limit + 1)`), whatever size the
//!   file claims, so `/dev/zero`-like files cannot grow the host.
//!
//! Every refusal has the same message, [`REFUSED`], so that replies and
//! events do not tell whether a path exists or what it is; the reason is
//! logged on the host.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// The message of every refused reference.
pub const REFUSED: &str = "artifact reference refused";

/// Opens `path` for reading if it is a regular file under one of `dirs`.
///
/// # Errors
///
/// [`ErrorKind::BadRequest`] with the message [`REFUSED`] for a path that
/// does not exist, is outside `dirs` or is not a regular file.
pub(crate) fn open(path: &str, dirs: &[PathBuf]) -> Result<File> {
    let refuse = |why: &str| {
        tracing::warn!(path, "refused an artifact reference: {why}");
        Error::new(ErrorKind::BadRequest, REFUSED)
    };
    let resolved = std::fs::canonicalize(path).map_err(|e| refuse(&e.to_string()))?;
    if !dirs
        .iter()
        .any(|dir| std::fs::canonicalize(dir).is_ok_and(|dir| resolved.starts_with(dir)))
    {
        return Err(refuse("outside the allowed directories"));
    }
    let metadata = std::fs::metadata(&resolved).map_err(|e| refuse(&e.to_string()))?;
    if !metadata.is_file() {
        return Err(refuse("not a regular file"));
    }
    let file = open_nonblocking(&resolved).map_err(|e| refuse(&e.to_string()))?;
    // The path may have been replaced between the checks and the open.
    let opened = file.metadata().map_err(|e| refuse(&e.to_string()))?;
    if !opened.is_file() {
        return Err(refuse("not a regular file when opened"));
    }
    Ok(file)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOFOLLOW).bits())
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Reads the regular file `path` under one of `dirs`, of at most `limit`
/// bytes.
///
/// # Errors
///
/// As [`open`]; [`ErrorKind::InvalidComponent`] for a file larger than
/// `limit` bytes; [`ErrorKind::Io`] if reading fails.
pub(crate) async fn read(path: &str, dirs: &[PathBuf], limit: usize) -> Result<Vec<u8>> {
    let (path, dirs) = (path.to_owned(), dirs.to_vec());
    tokio::task::spawn_blocking(move || {
        let file = open(&path, &dirs)?;
        let mut bytes = Vec::new();
        file.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::with_source(ErrorKind::Io, e))?;
        if bytes.len() > limit {
            return Err(Error::new(
                ErrorKind::InvalidComponent,
                format!("the artifact is larger than {limit} bytes"),
            ));
        }
        Ok(bytes)
    })
    .await
    .map_err(|e| Error::with_source(ErrorKind::Io, e))?
}

/// Creates `dir` (and its parents) if needed, makes it private to this
/// user (mode 0700), and checks that this user owns it, so that no other
/// user can plant or swap a binary in it.
///
/// # Errors
///
/// [`ErrorKind::Io`] if it cannot be created or made private, or
/// [`ErrorKind::Config`] if another user owns it.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!("cannot prepare {}: {e}", dir.display()),
        )
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let metadata = std::fs::symlink_metadata(dir).map_err(io)?;
        let me = nix::unistd::geteuid().as_raw();
        if !metadata.is_dir() || metadata.uid() != me {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{} is not a directory owned by this user; choose another provider cache",
                    dir.display()
                ),
            ));
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(io)?;
    Ok(())
}

/// Lowercase hex SHA-256 of the file at `path`, read in blocks.
///
/// # Errors
///
/// [`ErrorKind::Io`] if it cannot be read.
pub(crate) async fn sha256_file(path: &Path) -> Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use sha2::Digest as _;
        let mut file = File::open(&path).map_err(|e| Error::with_source(ErrorKind::Io, e))?;
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| Error::with_source(ErrorKind::Io, e))?;
        Ok(format!("{:x}", hasher.finalize()))
    })
    .await
    .map_err(|e| Error::with_source(ErrorKind::Io, e))?
}
