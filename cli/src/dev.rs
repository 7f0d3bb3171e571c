//! The development home: `$TRELLIS_HOME` (default `~/.trellis`), holding
//! the keys that `trellis build`, `trellis par create` and `trellis up`
//! make on first use, so that a developer's own lattice trusts what they
//! build without any set-up.
//!
//! Layout: `keys/dev.account.nk` (the development issuer),
//! `keys/dev.cluster.nk` (the cluster key of `trellis up`'s host),
//! `keys/dev.operator.nk` (the development operator, the control issuer
//! `trellis up`'s host trusts), `keys/dev.user.nk` (the CLI's own control
//! key, vouched for by that operator),
//! `keys/<name>.actor.nk` and `keys/<name>.provider.nk` (one key per actor
//! or provider name, so their ids stay the same from build to build), and
//! `artifacts/` (copies of the files the CLI asks the development host to
//! start; `trellis up`'s host starts artifacts only from the home).

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
    let read = || {
        read_key(&path.to_string_lossy(), kind)
            .with_context(|| format!("reading {}", path.display()))
    };
    if path.exists() {
        return read();
    }
    // Several commands may make the same key at once: each writes its own
    // file, and the first to link it into place wins; the others read it.
    let pair = generate(kind);
    let partial = dir.join(format!(".{name}.{kind}.{}.partial", std::process::id()));
    write_seed(&partial, &pair.seed()?)?;
    let placed = std::fs::hard_link(&partial, &path);
    let _ = std::fs::remove_file(&partial);
    match placed {
        Ok(()) => {
            tracing::info!("created {} key {}", kind.as_str(), path.display());
            Ok(pair)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
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

/// The development operator (`{home}/keys/dev.operator.nk`), the control
/// issuer of `trellis up`'s host, created on first use.
///
/// # Errors
///
/// As [`key_in`].
pub fn operator() -> anyhow::Result<KeyPair> {
    key_in(&keys_dir(), DEV_KEY_NAME, KeyKind::Operator)
}

/// How long the development control credential the CLI issues itself
/// lasts. Defaults to 1 h; a new one is issued on every run.
pub const DEV_CTL_CREDENTIAL_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// A signer of control requests for `lattice` with the CLI's development
/// user key (`{home}/keys/dev.user.nk`), presenting a full-scope
/// credential issued by the development operator. Both keys are created on
/// first use.
///
/// # Errors
///
/// As [`key_in`].
pub fn ctl_signer(lattice: &str) -> anyhow::Result<trellis_claims::invocation::InvocationSigner> {
    ctl_signer_for(lattice, DEV_CTL_CREDENTIAL_TTL)
}

/// How long the development control credential of a wadm run by
/// `trellis up` or `trellis wadm` (without `--ctl-key`) lasts: a long-lived
/// service, it is never re-issued while it runs. Defaults to 365 days.
pub const DEV_WADM_CREDENTIAL_TTL: std::time::Duration =
    std::time::Duration::from_secs(365 * 24 * 3600);

/// As [`ctl_signer`], with a credential lasting `ttl`.
///
/// # Errors
///
/// As [`key_in`].
pub fn ctl_signer_for(
    lattice: &str,
    ttl: std::time::Duration,
) -> anyhow::Result<trellis_claims::invocation::InvocationSigner> {
    use trellis_claims::invocation::{
        CtlScope, DEFAULT_TOKEN_TTL, InvocationSigner, issue_control_credential,
    };
    let user = key_in(&keys_dir(), DEV_KEY_NAME, KeyKind::User)?;
    let credential = issue_control_credential(
        &operator()?,
        &user.public_key(),
        lattice,
        CtlScope::Full,
        ttl,
    )?;
    Ok(InvocationSigner::new(user, credential, DEFAULT_TOKEN_TTL)?)
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

/// The directory of staged artifacts: `{home}/artifacts`.
pub fn artifacts_dir() -> PathBuf {
    home().join("artifacts")
}

/// The path to send a development host for the local file `reference`:
/// the file itself when it already lies in the development home, else a
/// copy in [`artifacts_dir`] named by the first 16 hex digits of its
/// SHA-256 and its file name (made once). `trellis up`'s host starts
/// artifacts only from its home, so this is how a file anywhere on the
/// developer's machine reaches it.
///
/// # Errors
///
/// If the file cannot be read or copied.
pub fn stage(reference: &str) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let path = std::fs::canonicalize(reference).with_context(|| format!("reading {reference}"))?;
    let home = std::fs::canonicalize(home()).unwrap_or_else(|_| home());
    if path.starts_with(&home) {
        return Ok(path.to_string_lossy().into_owned());
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let digest = format!("{:x}", sha2::Sha256::digest(&bytes));
    let name = path
        .file_name()
        .map_or_else(|| "artifact".into(), |n| n.to_string_lossy().into_owned());
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let staged = dir.join(format!("{}-{name}", &digest[..16]));
    if !staged.is_file() {
        let partial = dir.join(format!(".{}-{name}.partial", &digest[..16]));
        std::fs::write(&partial, &bytes)
            .with_context(|| format!("writing {}", partial.display()))?;
        // Keep the mode, so a staged provider binary stays executable.
        if let Ok(metadata) = std::fs::metadata(&path) {
            let _ = std::fs::set_permissions(&partial, metadata.permissions());
        }
        std::fs::rename(&partial, &staged)
            .with_context(|| format!("writing {}", staged.display()))?;
    }
    Ok(staged.to_string_lossy().into_owned())
}
