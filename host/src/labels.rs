//! Host labels: key-value pairs that describe a host, used by wadm's
//! spreadscalers and daemonscalers to choose where actors run.
//!
//! Labels come from three places, later ones overriding earlier ones:
//!
//! 1. built-ins: `hostcore.arch`, `hostcore.os`, `hostcore.osfamily` and
//!    `hostcore.version` (the same keys wasmCloud hosts publish);
//! 2. environment variables `TRELLIS_LABEL_<key>=<value>`;
//! 3. `--label key=value` flags.
//!
//! Built-in keys cannot be overridden.

use std::collections::BTreeMap;

/// Prefix of environment variables that set labels.
pub const ENV_PREFIX: &str = "TRELLIS_LABEL_";

/// Prefix reserved for built-in labels.
pub const BUILTIN_PREFIX: &str = "hostcore.";

/// Longest label key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// Longest label value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Most labels a host carries, built-ins included, a count. Defaults to
/// 64: heartbeats and inventories carry them all.
pub const MAX_LABELS: usize = 64;

/// A label that cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// A `key=value` argument has no `=`.
    #[error("label {0:?} is not of the form key=value")]
    NotKeyValue(String),
    /// The key is empty, too long, or has characters outside
    /// `[A-Za-z0-9._-]`.
    #[error("label key {0:?} must be 1 to 128 ASCII letters, digits, '.', '_' or '-'")]
    InvalidKey(String),
    /// The value is longer than [`MAX_VALUE_BYTES`] or holds control
    /// characters.
    #[error("label value for {0:?} is longer than 1024 bytes or holds control characters")]
    InvalidValue(String),
    /// The key starts with [`BUILTIN_PREFIX`].
    #[error("label key {0:?} is reserved for built-in labels")]
    Reserved(String),
    /// The host already carries [`MAX_LABELS`] labels and this key is not
    /// one of them.
    #[error("label {0:?} would be more than the 64 labels a host may carry")]
    TooMany(String),
}

/// Inserts one checked label into `labels`, refusing a new key once
/// [`MAX_LABELS`] are set; an existing key is replaced.
///
/// # Errors
///
/// What [`validate`] returns, or [`LabelError::TooMany`].
pub fn insert(
    labels: &mut BTreeMap<String, String>,
    key: &str,
    value: &str,
) -> Result<(), LabelError> {
    validate(key, value)?;
    if !labels.contains_key(key) && labels.len() >= MAX_LABELS {
        return Err(LabelError::TooMany(key.to_owned()));
    }
    labels.insert(key.to_owned(), value.to_owned());
    Ok(())
}

/// Checks one label.
///
/// # Errors
///
/// [`LabelError::InvalidKey`], [`LabelError::InvalidValue`] or
/// [`LabelError::Reserved`].
pub fn validate(key: &str, value: &str) -> Result<(), LabelError> {
    let key_ok = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !key_ok {
        return Err(LabelError::InvalidKey(key.to_owned()));
    }
    if key.starts_with(BUILTIN_PREFIX) {
        return Err(LabelError::Reserved(key.to_owned()));
    }
    if value.len() > MAX_VALUE_BYTES || value.chars().any(char::is_control) {
        return Err(LabelError::InvalidValue(key.to_owned()));
    }
    Ok(())
}

/// Parses a `key=value` argument.
///
/// # Errors
///
/// [`LabelError::NotKeyValue`] without `=`, and whatever [`validate`] returns.
///
/// # Examples
///
/// ```
/// use trellis_host::labels::parse_flag;
///
/// assert_eq!(parse_flag("zone=eu-1").unwrap(), ("zone".to_owned(), "eu-1".to_owned()));
/// assert!(parse_flag("zone").is_err());
/// assert!(parse_flag("hostcore.os=plan9").is_err());
/// ```
pub fn parse_flag(arg: &str) -> Result<(String, String), LabelError> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| LabelError::NotKeyValue(arg.to_owned()))?;
    validate(key, value)?;
    Ok((key.to_owned(), value.to_owned()))
}

/// The built-in labels of this host.
pub fn builtin() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "hostcore.arch".to_owned(),
            std::env::consts::ARCH.to_owned(),
        ),
        ("hostcore.os".to_owned(), std::env::consts::OS.to_owned()),
        (
            "hostcore.osfamily".to_owned(),
            std::env::consts::FAMILY.to_owned(),
        ),
        (
            "hostcore.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ])
}

/// Computes a host's labels from the environment variables `env` (pairs of
/// name and value, e.g. `std::env::vars()`) and the `--label` flags, on top
/// of the built-ins. Label keys from the environment are lowercased, since
/// environment variable names are conventionally uppercase.
///
/// # Errors
///
/// The first invalid label, from the environment or the flags.
///
/// # Examples
///
/// ```
/// use trellis_host::labels::resolve;
///
/// let env = [("TRELLIS_LABEL_ZONE".to_owned(), "eu-1".to_owned()), ("HOME".to_owned(), "/root".to_owned())];
/// let labels = resolve(env, ["gpu=false".to_owned()]).unwrap();
/// assert_eq!(labels["zone"], "eu-1");
/// assert_eq!(labels["gpu"], "false");
/// assert_eq!(labels["hostcore.os"], std::env::consts::OS);
/// assert!(!labels.contains_key("HOME"));
/// ```
pub fn resolve(
    env: impl IntoIterator<Item = (String, String)>,
    flags: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, String>, LabelError> {
    let mut labels = builtin();
    for (name, value) in env {
        if let Some(key) = name.strip_prefix(ENV_PREFIX) {
            let key = key.to_ascii_lowercase();
            validate(&key, &value)?;
            labels.insert(key, value);
        }
    }
    for flag in flags {
        let (key, value) = parse_flag(&flag)?;
        labels.insert(key, value);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_environment() {
        let env = [("TRELLIS_LABEL_zone".to_owned(), "a".to_owned())];
        let labels = resolve(env, ["zone=b".to_owned()]).unwrap();
        assert_eq!(labels["zone"], "b");
    }

    #[test]
    fn built_in_labels_cannot_be_overridden() {
        let env = [("TRELLIS_LABEL_HOSTCORE.OS".to_owned(), "x".to_owned())];
        assert!(matches!(resolve(env, []), Err(LabelError::Reserved(_))));
        assert!(matches!(
            resolve([], ["hostcore.arch=x".to_owned()]),
            Err(LabelError::Reserved(_))
        ));
    }

    #[test]
    fn hostile_labels_are_refused() {
        assert!(matches!(
            parse_flag("a b=c"),
            Err(LabelError::InvalidKey(_))
        ));
        assert!(matches!(parse_flag("=c"), Err(LabelError::InvalidKey(_))));
        assert!(matches!(
            parse_flag("k=line\nbreak"),
            Err(LabelError::InvalidValue(_))
        ));
        assert!(matches!(
            parse_flag(&format!("k={}", "v".repeat(1025))),
            Err(LabelError::InvalidValue(_))
        ));
    }
}
