//! One fixture for every server a test runs as a child process.
//!
//! [`ServerProcess`] owns a child that listens on a free loopback port, with
//! a private temporary directory. It waits until the port accepts
//! connections, can be killed (as a crash would), stopped and continued with
//! signals, and started again on the same port and directory; it is killed
//! on drop. [`NatsServer`](crate::NatsServer) and [`RedisServer`] are thin
//! recipes over it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to accept connections. Defaults to
/// 10 s.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How a server is launched: the program, and its arguments for a port and
/// a private directory.
pub struct Recipe {
    /// The binary to run.
    pub program: PathBuf,
    /// The arguments, given the port and the private directory.
    pub args: fn(port: u16, dir: &Path) -> Vec<String>,
    /// What to tell the user when the program cannot be started.
    pub install_hint: &'static str,
    /// Files written into the private directory before the first start:
    /// (file name, contents), e.g. a configuration file.
    pub files: Vec<(&'static str, String)>,
    /// Environment variables, given the port and the private directory.
    pub env: fn(port: u16, dir: &Path) -> Vec<(String, String)>,
}

/// A server child process owned by one test; killed on drop.
pub struct ServerProcess {
    recipe: Recipe,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts `recipe` on a free port and waits until it accepts
    /// connections.
    ///
    /// # Panics
    ///
    /// If the program cannot be started, or does not listen within
    /// [`START_TIMEOUT`].
    pub fn start(recipe: Recipe) -> Self {
        let mut server = Self {
            recipe,
            port: crate::free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        for (name, contents) in &server.recipe.files {
            std::fs::write(server.dir.path().join(name), contents).unwrap();
        }
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let program = &self.recipe.program;
        let child = Command::new(program)
            .args((self.recipe.args)(self.port, self.dir.path()))
            .envs((self.recipe.env)(self.port, self.dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; {}",
                    program.display(),
                    self.recipe.install_hint
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on port {}",
                program.display(),
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server.
    ///
    /// # Panics
    ///
    /// If the server was killed and not restarted.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// Kills the server (as a crash would) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process must be continued before it can die.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the server process.
    ///
    /// # Panics
    ///
    /// If the server is not running or `kill` fails.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` owned by one test, on a free loopback port, without
/// persistence; never the machine's shared Redis.
pub struct RedisServer(ServerProcess);

impl RedisServer {
    /// Starts `redis-server` from `PATH`.
    ///
    /// # Panics
    ///
    /// If it is not installed or does not listen in time.
    pub fn start() -> Self {
        Self(ServerProcess::start(Recipe {
            program: PathBuf::from("redis-server"),
            args: |port, dir| {
                let dir = dir.display().to_string();
                [
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    &dir,
                ]
                .into_iter()
                .chain(["--save", "", "--appendonly", "no"])
                .map(str::to_owned)
                .collect()
            },
            install_hint: "install it (apt-get install redis-server)",
            files: Vec::new(),
            env: |_, _| Vec::new(),
        }))
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port())
    }
}

impl std::ops::Deref for RedisServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}

impl std::ops::DerefMut for RedisServer {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.0
    }
}
