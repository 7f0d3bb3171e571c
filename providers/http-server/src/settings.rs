//! The settings of one link, read from its configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Link configuration key: the address to listen on.
pub const ADDRESS_KEY: &str = "address";
/// Link configuration key: the Host header the link answers (port ignored).
pub const HOST_KEY: &str = "host";
/// Link configuration key: the path prefix the link answers.
pub const PATH_PREFIX_KEY: &str = "path_prefix";
/// Link configuration key: the largest request body accepted, in bytes.
pub const MAX_BODY_BYTES_KEY: &str = "max_body_bytes";
/// Link configuration key: how long the actor may take to answer, in ms.
pub const TIMEOUT_MS_KEY: &str = "timeout_ms";

/// Every link configuration key this provider reads.
pub const KEYS: [&str; 5] = [
    ADDRESS_KEY,
    HOST_KEY,
    PATH_PREFIX_KEY,
    MAX_BODY_BYTES_KEY,
    TIMEOUT_MS_KEY,
];

/// Settings of one link. Every default is in [`Default`]; a link overrides
/// them with the configuration keys of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Address to listen on (`address`). Defaults to `127.0.0.1:8080`.
    pub address: SocketAddr,
    /// Host the link answers (`host`), lowercase and without a port; `None`
    /// answers every host. Defaults to `None`.
    pub host: Option<String>,
    /// Path prefix the link answers (`path_prefix`), matched by whole path
    /// segments. Defaults to `/`, every path.
    pub path_prefix: String,
    /// Largest request body, in bytes (`max_body_bytes`); larger requests
    /// get `413`. Defaults to 10 MiB.
    pub max_body_bytes: usize,
    /// How long the actor may take to answer, and the request body to
    /// arrive (`timeout_ms`); a slower actor gives `504`. Defaults to 30 s.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 8080)),
            host: None,
            path_prefix: "/".to_owned(),
            max_body_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Settings {
    /// The defaults overridden by `config`, a link's configuration. Keys
    /// this provider does not read are ignored (they may be meant for the
    /// actor).
    ///
    /// # Errors
    ///
    /// A message naming the key whose value is invalid.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut settings = Self::default();
        let value = |key: &str| config.get(key).map(|v| v.trim());
        if let Some(address) = value(ADDRESS_KEY) {
            settings.address = address.parse().map_err(|e| {
                format!("{ADDRESS_KEY} {address:?} is not an IP address and port: {e}")
            })?;
        }
        if let Some(host) = value(HOST_KEY).filter(|h| !h.is_empty()) {
            settings.host =
                Some(normalize_host(host).ok_or_else(|| {
                    format!("{HOST_KEY} {host:?} is not a host name or IP address")
                })?);
        }
        if let Some(prefix) = value(PATH_PREFIX_KEY).filter(|p| !p.is_empty()) {
            settings.path_prefix = normalize_prefix(prefix).ok_or_else(|| {
                format!("{PATH_PREFIX_KEY} {prefix:?} must start with / and hold no query")
            })?;
        }
        let number = |key: &str, default: u64, min: u64| {
            trellis_provider_sdk::parse_number(config, key, default, min..=u64::MAX)
                .map_err(|e| e.to_string())
        };
        let max_body = number(MAX_BODY_BYTES_KEY, settings.max_body_bytes as u64, 0)?;
        settings.max_body_bytes = usize::try_from(max_body).unwrap_or(usize::MAX);
        let timeout_ms = number(TIMEOUT_MS_KEY, settings.timeout.as_millis() as u64, 1)?;
        settings.timeout = Duration::from_millis(timeout_ms);
        Ok(settings)
    }
}

/// Provider configuration key (in the provider's start configuration,
/// not a link's): most connections open at once on each listener.
pub const MAX_CONNECTIONS_KEY: &str = "max_connections";

/// Settings of the whole provider process, read from the configuration of
/// its start request. Every default is in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Most connections open at once on each listener
    /// (`max_connections`), a count. A connection beyond it waits in the
    /// listen backlog until one closes. Defaults to 4,096.
    pub max_connections: usize,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            max_connections: 4_096,
        }
    }
}

impl ProviderSettings {
    /// The defaults overridden by `config`, the provider's start
    /// configuration (`HostData::config`).
    ///
    /// # Errors
    ///
    /// The invalid key and value, with the accepted range (1 to 1,000,000
    /// connections).
    pub fn from_config(
        config: &BTreeMap<String, String>,
    ) -> Result<Self, trellis_provider_sdk::LinkConfigError> {
        let defaults = Self::default();
        let max = trellis_provider_sdk::parse_number(
            config,
            MAX_CONNECTIONS_KEY,
            defaults.max_connections as u64,
            1..=1_000_000,
        )?;
        Ok(Self {
            max_connections: usize::try_from(max).unwrap_or(defaults.max_connections),
        })
    }
}

/// The host part of a Host header or authority, lowercase, without its port
/// or a trailing dot; `None` when it is not a valid authority.
pub fn normalize_host(authority: &str) -> Option<String> {
    let authority: http::uri::Authority = authority.trim().parse().ok()?;
    let host = authority.host().trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A path prefix with a leading `/` and no trailing one (except `/` itself).
fn normalize_prefix(prefix: &str) -> Option<String> {
    if !prefix.starts_with('/') || prefix.contains(['?', '#']) {
        return None;
    }
    let trimmed = prefix.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn provider_settings_default_and_override() {
        assert_eq!(
            ProviderSettings::from_config(&config(&[])).unwrap(),
            ProviderSettings::default()
        );
        let set = ProviderSettings::from_config(&config(&[("max_connections", "8")])).unwrap();
        assert_eq!(set.max_connections, 8);
        let refused = ProviderSettings::from_config(&config(&[("max_connections", "0")]));
        assert_eq!(refused.unwrap_err().key, MAX_CONNECTIONS_KEY);
    }

    #[test]
    fn an_empty_config_gives_the_defaults() {
        let settings = Settings::from_config(&BTreeMap::new()).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.address.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(settings.timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_key_overrides_its_default() {
        let settings = Settings::from_config(&config(&[
            ("address", "0.0.0.0:9000"),
            ("host", "Example.COM:8443"),
            ("path_prefix", "/api/"),
            ("max_body_bytes", "1024"),
            ("timeout_ms", "500"),
            ("something_for_the_actor", "ignored"),
        ]))
        .unwrap();
        assert_eq!(settings.address.to_string(), "0.0.0.0:9000");
        assert_eq!(settings.host.as_deref(), Some("example.com"));
        assert_eq!(settings.path_prefix, "/api");
        assert_eq!(settings.max_body_bytes, 1024);
        assert_eq!(settings.timeout, Duration::from_millis(500));
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (key, value) in [
            ("address", "localhost"),
            ("host", "a b"),
            ("path_prefix", "api"),
            ("path_prefix", "/api?x=1"),
            ("max_body_bytes", "-1"),
            ("timeout_ms", "0"),
            ("timeout_ms", "soon"),
        ] {
            let err = Settings::from_config(&config(&[(key, value)])).unwrap_err();
            assert!(err.contains(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn hosts_are_compared_without_port_case_or_trailing_dot() {
        assert_eq!(
            normalize_host("API.example.com.:80").unwrap(),
            "api.example.com"
        );
        assert_eq!(normalize_host("[::1]:8080").unwrap(), "[::1]");
        assert_eq!(normalize_host(""), None);
    }
}
