//! Reading numbers from a link definition's `config`, one way for every
//! provider.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// A link configuration value that is not what its key takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` is {value:?}; it must be a whole number from {min} to {max}")]
pub struct LinkConfigError {
    /// The configuration key.
    pub key: String,
    /// The value found.
    pub value: String,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
}

/// Reads `key` from a link's `config` as a whole number within `range`,
/// ignoring surrounding white space. A missing or blank value gives
/// `default`.
///
/// # Errors
///
/// [`LinkConfigError`] naming the key, the value and the range, for a value
/// that is not a whole number or lies outside `range`.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use trellis_provider_sdk::parse_number;
///
/// let config = BTreeMap::from([("timeout_ms".to_owned(), " 150 ".to_owned())]);
/// assert_eq!(parse_number(&config, "timeout_ms", 2_000, 1..=600_000).unwrap(), 150);
/// assert_eq!(parse_number(&config, "pool_size", 8, 1..=64).unwrap(), 8);
///
/// let bad = BTreeMap::from([("timeout_ms".to_owned(), "0".to_owned())]);
/// assert_eq!(parse_number(&bad, "timeout_ms", 2_000, 1..=600_000).unwrap_err().key, "timeout_ms");
/// ```
pub fn parse_number(
    config: &BTreeMap<String, String>,
    key: &str,
    default: u64,
    range: RangeInclusive<u64>,
) -> Result<u64, LinkConfigError> {
    let Some(raw) = config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    raw.parse::<u64>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| LinkConfigError {
            key: key.to_owned(),
            value: raw.to_owned(),
            min: *range.start(),
            max: *range.end(),
        })
}
