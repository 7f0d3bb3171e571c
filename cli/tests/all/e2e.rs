//! End to end, as `scripts/demo.sh` runs it: `trellis build` signs the
//! example actors, `trellis par create` packs the provider binaries,
//! `trellis up` starts its own nats-server, a host and the three providers,
//! and `trellis start` / `trellis link put` deploy the actors. Then real
//! HTTP requests go through the http-server provider, and the effects are
//! read back from the machine's Redis and PostgreSQL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_test_support::http::{
    Answer, Bytes, StatusCode, free_address, get_until, request, send,
};
use trellis_test_support::redis_url;
use trellis_test_support::up::{Launch, UpLattice, trellis_command};

use crate::test_home;

/// How long `trellis up` may take to report the lattice ready.
const UP_TIMEOUT: Duration = Duration::from_secs(120);

/// How long `trellis up` may take to stop after SIGTERM.
const DOWN_TIMEOUT: Duration = Duration::from_secs(20);

fn postgres_url() -> String {
    std::env::var("TRELLIS_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A `trellis` command with a clean environment and `home` as its
/// `TRELLIS_HOME`.
fn trellis(home: &Path) -> Command {
    trellis_command(Path::new(env!("CARGO_BIN_EXE_trellis")), home)
}

/// Runs a `trellis` command to success and returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A provider binary built beside the `trellis` binary (`cargo test
/// --workspace` builds every member's binaries).
fn provider_binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_trellis")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: build the providers first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A lattice brought up by `trellis up`, as the demo does; stopped with
/// SIGTERM on drop.
struct DemoLattice {
    home: tempfile::TempDir,
    nats_url: String,
    up: UpLattice,
}

impl DemoLattice {
    fn start() -> Self {
        Self::start_with(true)
    }

    /// Like [`DemoLattice::start`]; with `start_providers` false the
    /// provider archives are packed but not started.
    fn start_with(start_providers: bool) -> Self {
        let home = tempfile::tempdir_in(test_home()).unwrap();
        let examples = trellis_test_support::repo_root().join("actors-examples/Cargo.toml");
        run(trellis(home.path())
            .args(["build", "--manifest-path"])
            .arg(&examples)
            .arg("--out-dir")
            .arg(home.path().join("actors")));
        // Fail with the path of a missing provider binary, not a par error.
        let bin_dir = provider_binary("http-server")
            .parent()
            .unwrap()
            .to_path_buf();
        let up = UpLattice::start(&Launch {
            trellis: Path::new(env!("CARGO_BIN_EXE_trellis")),
            bin_dir: &bin_dir,
            home: home.path(),
            env: &[],
            timeout: UP_TIMEOUT,
            start_providers,
        })
        .unwrap();
        assert_eq!(up.ready["nats_started"], true, "{}", up.ready);
        Self {
            nats_url: up.nats_url.clone(),
            home,
            up,
        }
    }

    /// Runs `trellis -o json <args>` against this lattice.
    fn ctl(&self, args: &[&str]) -> Value {
        let stdout = run(trellis(self.home.path())
            .args(["-o", "json"])
            .args(args)
            .args(["--nats-url", &self.nats_url]));
        serde_json::from_str(&stdout).unwrap()
    }

    /// The id of the provider named `name`.
    fn provider(&self, name: &str) -> String {
        self.up
            .provider_id(name)
            .unwrap_or_else(|| panic!("no provider {name} in {}", self.up.ready))
    }

    /// Starts the signed component at `path`; returns the actor id.
    fn start_actor(&self, path: &Path) -> String {
        let actor = self.ctl(&["start", "actor", path.to_str().unwrap()]);
        actor["id"].as_str().unwrap().to_owned()
    }

    /// Starts the example `name` as `trellis build` signed it.
    fn start_example(&self, name: &str) -> String {
        self.start_actor(&self.home.path().join(format!("actors/{name}.signed.wasm")))
    }

    /// Puts a link from `actor` to the provider named `provider`.
    fn link(&self, actor: &str, provider: &str, contract: &str, config: &[String]) {
        let provider = self.provider(provider);
        let mut args = vec!["link", "put", actor, &provider, contract];
        args.extend(config.iter().map(String::as_str));
        self.ctl(&args);
    }

    /// Puts a link from `actor` to the provider named `provider` whose
    /// configuration entry `secret` is sealed: its value goes through the
    /// environment variable `var` of `trellis link put --secret-env`.
    fn link_with_secret(
        &self,
        actor: &str,
        provider: &str,
        contract: &str,
        (secret, var, value): (&str, &str, &str),
    ) {
        let provider = self.provider(provider);
        run(trellis(self.home.path())
            .args(["-o", "json", "link", "put", actor, &provider, contract])
            .args(["--secret-env", &format!("{secret}={var}")])
            .args(["--nats-url", &self.nats_url])
            .env(var, value));
    }

    /// Links `actor` to the http-server provider on a free address.
    fn serve_http(&self, actor: &str) -> SocketAddr {
        let address = free_address();
        self.link(
            actor,
            "http-server",
            "wasi:http",
            &[format!("address={address}")],
        );
        address
    }
}

impl DemoLattice {
    /// Sends SIGTERM, as Ctrl-C in the demo does, and waits for the exit
    /// status (`None` if it had to be killed).
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let up = self.up.child();
        if let Ok(Some(status)) = up.try_wait() {
            return Some(status);
        }
        if let Ok(pid) = i32::try_from(up.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + DOWN_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = up.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = up.kill();
        let _ = up.wait();
        None
    }
}

impl Drop for DemoLattice {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Sends `method path` with `body` to `address`.
async fn call(address: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    send(
        address,
        request(
            method,
            &address.to_string(),
            path,
            Bytes::from(body.to_owned()),
        ),
    )
    .await
    .unwrap()
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

/// Every message published on the lattice's NATS server, captured by a
/// subscriber on `>`: subject, headers and payload as text.
struct Capture {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Capture {
    async fn start(nats_url: &str) -> Self {
        use futures::StreamExt as _;
        let nats = async_nats::connect(nats_url).await.unwrap();
        let mut all = nats.subscribe(">").await.unwrap();
        nats.flush().await.unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                tokio::select! {
                    Some(m) = all.next() => seen.push(format!(
                        "{} {:?} {}",
                        m.subject,
                        m.headers,
                        String::from_utf8_lossy(&m.payload)
                    )),
                    _ = &mut stopped => break,
                }
            }
            drop(nats);
            seen
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<String> {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

/// A database of its own on the machine's PostgreSQL, dropped on drop.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Self {
        let name = format!("trellis_e2e_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_client(&postgres_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = postgres_url();
        let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
        Self { name, url }
    }

    async fn client(&self) -> tokio_postgres::Client {
        admin_client(&self.url).await
    }
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Redis keys under a prefix of their own, deleted on drop.
struct RedisPrefix(String);

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.0))
                .query(&mut c)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_hello_kvcounter_and_todo_through_the_lattice() {
    let lattice = DemoLattice::start();
    let capture = Capture::start(&lattice.nats_url).await;
    let prefix = RedisPrefix(format!("trellis-e2e:{}:", uuid::Uuid::new_v4()));
    let database = Database::create().await;

    let hello = lattice.start_example("hello");
    let kvcounter = lattice.start_example("kvcounter");
    let todo = lattice.start_example("todo");
    let hello_at = lattice.serve_http(&hello);
    let kvcounter_at = lattice.serve_http(&kvcounter);
    let todo_at = lattice.serve_http(&todo);
    lattice.link(
        &kvcounter,
        "keyvalue-redis",
        "wasi:keyvalue",
        &[
            format!("url={}", redis_url()),
            format!("prefix={}", prefix.0),
        ],
    );
    // The database URL is a secret: it is sealed by the CLI, and must not
    // be seen in any NATS message (captured on `>`), in `link list`, in the
    // events or in the log of `trellis up`, host and providers. It carries
    // a marker of its own, an application name PostgreSQL ignores.
    let marker = format!("trellis-secret-{}", uuid::Uuid::new_v4().simple());
    let secret_url = format!("{}?application_name={marker}", database.url);
    lattice.link_with_secret(
        &todo,
        "sqldb-postgres",
        "trellis:sqldb",
        ("url", "TRELLIS_E2E_DATABASE_URL", &secret_url),
    );

    // hello
    let greeting = get_until(hello_at, &hello_at.to_string(), "/?name=Ada", |a| {
        a.status == StatusCode::OK
    })
    .await;
    assert_eq!(greeting.text(), "Hello, Ada!");

    // kvcounter: wait until the key-value link has reached the provider.
    get_until(
        kvcounter_at,
        &kvcounter_at.to_string(),
        "/counter/warmup",
        |a| a.status == StatusCode::OK,
    )
    .await;
    for expected in 1..=3 {
        let answer = call(kvcounter_at, "GET", "/counter/visits", "").await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(
            json_of(&answer),
            json!({"name": "visits", "count": expected})
        );
    }
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: String = redis::cmd("GET")
        .arg(format!("{}counter:visits", prefix.0))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(stored, "3");

    // todo: create, list, get, update, delete, with the rows checked in
    // PostgreSQL at each step.
    get_until(todo_at, &todo_at.to_string(), "/todos", |a| {
        a.status == StatusCode::OK
    })
    .await;
    let created = call(
        todo_at,
        "POST",
        "/todos",
        r#"{"title":"write the tutorial"}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let item = json_of(&created);
    assert_eq!(item["title"], "write the tutorial");
    assert_eq!(item["done"], false);
    let id = item["id"].as_i64().unwrap();
    let db = database.client().await;
    let row = db
        .query_one("SELECT title, done FROM todos WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "write the tutorial");
    assert!(!row.get::<_, bool>(1));

    let listed = call(todo_at, "GET", "/todos", "").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(json_of(&listed), json!([item.clone()]));

    let fetched = call(todo_at, "GET", &format!("/todos/{id}"), "").await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(json_of(&fetched), item);

    let patched = call(
        todo_at,
        "PATCH",
        &format!("/todos/{id}"),
        r#"{"done":true}"#,
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(json_of(&patched)["done"], true);
    let done: bool = db
        .query_one("SELECT done FROM todos WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(done);

    let invalid = call(todo_at, "POST", "/todos", r#"{"title":""}"#).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&invalid)["error"].is_string(), "{invalid:?}");

    let deleted = call(todo_at, "DELETE", &format!("/todos/{id}"), "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    let rows: i64 = db
        .query_one("SELECT count(*) FROM todos", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    let gone = call(todo_at, "GET", &format!("/todos/{id}"), "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(json_of(&gone)["error"].is_string());

    // The secret reached the provider (the todo rows are in PostgreSQL),
    // and was seen nowhere else.
    let links = lattice.ctl(&["link", "list"]).to_string();
    let links_text =
        run(trellis(lattice.home.path()).args(["link", "list", "--nats-url", &lattice.nats_url]));
    assert!(links_text.contains("url (sealed)"), "{links_text}");
    let captured = capture.stop().await;
    assert!(
        captured
            .iter()
            .any(|m| m.contains("trellis.evt.") && m.contains("\"secrets\"")),
        "the capture holds no event of the sealed link"
    );
    let log = std::fs::read_to_string(lattice.home.path().join("up.log")).unwrap();
    for (place, text) in [
        ("link list (JSON)", links.as_str()),
        ("link list", links_text.as_str()),
        ("the log", log.as_str()),
    ]
    .into_iter()
    .chain(captured.iter().map(|m| ("a NATS message", m.as_str())))
    {
        assert!(
            !text.contains(&marker) && !text.contains(&database.url),
            "the secret database URL is in {place}: {text}"
        );
    }

    // Ctrl-C (SIGTERM here) stops everything cleanly: `trellis up` exits
    // with success, and the HTTP listeners and the nats-server it started
    // are gone.
    let mut lattice = lattice;
    let status = lattice
        .terminate()
        .expect("trellis up did not stop in time");
    assert!(status.success(), "trellis up exited with {status}");
    let nats_port: u16 = lattice
        .nats_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for address in [hello_at, SocketAddr::from(([127, 0, 0, 1], nats_port))] {
        assert!(
            std::net::TcpStream::connect(address).is_err(),
            "{address} still accepts connections"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvcounter_signed_without_the_keyvalue_capability_is_denied_and_the_host_keeps_serving() {
    let lattice = DemoLattice::start();
    let prefix = RedisPrefix(format!("trellis-e2e:{}:", uuid::Uuid::new_v4()));
    let unsigned = trellis_test_support::example_component("kvcounter");
    let copy = lattice.home.path().join("kvcounter-without-keyvalue.wasm");
    run(trellis(lattice.home.path())
        .args(["claims", "sign"])
        .arg(&unsigned)
        .args([
            "--name",
            "kvcounter-without-keyvalue",
            "--cap",
            "wasi:http",
            "-d",
        ])
        .arg(&copy));

    let hello = lattice.start_example("hello");
    let denied = lattice.start_actor(&copy);
    let hello_at = lattice.serve_http(&hello);
    let denied_at = lattice.serve_http(&denied);
    // The link exists: only the claim is missing.
    lattice.link(
        &denied,
        "keyvalue-redis",
        "wasi:keyvalue",
        &[
            format!("url={}", redis_url()),
            format!("prefix={}", prefix.0),
        ],
    );

    let answer = get_until(denied_at, &denied_at.to_string(), "/counter/visits", |a| {
        a.status != StatusCode::SERVICE_UNAVAILABLE && a.status != StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{answer:?}"
    );
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body = json_of(&answer);
    assert_eq!(body["kind"], "denied", "{body}");
    assert!(body["error"].is_string(), "{body}");

    // The host keeps serving: hello answers, and the denied actor answers
    // the same again.
    let greeting = get_until(hello_at, &hello_at.to_string(), "/?name=Ada", |a| {
        a.status == StatusCode::OK
    })
    .await;
    assert_eq!(greeting.text(), "Hello, Ada!");
    let again = call(denied_at, "GET", "/counter/visits", "").await;
    assert_eq!(again.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_of(&again)["kind"], "denied");

    let inventory = lattice.ctl(&["get", "inventory"]);
    let actors: Vec<&str> = inventory["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(actors.contains(&hello.as_str()) && actors.contains(&denied.as_str()));

    // Nothing reached Redis.
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", prefix.0))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// An operator's read-only credential, made and used with the CLI, lists
/// the lattice but cannot change it; with no credential of a trusted
/// operator, nothing is allowed.
#[test]
fn a_read_only_cli_credential_can_list_but_not_start() {
    let lattice = DemoLattice::start();
    let home = lattice.home.path();
    let user: Value = serde_json::from_str(&run(
        trellis(home).args(["-o", "json", "keys", "gen", "user"])
    ))
    .unwrap();
    let issued: Value = serde_json::from_str(&run(trellis(home)
        .args(["-o", "json", "keys", "credential", "--operator"])
        .arg(home.join("keys/dev.operator.nk"))
        .args(["--user", user["public_key"].as_str().unwrap()])
        .args(["--scope", "read", "--ttl", "1h"])))
    .unwrap();
    let as_reader = |args: &[&str]| {
        let out = trellis(home)
            .args(["-o", "json"])
            .args(args)
            .args(["--nats-url", &lattice.nats_url])
            .args(["--ctl-key", user["seed"].as_str().unwrap()])
            .args(["--ctl-credential", issued["credential"].as_str().unwrap()])
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.success(), json)
    };

    let (ok, links) = as_reader(&["link", "list"]);
    assert!(ok, "{links}");
    let (ok, inventory) = as_reader(&["get", "inventory"]);
    assert!(ok, "{inventory}");
    assert_eq!(inventory["providers"].as_array().unwrap().len(), 3);

    let hello = home.join("actors/hello.signed.wasm");
    let (ok, refused) = as_reader(&["start", "actor", hello.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(refused["error"]["kind"], "denied", "{refused}");

    // A credential of an operator the host does not trust: denied even
    // for reads.
    let stranger = home.join("keys/stranger.operator.nk");
    run(trellis(home)
        .args(["keys", "gen", "operator", "--keys-dir"])
        .arg(home.join("keys"))
        .args(["--name", "stranger"]));
    let forged: Value = serde_json::from_str(&run(trellis(home)
        .args(["-o", "json", "keys", "credential", "--operator"])
        .arg(&stranger)
        .args(["--user", user["public_key"].as_str().unwrap()])))
    .unwrap();
    let out = trellis(home)
        .args([
            "-o",
            "json",
            "link",
            "list",
            "--nats-url",
            &lattice.nats_url,
        ])
        .args(["--ctl-key", user["seed"].as_str().unwrap()])
        .args(["--ctl-credential", forged["credential"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["error"]["kind"], "denied", "{refused}");
}

/// The development key `{home}/keys/dev.{kind}.nk` that `trellis up` made.
fn dev_key(home: &Path, kind: trellis_claims::keys::KeyKind) -> trellis_claims::keys::KeyPair {
    let path = home.join(format!("keys/dev.{kind}.nk"));
    let seed = std::fs::read_to_string(&path).unwrap();
    trellis_claims::keys::parse_seed(seed.trim(), kind).unwrap()
}

/// `trellis push` puts a signed actor into the lattice's artifact store; a
/// second host, with no artifact directory and so no file of it, starts it
/// by reference and serves requests; `trellis pull` gets the same bytes
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_actor_runs_on_a_second_host_that_has_no_file_of_it() {
    use trellis_claims::keys::KeyKind;
    let lattice = DemoLattice::start();
    let home = lattice.home.path();
    let file = home.join("actors/hello.signed.wasm");
    let pushed = lattice.ctl(&["push", file.to_str().unwrap(), "hello:0.1.0"]);
    assert_eq!(pushed["reference"], "lattice://hello:0.1.0");
    let digest = pushed["digest"].as_str().unwrap().to_owned();

    let second = trellis_host::Host::start(trellis_host::HostConfig {
        lattice: "default".into(),
        nats: trellis_host::NatsConfig {
            urls: vec![lattice.nats_url.clone()],
            ..trellis_host::NatsConfig::default()
        },
        cluster_seed: Some(dev_key(home, KeyKind::Cluster).seed().unwrap()),
        trusted_issuers: vec![dev_key(home, KeyKind::Account).public_key()],
        ctl_issuers: vec![dev_key(home, KeyKind::Operator).public_key()],
        artifact_dirs: Vec::new(),
        provider_cache_dir: tempfile::tempdir_in(home).unwrap().keep(),
        ..trellis_host::HostConfig::default()
    })
    .await
    .unwrap();
    let actor = lattice.ctl(&[
        "start",
        "actor",
        &format!("hello:0.1.0@{digest}"),
        "--host-id",
        second.id(),
    ]);
    let id = actor["id"].as_str().unwrap().to_owned();
    assert_eq!(second.artifact_pulls(), 1);
    let address = lattice.serve_http(&id);
    let greeting = get_until(address, &address.to_string(), "/?name=Ada", |a| {
        a.status == StatusCode::OK
    })
    .await;
    assert_eq!(greeting.text(), "Hello, Ada!");

    let copy = home.join("pulled.wasm");
    let pulled = lattice.ctl(&["pull", "hello:0.1.0", "-d", copy.to_str().unwrap()]);
    assert_eq!(pulled["digest"], digest);
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&file).unwrap());
    second.stop(None).await;
}

/// The demo as `scripts/demo.sh` runs it now: `trellis up` (with wadm, no
/// providers), the actors and provider archives pushed into the lattice's
/// artifact store, and `trellis app deploy actors-examples/demo.yaml` with
/// the store URLs as sealed secrets. wadm starts and links everything;
/// real HTTP requests reach all three actors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_manifest_deploys_through_wadm_and_serves() {
    let lattice = DemoLattice::start_with(false);
    let home = lattice.home.path();
    for actor in ["hello", "kvcounter", "todo"] {
        let file = home.join(format!("actors/{actor}.signed.wasm"));
        lattice.ctl(&["push", file.to_str().unwrap(), &format!("{actor}:0.1.0")]);
    }
    for (name, _) in trellis_test_support::up::PROVIDERS {
        let archive = home.join(format!("{name}.par.gz"));
        lattice.ctl(&["push", archive.to_str().unwrap(), &format!("{name}:0.1.0")]);
    }
    let prefix = RedisPrefix(format!("trellis-e2e:{}:", uuid::Uuid::new_v4()));
    let database = Database::create().await;
    let addresses = [free_address(), free_address(), free_address()];
    let manifest = std::fs::read_to_string(
        trellis_test_support::repo_root().join("actors-examples/demo.yaml"),
    )
    .unwrap()
    .replace("127.0.0.1:8080", &addresses[0].to_string())
    .replace("127.0.0.1:8081", &addresses[1].to_string())
    .replace("127.0.0.1:8082", &addresses[2].to_string())
    .replace("trellis-demo:", &prefix.0);
    let manifest_path = home.join("demo.yaml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let stdout = run(trellis(home)
        .args(["-o", "json", "app", "deploy"])
        .arg(&manifest_path)
        .args(["--nats-url", &lattice.nats_url])
        .env("TRELLIS_DEMO_REDIS_URL", redis_url())
        .env("TRELLIS_DEMO_POSTGRES_URL", &database.url));
    let status: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["kind"], "deployed", "{status}");

    let [hello_at, kvcounter_at, todo_at] = addresses;
    let greeting = get_until(hello_at, &hello_at.to_string(), "/?name=Ada", |a| {
        a.status == StatusCode::OK
    })
    .await;
    assert_eq!(greeting.text(), "Hello, Ada!");
    get_until(
        kvcounter_at,
        &kvcounter_at.to_string(),
        "/counter/warmup",
        |a| a.status == StatusCode::OK,
    )
    .await;
    let answer = call(kvcounter_at, "GET", "/counter/visits", "").await;
    assert_eq!(json_of(&answer)["count"], 1, "{answer:?}");
    get_until(todo_at, &todo_at.to_string(), "/todos", |a| {
        a.status == StatusCode::OK
    })
    .await;
    let created = call(todo_at, "POST", "/todos", r#"{"title":"deployed by wadm"}"#).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let rows = database
        .client()
        .await
        .query("SELECT title FROM todos", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    // Undeploy stops everything wadm started.
    lattice.ctl(&["app", "undeploy", "demo"]);
    let mut emptied = false;
    for _ in 0..200 {
        let inventory = lattice.ctl(&["get", "inventory"]);
        if inventory["actors"].as_array().is_some_and(Vec::is_empty)
            && inventory["providers"].as_array().is_some_and(Vec::is_empty)
        {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emptied, "undeploy left things running");
}
