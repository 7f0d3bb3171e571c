//! Test fixtures shared by the Trellis crates.
//!
//! - [`NatsServer`]: a real `nats-server` with JetStream, started by the test
//!   on a free loopback port with its own temporary store directory, killed
//!   on drop, and restartable on the same port; and [`RedisServer`]. Both
//!   are recipes for [`process::ServerProcess`], the one child-process
//!   fixture.
//! - [`host::TestLattice`]: a nats-server, keys and hosts for one test.
//! - [`lattice::TestClient`]: sends signed invocations to actors.
//! - [`http`]: real HTTP requests and polling until a listener answers.
//! - [`example_component`]: an actor from `actors-examples/`, built once per
//!   test process for `wasm32-wasip2`.
//!
//! Fixtures panic on failure: they run only inside tests, where a panic is
//! a failed test with its message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod host;
pub mod http;
pub mod lattice;
pub mod process;
pub mod registry;
pub mod up;

pub use process::{Recipe, RedisServer, ServerProcess};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Environment variable naming the `nats-server` binary. Defaults to
/// `nats-server` on `PATH`, then `/usr/sbin/nats-server`.
pub const NATS_SERVER_ENV: &str = "TRELLIS_TEST_NATS_SERVER";

/// How long a started server may take to accept connections.
pub const NATS_START_TIMEOUT: Duration = process::START_TIMEOUT;

/// The `nats-server` binary to run.
///
/// # Panics
///
/// If none is found, with an instruction to install it.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var(NATS_SERVER_ENV)
        && !path.is_empty()
    {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
        .expect("nats-server not found: install it (apt-get install nats-server) or set TRELLIS_TEST_NATS_SERVER")
}

/// `len` bytes of pseudo-random garbage (xorshift64, fixed seed, so the
/// same every run), rounded down to a multiple of 8.
pub fn garbage(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server` with JetStream owned by one test: a free loopback port,
/// its own store directory, killed on drop, restartable on the same port
/// and store.
pub struct NatsServer(ServerProcess);

impl NatsServer {
    /// Starts a server with JetStream on a free port.
    ///
    /// # Panics
    ///
    /// If nats-server is missing or does not listen within
    /// [`NATS_START_TIMEOUT`].
    pub fn start() -> Self {
        Self::start_with_config("")
    }

    /// Starts a server with JetStream on a free port, with `config` (the
    /// nats-server configuration format, e.g. `authorization { … }`) as
    /// its configuration file.
    ///
    /// # Panics
    ///
    /// As [`NatsServer::start`].
    pub fn start_with_config(config: &str) -> Self {
        Self(ServerProcess::start(Recipe {
            program: nats_server_binary(),
            args: |port, store| {
                let (port, store) = (port.to_string(), store.display().to_string());
                let config = format!("{store}/nats.conf");
                [
                    "-c",
                    &config,
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-js",
                    "-sd",
                    &store,
                ]
                .map(str::to_owned)
                .to_vec()
            },
            install_hint: "install it (apt-get install nats-server) or set TRELLIS_TEST_NATS_SERVER",
            files: vec![("nats.conf", config.to_owned())],
            env: |_, _| Vec::new(),
        }))
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port())
    }
}

impl std::ops::Deref for NatsServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl std::ops::DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}

/// The nats-server configuration block of `docs/security.md` (the one
/// ```` ```conf ```` block), as an operator would copy it: one user per
/// role, with the passwords written there.
///
/// # Panics
///
/// If the document has no such block.
pub fn documented_nats_config() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/security.md")).unwrap();
    let start = doc
        .find("```conf\n")
        .expect("docs/security.md has a conf block")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

/// The machine's Redis: `TRELLIS_TEST_REDIS_URL`, else
/// `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("TRELLIS_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// NATS user-and-password authentication as `user`.
pub fn nats_user(user: &str, password: &str) -> trellis_protocol::provider::NatsAuth {
    trellis_protocol::provider::NatsAuth::UserPassword {
        user: user.to_owned(),
        password: password.to_owned(),
    }
}

/// The root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The example actor `name` (a crate of `actors-examples/`), built for
/// `wasm32-wasip2` in release mode. The whole examples workspace is built
/// once per test process.
///
/// # Panics
///
/// If the build fails, for example without the `wasm32-wasip2` target.
pub fn example_component(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let examples = repo_root().join("actors-examples");
        let target_dir = examples.join("target");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .current_dir(&examples)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .expect("running cargo to build actors-examples");
        assert!(
            status.success(),
            "building actors-examples failed; is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
        );
        target_dir.join("wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}
