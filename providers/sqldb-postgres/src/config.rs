//! A link's configuration: which database, how, and with what limits.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tokio_postgres::config::Host;

/// Link config key: the PostgreSQL connection string (required).
pub const URL_KEY: &str = "url";
/// Link config key: `disable` (default) or `require`.
pub const TLS_KEY: &str = "tls";
/// Link config key: most connections in the link's pool.
pub const POOL_SIZE_KEY: &str = "pool_size";
/// Link config key: PostgreSQL `statement_timeout`, in milliseconds.
pub const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

/// Connections per pool unless `pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Largest accepted `pool_size`.
pub const MAX_POOL_SIZE: usize = 256;
/// `statement_timeout_ms` unless the link says otherwise: 5 s.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5_000;
/// Largest accepted `statement_timeout_ms`: one hour.
pub const MAX_STATEMENT_TIMEOUT_MS: u64 = 3_600_000;

/// How the provider talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plain TCP (or a Unix socket).
    Disable,
    /// TLS, with the server's certificate verified against the Mozilla root
    /// certificates (webpki-roots) and its name checked against the host.
    Require,
}

/// A link's validated configuration. Links with equal configurations share
/// one pool.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LinkConfig {
    /// The connection string, as given.
    pub url: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// Most connections in the pool.
    pub pool_size: usize,
    /// The statement timeout, in milliseconds.
    pub statement_timeout_ms: u64,
}

impl fmt::Debug for LinkConfig {
    // The URL may hold a password: show only where it points.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkConfig")
            .field("database", &self.label())
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

impl LinkConfig {
    /// Reads and checks a link's configuration. Keys other than the four
    /// documented ones are ignored (actors read their link's configuration
    /// too, and may keep their own keys there).
    ///
    /// # Errors
    ///
    /// A message naming the key at fault. It never repeats the URL, which
    /// may hold a password.
    pub fn parse(config: &BTreeMap<String, String>) -> Result<Self, String> {
        let url = config
            .get(URL_KEY)
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                format!("the link config has no `{URL_KEY}` (a PostgreSQL connection string)")
            })?;
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| format!("`{URL_KEY}` is not a valid PostgreSQL connection string: {e}"))?;
        let tls = match config
            .get(TLS_KEY)
            .map(|t| t.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "disable") => TlsMode::Disable,
            Some("require") => TlsMode::Require,
            Some(other) => {
                return Err(format!(
                    "`{TLS_KEY}` is {other:?}; it must be \"disable\" or \"require\""
                ));
            }
        };
        let pool_size = number(
            config,
            POOL_SIZE_KEY,
            DEFAULT_POOL_SIZE as u64,
            1,
            MAX_POOL_SIZE as u64,
        )?;
        let statement_timeout_ms = number(
            config,
            STATEMENT_TIMEOUT_KEY,
            DEFAULT_STATEMENT_TIMEOUT_MS,
            1,
            MAX_STATEMENT_TIMEOUT_MS,
        )?;
        Ok(Self {
            url,
            tls,
            pool_size: usize::try_from(pool_size).unwrap_or(DEFAULT_POOL_SIZE),
            statement_timeout_ms,
        })
    }

    /// The statement timeout.
    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.statement_timeout_ms)
    }

    /// Where the URL points, without credentials: `user@host:port/dbname`.
    pub fn label(&self) -> String {
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(c) => {
                let hosts: Vec<String> = c
                    .get_hosts()
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let host = match h {
                            Host::Tcp(name) => name.clone(),
                            #[cfg(unix)]
                            Host::Unix(path) => path.display().to_string(),
                        };
                        match c.get_ports().get(i).or_else(|| c.get_ports().first()) {
                            Some(port) => format!("{host}:{port}"),
                            None => format!("{host}:5432"),
                        }
                    })
                    .collect();
                format!(
                    "{}@{}/{}",
                    c.get_user().unwrap_or("?"),
                    hosts.join(","),
                    c.get_dbname()
                        .unwrap_or_else(|| c.get_user().unwrap_or("?"))
                )
            }
            Err(_) => "(invalid url)".to_owned(),
        }
    }
}

fn number(
    config: &BTreeMap<String, String>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    let Some(raw) = config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    raw.parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("`{key}` is {raw:?}; it must be a whole number from {min} to {max}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_the_url_is_required_and_the_rest_has_defaults() {
        let c = LinkConfig::parse(&config(&[
            ("url", "postgres://app:secret@db.example:5433/shop"),
            ("greeting", "an actor's own key"),
        ]))
        .unwrap();
        assert_eq!(c.tls, TlsMode::Disable);
        assert_eq!(c.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(c.statement_timeout_ms, DEFAULT_STATEMENT_TIMEOUT_MS);
        assert_eq!(c.label(), "app@db.example:5433/shop");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn every_key_is_validated() {
        let err = |pairs: &[(&str, &str)]| LinkConfig::parse(&config(pairs)).unwrap_err();
        assert!(err(&[]).contains("no `url`"));
        assert!(err(&[("url", "postgres://u:p@h/d?port=x")]).contains("not a valid"));
        assert!(err(&[("url", "postgres://h/d"), ("tls", "prefer")]).contains("`tls`"));
        assert!(err(&[("url", "postgres://h/d"), ("pool_size", "0")]).contains("`pool_size`"));
        assert!(
            err(&[("url", "postgres://h/d"), ("statement_timeout_ms", "soon")])
                .contains("`statement_timeout_ms`")
        );
        let c = LinkConfig::parse(&config(&[
            ("url", "host=localhost user=me dbname=db"),
            ("tls", "Require"),
            ("pool_size", "2"),
            ("statement_timeout_ms", "250"),
        ]))
        .unwrap();
        assert_eq!(
            (c.tls, c.pool_size, c.statement_timeout()),
            (TlsMode::Require, 2, Duration::from_millis(250))
        );
    }
}
