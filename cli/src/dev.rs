//! The development home: `$TRELLIS_HOME` (default `~/.trellis`), holding
//! the keys that `trellis build`, `trellis par create` and `trellis up`
//! make on first use, so that a developer's own lattice trusts what they
//! build without any set-up.
//!
//! Layout: `keys/dev.account.nk` (the development issuer),
//! `keys/dev.cluster.nk` (the cluster key of `trellis up`'s host),
//! `keys/<name>.actor.nk` and `keys/<name>.provider.nk` (one key per actor
//! or provider name, so their ids stay the same from build to build).

use std::path::PathBuf;

use anyhow::Context as _;
use trellis_claims::keys::{KeyKind, KeyPair, generate};

use crate::output::{read_key, write_seed};

/// Environment variable naming the development home.
pub const HOME_ENV: &str = "TRELLIS_HOME";

/// Name of the development issuer's and cluster's key files.
pub const DEV_KEY_NAME: &str = "dev";

/// The development home: `$TRELLIS_HOME`, else `$HOME/.trellis`, else
/// `.trellis` in the working directory.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os(HOME_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || PathBuf::from(".trellis"),
            |h| PathBuf::from(h).join(".trellis"),
        )
}

/// The directory of the development keys: `{home}/keys`.
pub fn keys_dir() -> PathBuf {
    home().join("keys")
}

/// The key `{dir}/{name}.{kind}.nk`, created (mode 0600) when missing.
///
/// # Errors
///
/// If the file cannot be read or written, or holds another kind of key.
pub fn key_in(dir: &std::path::Path, name: &str, kind: KeyKind) -> anyhow::Result<KeyPair> {
    let path = dir.join(format!("{name}.{kind}.nk"));
    if path.exists() {
        return read_key(&path.to_string_lossy(), kind)
            .with_context(|| format!("reading {}", path.display()));
    }
    let pair = generate(kind);
    write_seed(&path, &pair.seed()?)?;
    tracing::info!("created {} key {}", kind.as_str(), path.display());
    Ok(pair)
}

/// The development issuer (`{home}/keys/dev.account.nk`), created on first
/// use.
///
/// # Errors
///
/// As [`key_in`].
pub fn issuer() -> anyhow::Result<KeyPair> {
    key_in(&keys_dir(), DEV_KEY_NAME, KeyKind::Account)
}

/// The development cluster key (`{home}/keys/dev.cluster.nk`), created on
/// first use.
///
/// # Errors
///
/// As [`key_in`].
pub fn cluster() -> anyhow::Result<KeyPair> {
    key_in(&keys_dir(), DEV_KEY_NAME, KeyKind::Cluster)
}

/// The issuer named by `--issuer`, or the development issuer without one.
///
/// # Errors
///
/// As [`read_key`] and [`issuer`].
pub fn issuer_or_dev(value: Option<&str>) -> anyhow::Result<KeyPair> {
    match value {
        Some(v) => read_key(v, KeyKind::Account),
        None => issuer(),
    }
}
