//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free loopback port, storing into the
//! fixture's private directory, plain HTTP, optionally with basic auth.

use std::path::{Path, PathBuf};

use crate::process::{Recipe, ServerProcess};

/// The registry binary: `TRELLIS_TEST_REGISTRY`, else
/// `/usr/bin/docker-registry`.
fn binary() -> PathBuf {
    std::env::var_os("TRELLIS_TEST_REGISTRY")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/docker-registry"), PathBuf::from)
}

const CONFIG: &str = "version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: /nonexistent
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
";

const CONFIG_WITH_AUTH: &str = "version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: /nonexistent
http:
  addr: 127.0.0.1:0
auth:
  htpasswd:
    realm: trellis-test
    path: /nonexistent
";

/// The settings that depend on the port and directory, as the registry's
/// environment overrides.
fn env(port: u16, dir: &Path) -> Vec<(String, String)> {
    vec![
        ("REGISTRY_HTTP_ADDR".into(), format!("127.0.0.1:{port}")),
        (
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY".into(),
            dir.join("data").display().to_string(),
        ),
        ("OTEL_TRACES_EXPORTER".into(), "none".into()),
    ]
}

/// [`env`], and where the htpasswd file is.
fn env_with_auth(port: u16, dir: &Path) -> Vec<(String, String)> {
    let mut all = env(port, dir);
    all.push((
        "REGISTRY_AUTH_HTPASSWD_PATH".into(),
        dir.join("htpasswd").display().to_string(),
    ));
    all
}

/// A registry process owned by a test; killed on drop.
pub struct Registry(ServerProcess);

impl Registry {
    /// Starts an open registry (no authentication).
    ///
    /// # Panics
    ///
    /// If `docker-registry` is not installed or does not listen in time.
    pub fn start() -> Self {
        Self(ServerProcess::start(Recipe {
            program: binary(),
            args: |_, dir| vec!["serve".into(), dir.join("config.yml").display().to_string()],
            install_hint: "install it (apt-get install docker-registry) or set TRELLIS_TEST_REGISTRY",
            files: vec![("config.yml", CONFIG.to_owned())],
            env,
        }))
    }

    /// Starts a registry that accepts only `user` with `password` (HTTP
    /// basic authentication, bcrypt htpasswd).
    ///
    /// # Panics
    ///
    /// As [`Registry::start`].
    pub fn start_with_user(user: &str, password: &str) -> Self {
        let hash = bcrypt::hash(password, 5).unwrap();
        Self(ServerProcess::start(Recipe {
            program: binary(),
            args: |_, dir| vec!["serve".into(), dir.join("config.yml").display().to_string()],
            install_hint: "install it (apt-get install docker-registry) or set TRELLIS_TEST_REGISTRY",
            files: vec![
                ("config.yml", CONFIG_WITH_AUTH.to_owned()),
                ("htpasswd", format!("{user}:{hash}\n")),
            ],
            env: env_with_auth,
        }))
    }

    /// The registry's address as references name it: `127.0.0.1:{port}`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.0.port())
    }

    /// The server's private directory (its storage is under `data/`).
    pub fn dir(&self) -> &Path {
        self.0.dir()
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the registry.
    pub fn signal(&self, signal: &str) {
        self.0.signal(signal);
    }
}
