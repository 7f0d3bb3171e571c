//! A local lattice started with `trellis up`, shared by the CLI's
//! end-to-end tests and the benchmark harness: signed provider archives
//! made with `trellis par create`, then `trellis -o json up` on a free NATS
//! port, ready once it prints its one-line readiness JSON. Killed on drop.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The providers every launch packages: name and contract.
pub const PROVIDERS: [(&str, &str); 3] = [
    ("http-server", "wasi:http"),
    ("keyvalue-redis", "wasi:keyvalue"),
    ("sqldb-postgres", "trellis:sqldb"),
];

/// A running `trellis up`.
pub struct UpLattice {
    child: Child,
    /// Its readiness document (`nats_url`, `host_id`, `providers`, …).
    pub ready: serde_json::Value,
    /// Its NATS URL.
    pub nats_url: String,
    /// Its development home.
    home: PathBuf,
}

/// How to launch `trellis up`.
pub struct Launch<'a> {
    /// The `trellis` binary.
    pub trellis: &'a Path,
    /// Directory of the provider binaries.
    pub bin_dir: &'a Path,
    /// The development home (`TRELLIS_HOME`); archives and `up.log` go there.
    pub home: &'a Path,
    /// Extra environment for `trellis up` (e.g. `TRELLIS_LOG`).
    pub env: &'a [(&'a str, &'a str)],
    /// How long to wait for readiness.
    pub timeout: Duration,
    /// Whether `trellis up` starts the packed providers itself; without,
    /// the archives are only packed (`{home}/{name}.par.gz`), e.g. for wadm
    /// to start them from a manifest.
    pub start_providers: bool,
}

fn failure(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// A `trellis` command with no `TRELLIS_*` setting of the caller's shell,
/// and `TRELLIS_HOME` set to `home`.
pub fn trellis_command(trellis: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(trellis);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRELLIS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("TRELLIS_HOME", home);
    cmd
}

impl UpLattice {
    /// Packages [`PROVIDERS`] and starts `trellis up` with them on a free
    /// NATS port, waiting for its readiness line.
    ///
    /// # Errors
    ///
    /// An I/O error when a command cannot run, a `par create` fails, or
    /// `trellis up` exits or stays silent past the timeout (its log is in
    /// `home/up.log`).
    pub fn start(launch: &Launch<'_>) -> std::io::Result<Self> {
        let mut archives: Vec<PathBuf> = Vec::new();
        for (name, contract) in PROVIDERS {
            let archive = launch.home.join(format!("{name}.par.gz"));
            let status = trellis_command(launch.trellis, launch.home)
                .args(["par", "create", "--name", name, "--contract", contract])
                .arg("--binary")
                .arg(launch.bin_dir.join(name))
                .arg("-d")
                .arg(&archive)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                return Err(failure(format!("trellis par create {name} failed")));
            }
            archives.push(archive);
        }
        let port = crate::free_port();
        let mut cmd = trellis_command(launch.trellis, launch.home);
        cmd.envs(launch.env.iter().copied()).args([
            "-o",
            "json",
            "up",
            "--nats-port",
            &port.to_string(),
        ]);
        if launch.start_providers {
            for archive in &archives {
                cmd.arg("--provider").arg(archive);
            }
        }
        let log = std::fs::File::create(launch.home.join("up.log"))?;
        let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failure("no stdout".into()))?;
        // `trellis -o json up` prints one line of JSON once every provider
        // answers its health check.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = match rx.recv_timeout(launch.timeout) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(launch.home.join("up.log")).unwrap_or_default();
                return Err(failure(format!(
                    "trellis up was not ready within {:?} ({outcome:?}); its log:\n{log}",
                    launch.timeout
                )));
            }
        };
        let ready: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| failure(format!("bad readiness line {line:?}: {e}")))?;
        let nats_url = ready["nats_url"].as_str().unwrap_or_default().to_owned();
        Ok(Self {
            child,
            ready,
            nats_url,
            home: launch.home.to_owned(),
        })
    }

    /// A signer of control requests as the CLI makes them: the development
    /// user key, with a full-scope credential from the development
    /// operator, both from the development home `trellis up` created.
    ///
    /// # Errors
    ///
    /// An I/O error if the keys cannot be read.
    pub fn ctl_signer(&self) -> std::io::Result<trellis_claims::invocation::InvocationSigner> {
        use trellis_claims::invocation::{CtlScope, InvocationSigner, issue_control_credential};
        use trellis_claims::keys::{KeyKind, parse_seed};
        let key = |kind: KeyKind| -> std::io::Result<trellis_claims::keys::KeyPair> {
            let path = self.home.join("keys").join(format!("dev.{kind}.nk"));
            let seed = std::fs::read_to_string(&path)?;
            parse_seed(&seed, kind).map_err(std::io::Error::other)
        };
        let user = key(KeyKind::User)?;
        let lattice = self.ready["lattice"].as_str().unwrap_or("default");
        let credential = issue_control_credential(
            &key(KeyKind::Operator)?,
            &user.public_key(),
            lattice,
            CtlScope::Full,
            Duration::from_secs(3600),
        )
        .map_err(std::io::Error::other)?;
        InvocationSigner::new(user, credential, Duration::from_secs(30))
            .map_err(std::io::Error::other)
    }

    /// The id of the provider named `name` in the readiness document.
    pub fn provider_id(&self, name: &str) -> Option<String> {
        self.ready["providers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)?["id"]
            .as_str()
            .map(str::to_owned)
    }

    /// The process id of `trellis up`.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The process, e.g. to signal it.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for UpLattice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
