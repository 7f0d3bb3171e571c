//! `trellis-bench`: measures a Trellis lattice side by side with what a
//! user would pick instead, in one run, and prints a table of figures and
//! ratios (also written as JSON).
//!
//! - HTTP hello at each concurrency: the lattice path (client → http-server
//!   provider → NATS → host → actor), `wasmtime serve` running the same
//!   component, and a bare hyper server; load from `wrk`.
//! - Key-value: `kvcounter` through the lattice against
//!   `redis-benchmark -t incr` at the same concurrency.
//! - SQL: a single-row `todo` GET through the lattice against `pgbench`
//!   running the same select.
//! - Actor cold start: control command to first 200 OK, compile cache cold
//!   and warm.
//! - Density: N distinct signed actors started on one host: time and RSS.
//! - Footprint: the host's idle RSS and the release binary's size.
//!
//! `bench/run.sh` builds everything and calls it with the paths it needs.

mod measure;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::Serialize;
use trellis_claims::actor::{ActorClaimsRequest, sign_actor};
use trellis_claims::keys::{KeyKind, KeyPair, generate};
use trellis_lattice_client::CtlClient;
use trellis_protocol::ctl::StartActorRequest;
use trellis_protocol::provider::{NatsAuth, NatsConnection};
use trellis_protocol::{ContractId, Lattice, LinkDefinition};
use trellis_test_support::up::{Launch, UpLattice};

use crate::measure::{Load, free_port, rss_bytes, wait_for_http, wrk};

/// Command-line settings. Every default is the documented benchmark.
#[derive(Debug, Parser)]
#[command(name = "trellis-bench")]
struct Args {
    /// Length of each load run, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrencies (open connections) of the HTTP runs.
    #[arg(long, value_delimiter = ',', default_value = "1,32,128")]
    concurrency: Vec<u32>,
    /// Runs per target and concurrency, for HTTP and for the back ends. The
    /// targets take turns within each round, so that drift in the machine
    /// hits them alike, and the run with the median throughput is reported.
    #[arg(long, default_value_t = 3)]
    trials: u32,
    /// Unrecorded load on each target before its first trial at each
    /// concurrency, e.g. `2s`; `0s` for none.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// The HTTP hello targets to load.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hyper,wasmtime-serve,lattice"
    )]
    targets: Vec<Target>,
    /// The parts of the benchmark to run. The lattice is always started,
    /// and cold start and idle RSS are always measured.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http,keyvalue,sql,density"
    )]
    sections: Vec<Section>,
    /// Concurrency of the key-value and SQL runs.
    #[arg(long, default_value_t = 32)]
    backend_concurrency: u32,
    /// Directory of the release binaries (`trellis`, `http-server`,
    /// `keyvalue-redis`, `sqldb-postgres`, `hello-hyper`).
    #[arg(long)]
    bin_dir: PathBuf,
    /// The `wasmtime` binary (same wasmtime version as the host); needed
    /// for the `wasmtime-serve` target.
    #[arg(long)]
    wasmtime: Option<PathBuf>,
    /// Directory of the unsigned example components (`hello.wasm`, …).
    #[arg(long)]
    components: PathBuf,
    /// Redis of the key-value runs.
    #[arg(
        long,
        env = "TRELLIS_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// PostgreSQL server of the SQL runs; a database `trellis_bench` is
    /// (re)created there.
    #[arg(
        long,
        env = "TRELLIS_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Distinct actors of the density run.
    #[arg(long, default_value_t = 1000)]
    density_actors: u32,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench/results/latest.json")]
    out: PathBuf,
}

/// An HTTP hello server under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// A bare hyper server (`hello-hyper`).
    Hyper,
    /// `wasmtime serve` running the hello component.
    WasmtimeServe,
    /// The hello actor through the whole lattice path.
    Lattice,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Hyper => "hyper",
            Target::WasmtimeServe => "wasmtime serve",
            Target::Lattice => "lattice",
        }
    }
}

/// A part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// HTTP hello against each target.
    Http,
    /// kvcounter against redis-benchmark.
    Keyvalue,
    /// todo against pgbench.
    Sql,
    /// Many actors on one host.
    Density,
}

/// One HTTP load figure: the median trial, and every trial's throughput.
#[derive(Debug, Clone, Serialize)]
struct HttpFigure {
    target: &'static str,
    concurrency: u32,
    #[serde(flatten)]
    load: Load,
    /// Requests per second of each trial, in the order they ran.
    trials_requests_per_sec: Vec<f64>,
}

/// A backend figure: requests per second through the lattice and directly,
/// the medians of `--trials` runs of each, taken in turns.
#[derive(Debug, Serialize)]
struct BackendFigure {
    concurrency: u32,
    lattice: Load,
    direct_requests_per_sec: f64,
    direct_tool: &'static str,
    ratio: f64,
    /// Requests per second of each lattice trial, in the order they ran.
    lattice_trials_requests_per_sec: Vec<f64>,
    /// Requests per second of each direct trial, in the order they ran.
    direct_trials_requests_per_sec: Vec<f64>,
}

impl BackendFigure {
    /// Runs `lattice` and `direct` in turns, `trials` times each.
    fn measure(
        concurrency: u32,
        trials: u32,
        direct_tool: &'static str,
        mut lattice: impl FnMut() -> anyhow::Result<Load>,
        mut direct: impl FnMut() -> anyhow::Result<f64>,
    ) -> anyhow::Result<Self> {
        let mut loads = Vec::new();
        let mut directs = Vec::new();
        for _ in 0..trials.max(1) {
            loads.push(lattice()?);
            directs.push(direct()?);
        }
        let load = median(&loads);
        let direct = median_by(&directs, |d| *d).unwrap_or_default();
        Ok(Self {
            concurrency,
            ratio: load.requests_per_sec / direct,
            lattice_trials_requests_per_sec: loads.iter().map(|l| l.requests_per_sec).collect(),
            lattice: load,
            direct_requests_per_sec: direct,
            direct_tool,
            direct_trials_requests_per_sec: directs,
        })
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    duration_s: u64,
    trials: u32,
    http: Vec<HttpFigure>,
    http_ratios: Vec<serde_json::Value>,
    keyvalue: Option<BackendFigure>,
    sql: Option<BackendFigure>,
    cold_start_ms: serde_json::Value,
    density: serde_json::Value,
    footprint: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    model: String,
    kernel: String,
}

fn machine() -> Machine {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        model,
        kernel,
    }
}

/// A child process killed (SIGTERM, then SIGKILL) on drop.
struct Guard(Child);

impl Guard {
    fn terminate(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let hello_wasm = std::fs::read(args.components.join("hello.wasm"))
        .context("reading hello.wasm: build actors-examples first")?;
    let home = tempfile::tempdir()?;
    let issuer = generate(KeyKind::Account);
    let keys = home.path().join("keys");
    std::fs::create_dir_all(&keys)?;
    std::fs::write(keys.join("dev.account.nk"), format!("{}\n", issuer.seed()?))?;
    let hello_signed = home.path().join("hello.signed.wasm");
    write_signed(&hello_signed, &hello_wasm, "hello", &["wasi:http"], &issuer)?;

    let sections = |s: Section| args.sections.contains(&s);
    let wanted = |t: Target| sections(Section::Http) && args.targets.contains(&t);

    // The baselines run beside the lattice, idle while another is loaded.
    let mut servers = Vec::new();
    let mut baselines = Vec::new();
    if wanted(Target::Hyper) {
        let port = free_port()?;
        let mut hyper = Command::new(args.bin_dir.join("hello-hyper"));
        hyper.arg(format!("127.0.0.1:{port}"));
        baselines.push(start_server(Target::Hyper, hyper, port).await?);
        servers.push((Target::Hyper, hello_url(&format!("127.0.0.1:{port}"))));
    }
    if wanted(Target::WasmtimeServe) {
        let port = free_port()?;
        let Some(binary) = &args.wasmtime else {
            bail!("the wasmtime-serve target needs --wasmtime");
        };
        let mut wasmtime = Command::new(binary);
        wasmtime
            .args(["serve", "-Scli", "--addr", &format!("127.0.0.1:{port}")])
            .arg(&hello_signed);
        baselines.push(start_server(Target::WasmtimeServe, wasmtime, port).await?);
        servers.push((
            Target::WasmtimeServe,
            hello_url(&format!("127.0.0.1:{port}")),
        ));
    }

    eprintln!("== the lattice");
    let lattice = BenchLattice::start(&args, home.path()).await?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_bytes(lattice.up.id())?;

    // Cold start: the first start of the component on this host compiles
    // it; a second actor with the same module (another key) hits the
    // compile cache.
    let cold = lattice
        .start_and_serve(&hello_signed, &[])
        .await
        .context("cold start")?;
    let warm_copy = home.path().join("hello-2.signed.wasm");
    write_signed(&warm_copy, &hello_wasm, "hello-2", &["wasi:http"], &issuer)?;
    let warm = lattice
        .start_and_serve(&warm_copy, &[])
        .await
        .context("warm start")?;
    if wanted(Target::Lattice) {
        servers.push((Target::Lattice, hello_url(&cold.address)));
    }

    let (http, http_ratios) = load_http(&args, &servers)?;
    drop(baselines);

    let keyvalue = if sections(Section::Keyvalue) {
        keyvalue(&args, &lattice, &issuer, home.path())
            .await
            .inspect_err(|e| eprintln!("key-value run skipped: {e:#}"))
            .ok()
    } else {
        None
    };
    let sql = if sections(Section::Sql) {
        sql(&args, &lattice, &issuer, home.path())
            .await
            .inspect_err(|e| eprintln!("SQL run skipped: {e:#}"))
            .ok()
    } else {
        None
    };
    let density = if sections(Section::Density) {
        density(&args, &lattice, &hello_wasm, &issuer, home.path()).await?
    } else {
        serde_json::Value::Null
    };
    drop(lattice);

    let binary = std::fs::metadata(args.bin_dir.join("trellis"))?.len();
    let report = Report {
        machine: machine(),
        duration_s: args.duration.as_secs(),
        trials: args.trials,
        http,
        http_ratios,
        keyvalue,
        sql,
        cold_start_ms: serde_json::json!({
            "cold_cache": cold.start_ms,
            "warm_cache": warm.start_ms,
        }),
        density,
        footprint: serde_json::json!({
            "host_idle_rss_bytes": idle_rss,
            "trellis_binary_bytes": binary,
        }),
    };
    print_table(&report);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("\nJSON report: {}", args.out.display());
    Ok(())
}

fn hello_url(address: &str) -> String {
    format!("http://{address}/?name=Ada")
}

/// Starts `command` (a hello server on `port`) and waits until it greets.
async fn start_server(target: Target, mut command: Command, port: u16) -> anyhow::Result<Guard> {
    eprintln!("== starting {}", target.label());
    let server = Guard(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", target.label()))?,
    );
    wait_for_http(
        &hello_url(&format!("127.0.0.1:{port}")),
        200,
        Duration::from_secs(60),
    )
    .await?;
    Ok(server)
}

/// Loads every server at each concurrency: a warm-up each, then
/// `args.trials` rounds in which the servers take turns. Returns the
/// median figure of each server and concurrency, and the ratios between
/// the targets.
fn load_http(
    args: &Args,
    servers: &[(Target, String)],
) -> anyhow::Result<(Vec<HttpFigure>, Vec<serde_json::Value>)> {
    let mut figures = Vec::new();
    let mut ratios = Vec::new();
    for &c in &args.concurrency {
        eprintln!("== HTTP hello at {c} connections");
        if !args.warmup.is_zero() {
            for (_, url) in servers {
                wrk(url, c, args.warmup)?;
            }
        }
        let mut trials: Vec<Vec<Load>> = vec![Vec::new(); servers.len()];
        for _ in 0..args.trials.max(1) {
            for ((_, url), runs) in servers.iter().zip(&mut trials) {
                runs.push(wrk(url, c, args.duration)?);
            }
        }
        let rps = |t: Target| {
            servers
                .iter()
                .position(|(s, _)| *s == t)
                .map(|i| &trials[i])
        };
        ratios.push(ratio_figures(c, &rps));
        for ((target, _), runs) in servers.iter().zip(trials) {
            figures.push(HttpFigure {
                target: target.label(),
                concurrency: c,
                load: median(&runs),
                trials_requests_per_sec: runs.iter().map(|l| l.requests_per_sec).collect(),
            });
        }
    }
    Ok((figures, ratios))
}

/// The run with the median throughput (the lower middle one of an even
/// count).
fn median(runs: &[Load]) -> Load {
    median_by(runs, |l| l.requests_per_sec).unwrap_or_default()
}

/// The item with the median `key` (the lower middle one of an even
/// count), or `None` when there are none.
fn median_by<T: Clone>(items: &[T], key: impl Fn(&T) -> f64) -> Option<T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .map(|t| (*t).clone())
}

/// Ratios of median throughputs between the targets at concurrency `c`,
/// each with the range of the per-round ratios.
fn ratio_figures<'a>(c: u32, runs: &impl Fn(Target) -> Option<&'a Vec<Load>>) -> serde_json::Value {
    let mut figure = serde_json::json!({ "concurrency": c });
    for (name, num, den) in [
        (
            "lattice_vs_wasmtime_serve",
            Target::Lattice,
            Target::WasmtimeServe,
        ),
        ("lattice_vs_hyper", Target::Lattice, Target::Hyper),
        (
            "wasmtime_serve_vs_hyper",
            Target::WasmtimeServe,
            Target::Hyper,
        ),
    ] {
        let (Some(n), Some(d)) = (runs(num), runs(den)) else {
            continue;
        };
        let per_round: Vec<f64> = n
            .iter()
            .zip(d)
            .map(|(n, d)| n.requests_per_sec / d.requests_per_sec)
            .collect();
        let (min, max) = range(&per_round);
        figure[name] = serde_json::json!(median(n).requests_per_sec / median(d).requests_per_sec);
        figure[format!("{name}_per_round")] = serde_json::json!([min, max]);
    }
    figure
}

/// Signs `wasm` as actor `name` (a new actor key) with `caps` and writes
/// it to `path`.
fn write_signed(
    path: &Path,
    wasm: &[u8],
    name: &str,
    caps: &[&str],
    issuer: &KeyPair,
) -> anyhow::Result<()> {
    let request = ActorClaimsRequest {
        name: name.to_owned(),
        caps: caps.iter().map(|c| (*c).to_owned()).collect(),
        ..ActorClaimsRequest::default()
    };
    let (signed, _) = sign_actor(wasm, &request, issuer, &generate(KeyKind::Actor))?;
    std::fs::write(path, signed).with_context(|| format!("writing {}", path.display()))
}

/// A lattice run by `trellis up` with the three providers.
struct BenchLattice {
    up: UpLattice,
    ctl: CtlClient,
    host_id: String,
    providers: serde_json::Value,
}

/// A link besides HTTP: provider name, contract, link configuration.
type ExtraLink<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);

/// An actor started and served over HTTP.
struct Served {
    actor_id: String,
    address: String,
    start_ms: f64,
}

impl BenchLattice {
    async fn start(args: &Args, home: &Path) -> anyhow::Result<Self> {
        let (trellis, bin_dir, home_dir) = (
            args.bin_dir.join("trellis"),
            args.bin_dir.clone(),
            home.to_path_buf(),
        );
        let up = tokio::task::spawn_blocking(move || {
            UpLattice::start(&Launch {
                trellis: &trellis,
                bin_dir: &bin_dir,
                home: &home_dir,
                env: &[("TRELLIS_LOG", "warn")],
                timeout: Duration::from_secs(300),
                start_providers: true,
            })
        })
        .await??;
        let ready = up.ready.clone();
        let nats = trellis_lattice_client::connect(
            &NatsConnection::new(vec![up.nats_url.clone()], NatsAuth::None),
            "trellis-bench",
            Duration::from_secs(5),
        )
        .await?;
        let ctl = CtlClient::new(nats, Lattice::new("default")?)
            .with_timeout(Duration::from_secs(60))
            .with_signer(std::sync::Arc::new(up.ctl_signer()?));
        Ok(Self {
            up,
            ctl,
            host_id: ready["host_id"].as_str().context("no host id")?.to_owned(),
            providers: ready["providers"].clone(),
        })
    }

    fn provider(&self, name: &str) -> anyhow::Result<String> {
        self.providers
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .and_then(|p| p["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no provider {name}"))
    }

    async fn link(
        &self,
        actor: &str,
        provider: &str,
        contract: &str,
        config: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let link = config.iter().fold(
            LinkDefinition::new(
                actor,
                ContractId::new(contract)?,
                "default",
                self.provider(provider)?,
            ),
            |l, (k, v)| l.with_config(*k, v.clone()),
        );
        Ok(self.ctl.put_link(&link).await?)
    }

    /// Starts the actor at `path`, links it to `links` and to HTTP on a
    /// free port, and times the control command to the first 200 on
    /// `probe`.
    async fn start_and_serve_at(
        &self,
        path: &Path,
        links: &[ExtraLink<'_>],
        probe: &str,
    ) -> anyhow::Result<Served> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let started = Instant::now();
        let actor = self
            .ctl
            .start_actor(
                &self.host_id,
                &StartActorRequest {
                    actor_ref: path.to_string_lossy().into_owned(),
                    max_instances: 256,
                    annotations: Default::default(),
                },
            )
            .await?;
        for (provider, contract, config) in links {
            self.link(&actor.id, provider, contract, config).await?;
        }
        self.link(
            &actor.id,
            "http-server",
            "wasi:http",
            &[("address", address.clone())],
        )
        .await?;
        wait_for_http(
            &format!("http://{address}{probe}"),
            200,
            Duration::from_secs(60),
        )
        .await?;
        Ok(Served {
            actor_id: actor.id,
            address,
            start_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    async fn start_and_serve(
        &self,
        path: &Path,
        links: &[ExtraLink<'_>],
    ) -> anyhow::Result<Served> {
        self.start_and_serve_at(path, links, "/?name=Ada").await
    }
}

async fn keyvalue(
    args: &Args,
    lattice: &BenchLattice,
    issuer: &KeyPair,
    home: &Path,
) -> anyhow::Result<BackendFigure> {
    eprintln!("== key-value: kvcounter against redis-benchmark -t incr");
    let wasm = std::fs::read(args.components.join("kvcounter.wasm"))?;
    let path = home.join("kvcounter.signed.wasm");
    write_signed(
        &path,
        &wasm,
        "kvcounter",
        &["wasi:http", "wasi:keyvalue"],
        issuer,
    )?;
    let prefix = format!("trellis-bench:{}:", std::process::id());
    let served = lattice
        .start_and_serve_at(
            &path,
            &[(
                "keyvalue-redis",
                "wasi:keyvalue",
                vec![("url", args.redis_url.clone()), ("prefix", prefix.clone())],
            )],
            "/counter/bench",
        )
        .await?;
    let c = args.backend_concurrency;
    let url = format!("http://{}/counter/bench", served.address);
    let figure = BackendFigure::measure(
        c,
        args.trials,
        "redis-benchmark -t incr",
        || wrk(&url, c, args.duration),
        || measure::redis_benchmark(&args.redis_url, c),
    );
    measure::redis_del(&args.redis_url, &format!("{prefix}counter:bench"));
    let _ = lattice
        .ctl
        .stop_actor(&lattice.host_id, &served.actor_id)
        .await;
    figure
}

async fn sql(
    args: &Args,
    lattice: &BenchLattice,
    issuer: &KeyPair,
    home: &Path,
) -> anyhow::Result<BackendFigure> {
    eprintln!("== SQL: todo GET /todos/1 against pgbench");
    let database = measure::recreate_database(&args.postgres_url, "trellis_bench")?;
    let wasm = std::fs::read(args.components.join("todo.wasm"))?;
    let path = home.join("todo.signed.wasm");
    write_signed(
        &path,
        &wasm,
        "todo",
        &["wasi:http", "trellis:sqldb"],
        issuer,
    )?;
    let served = lattice
        .start_and_serve_at(
            &path,
            &[(
                "sqldb-postgres",
                "trellis:sqldb",
                vec![("url", database.clone()), ("pool_size", "32".to_owned())],
            )],
            "/todos",
        )
        .await?;
    measure::http_post(
        &format!("http://{}/todos", served.address),
        r#"{"title":"benchmark"}"#,
    )
    .await?;
    let c = args.backend_concurrency;
    let select = home.join("select.sql");
    std::fs::write(
        &select,
        "SELECT id, title, done, created_at FROM todos WHERE id = 1;\n",
    )?;
    let url = format!("http://{}/todos/1", served.address);
    let figure = BackendFigure::measure(
        c,
        args.trials,
        "pgbench (same SELECT)",
        || wrk(&url, c, args.duration),
        || measure::pgbench(&database, &select, c, args.duration),
    );
    let _ = lattice
        .ctl
        .stop_actor(&lattice.host_id, &served.actor_id)
        .await;
    figure
}

async fn density(
    args: &Args,
    lattice: &BenchLattice,
    wasm: &[u8],
    issuer: &KeyPair,
    home: &Path,
) -> anyhow::Result<serde_json::Value> {
    let n = args.density_actors;
    eprintln!("== density: {n} distinct signed actors on one host");
    let dir = home.join("density");
    std::fs::create_dir_all(&dir)?;
    let mut paths = Vec::new();
    for i in 0..n {
        let path = dir.join(format!("hello-{i}.signed.wasm"));
        write_signed(&path, wasm, &format!("hello-{i}"), &["wasi:http"], issuer)?;
        paths.push(path);
    }
    let before = rss_bytes(lattice.up.id())?;
    let started = Instant::now();
    for path in &paths {
        lattice
            .ctl
            .start_actor(
                &lattice.host_id,
                &StartActorRequest {
                    actor_ref: path.to_string_lossy().into_owned(),
                    max_instances: 1,
                    annotations: Default::default(),
                },
            )
            .await?;
    }
    let elapsed = started.elapsed();
    let after = rss_bytes(lattice.up.id())?;
    Ok(serde_json::json!({
        "actors": n,
        "start_all_ms": elapsed.as_secs_f64() * 1000.0,
        "host_rss_before_bytes": before,
        "host_rss_after_bytes": after,
    }))
}

fn print_table(r: &Report) {
    let m = &r.machine;
    println!(
        "\nTrellis benchmarks — {} cores, {}, {} s per run, median of {} trials",
        m.cores, m.model, r.duration_s, r.trials
    );
    println!("\nHTTP hello (wrk)");
    println!(
        "{:<16} {:>5} {:>10} {:>19} {:>10} {:>10}",
        "target", "conns", "req/s", "trials (min-max)", "p50 ms", "p99 ms"
    );
    for f in &r.http {
        let (min, max) = range(&f.trials_requests_per_sec);
        println!(
            "{:<16} {:>5} {:>10.0} {:>19} {:>10.3} {:>10.3}",
            f.target,
            f.concurrency,
            f.load.requests_per_sec,
            format!("{min:.0}-{max:.0}"),
            f.load.p50_ms,
            f.load.p99_ms
        );
    }
    println!("\nRatios of median throughput (range of the per-round ratios)");
    println!(
        "{:>5} {:>26} {:>22} {:>26}",
        "conns", "lattice/wasmtime serve", "lattice/hyper", "wasmtime serve/hyper"
    );
    for v in &r.http_ratios {
        let cell = |name: &str| match (
            v[name].as_f64(),
            v[format!("{name}_per_round")][0].as_f64(),
            v[format!("{name}_per_round")][1].as_f64(),
        ) {
            (Some(x), Some(lo), Some(hi)) => format!("{x:.2} ({lo:.2}-{hi:.2})"),
            _ => "-".to_owned(),
        };
        println!(
            "{:>5} {:>26} {:>22} {:>26}",
            v["concurrency"],
            cell("lattice_vs_wasmtime_serve"),
            cell("lattice_vs_hyper"),
            cell("wasmtime_serve_vs_hyper")
        );
    }
    for (title, figure) in [("Key-value", &r.keyvalue), ("SQL", &r.sql)] {
        if let Some(f) = figure {
            let (lo, hi) = range(&f.lattice_trials_requests_per_sec);
            let (dlo, dhi) = range(&f.direct_trials_requests_per_sec);
            println!(
                "\n{title} at {} connections: lattice {:.0} req/s (trials {lo:.0}-{hi:.0}; p50 {:.3} ms, p99 {:.3} ms); {} {:.0} req/s (trials {dlo:.0}-{dhi:.0}); ratio {:.3}",
                f.concurrency,
                f.lattice.requests_per_sec,
                f.lattice.p50_ms,
                f.lattice.p99_ms,
                f.direct_tool,
                f.direct_requests_per_sec,
                f.ratio
            );
        }
    }
    println!(
        "\nActor cold start (control command to first 200): {:.1} ms with a cold compile cache, {:.1} ms warm",
        r.cold_start_ms["cold_cache"].as_f64().unwrap_or(0.0),
        r.cold_start_ms["warm_cache"].as_f64().unwrap_or(0.0)
    );
    if !r.density.is_null() {
        println!(
            "Density: {} actors started in {:.0} ms; host RSS {:.1} MiB before, {:.1} MiB after",
            r.density["actors"],
            r.density["start_all_ms"].as_f64().unwrap_or(0.0),
            mib(&r.density["host_rss_before_bytes"]),
            mib(&r.density["host_rss_after_bytes"])
        );
    }
    println!(
        "Footprint: host idle RSS {:.1} MiB; trellis release binary {:.1} MiB",
        mib(&r.footprint["host_idle_rss_bytes"]),
        mib(&r.footprint["trellis_binary_bytes"])
    );
}

/// The smallest and largest of `values` (0 and 0 when empty).
fn range(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    (if min.is_finite() { min } else { 0.0 }, max)
}

fn mib(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0)
}
