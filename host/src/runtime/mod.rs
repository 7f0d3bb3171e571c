//! The actor runtime: wasmtime's component model with the pooling
//! allocator, one epoch ticker per engine, a compile cache keyed by module
//! hash, and a fresh, deny-by-default instance per invocation.

pub mod capabilities;
mod log_stream;
pub mod memory;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use trellis_protocol::contracts::http::HttpResponse;

use crate::config::RuntimeLimits;
use crate::error::{Error, ErrorKind, Result};
pub use capabilities::{Capabilities, CapabilityContext};
use log_stream::{LogStream, Stream};

/// The state of one actor instance's store.
pub struct ActorState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyOutgoingHttp,
    table: ResourceTable,
    limits: StoreLimits,
    /// What the actor may reach beyond computing: its claims and links.
    pub capabilities: CapabilityContext,
    /// Counts this store among the runtime's live ones until it drops.
    _live: LiveStore,
}

/// One live store, counted in [`Runtime::live_instances`] until dropped.
struct LiveStore(Arc<AtomicUsize>);

impl LiveStore {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for LiveStore {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WasiView for ActorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ActorState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Actors get no outgoing HTTP: there is no `wasi:http/outgoing-handler`
/// capability in Trellis yet, so every request is denied.
#[derive(Default)]
struct DenyOutgoingHttp;

impl wasmtime_wasi_http::WasiHttpHooks for DenyOutgoingHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Increments the engine's epoch every tick on a dedicated thread, until
/// dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("trellis-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the epoch ticker thread: {e}");
        }
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled actor, ready to instantiate.
#[derive(Clone)]
pub struct ActorComponent {
    pre: ProxyPre<ActorState>,
}

impl ActorComponent {
    /// Instantiates the component in `store` (made by
    /// [`Runtime::new_store`]) without calling it: the imports are already
    /// resolved, so this allocates the instance from the pool and runs the
    /// component's start functions. [`Runtime::handle_http`] does this for
    /// every invocation; the benchmarks time it alone.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Guest`] if the pool is exhausted or a start function
    /// traps.
    pub async fn instantiate(
        &self,
        store: &mut Store<ActorState>,
    ) -> Result<wasmtime_wasi_http::p2::bindings::Proxy> {
        self.pre
            .instantiate_async(store)
            .await
            .map_err(|e| Error::new(ErrorKind::Guest, format!("cannot instantiate: {e:#}")))
    }
}

/// The engine, its linker and its compile cache. One per host.
pub struct Runtime {
    engine: Engine,
    linker: Linker<ActorState>,
    cache: Mutex<HashMap<String, Component>>,
    /// One gate per module hash being compiled: a second start of the same
    /// module waits for the first compilation instead of repeating it.
    compiling: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    compilations: std::sync::atomic::AtomicU64,
    /// Where compiled components are kept across restarts, if anywhere.
    compiled_dir: Option<std::path::PathBuf>,
    limits: RuntimeLimits,
    live: Arc<AtomicUsize>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// A runtime enforcing `limits`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if wasmtime refuses the configuration (for
    /// example when the pooling allocator cannot reserve its memory).
    pub fn new(limits: RuntimeLimits) -> Result<Self> {
        let config_err =
            |e: wasmtime::Error| Error::new(ErrorKind::Config, format!("wasmtime: {e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_total_instances)
            .total_core_instances(limits.max_total_instances.saturating_mul(8))
            .total_memories(limits.max_total_instances.saturating_mul(2))
            .total_tables(limits.max_total_instances.saturating_mul(4))
            .total_stacks(limits.max_total_instances)
            .max_memories_per_component(16)
            .max_tables_per_component(limits.max_tables_per_instance.saturating_mul(4))
            .max_core_instances_per_component(64)
            .max_tables_per_module(limits.max_tables_per_instance)
            .table_elements(limits.max_table_elements)
            .max_memory_size(limits.max_memory_bytes)
            .linear_memory_keep_resident(limits.memory_keep_resident_bytes)
            .table_keep_resident(limits.table_keep_resident_bytes)
            .decommit_batch_size(limits.decommit_batch_size);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.max_wasm_stack_bytes)
            .memory_reservation(limits.max_memory_bytes as u64)
            .memory_guard_size(64 * 1024)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(config_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(config_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(config_err)?;
        capabilities::add_to_linker(&mut linker).map_err(config_err)?;
        let ticker = EpochTicker::start(engine.clone(), limits.epoch_tick);
        Ok(Self {
            engine,
            linker,
            cache: Mutex::new(HashMap::new()),
            limits,
            compiling: Mutex::new(HashMap::new()),
            compilations: std::sync::atomic::AtomicU64::new(0),
            compiled_dir: None,
            live: Arc::new(AtomicUsize::new(0)),
            _ticker: ticker,
        })
    }

    /// Keeps compiled components in `dir` (a directory private to the
    /// host), so that a restarted host starts its actors without
    /// compiling them again. Files are named by module hash and engine
    /// fingerprint, written only by this host, and one that does not load
    /// is compiled again and replaced (ADR 0010).
    #[must_use]
    pub fn with_compiled_cache(mut self, dir: std::path::PathBuf) -> Self {
        self.compiled_dir = Some(dir);
        self
    }

    /// The file the component of module `hash` is kept in, for this
    /// engine: `{hash}-{fingerprint}.cwasm`, where the fingerprint covers
    /// the wasmtime version and every setting that changes compiled code.
    fn compiled_path(&self, hash: &str) -> Option<std::path::PathBuf> {
        use std::hash::{Hash as _, Hasher as _};
        let dir = self.compiled_dir.as_ref()?;
        if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut fingerprint);
        Some(dir.join(format!("{hash}-{:016x}.cwasm", fingerprint.finish())))
    }

    /// The component kept for `hash` by an earlier run, if it loads.
    fn load_compiled(&self, hash: &str) -> Option<Component> {
        let path = self.compiled_path(hash)?;
        if !path.is_file() {
            return None;
        }
        // SAFETY: wasmtime runs precompiled code as is, so the file must
        // come from `Component::serialize` of a compatible engine. It does:
        // only this host writes the directory, which is private to its
        // user (mode 0700, owner checked by `artifacts::private_dir`), and
        // the file name carries the engine's compatibility fingerprint;
        // wasmtime checks the version and settings in the file's header
        // again and refuses a mismatch, which is compiled afresh.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(&self.engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "compiled cache entry not used: {e:#}");
                None
            }
        }
    }

    /// Keeps `component` for `hash` for later runs. Failures are logged:
    /// the cache is only an optimisation.
    fn store_compiled(&self, hash: &str, component: &Component) {
        let (Some(path), Some(dir)) = (self.compiled_path(hash), self.compiled_dir.as_ref()) else {
            return;
        };
        let written = crate::artifacts::private_dir(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| component.serialize().map_err(|e| format!("{e:#}")))
            .and_then(|bytes| {
                let partial = dir.join(format!("partial-{}", uuid::Uuid::new_v4()));
                std::fs::write(&partial, bytes)
                    .and_then(|()| std::fs::rename(&partial, &path))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&partial);
                        e.to_string()
                    })
            });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot keep a compiled component: {e}");
        }
    }

    /// Keeps `component` in the in-memory compile cache, evicting one entry
    /// when it holds `compile_cache_entries`.
    fn remember(&self, hash: &str, component: &Component) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.limits.compile_cache_entries
                && let Some(evict) = cache.keys().next().cloned()
            {
                cache.remove(&evict);
            }
            cache.insert(hash.to_owned(), component.clone());
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    /// Compiles `wasm` (whose claims-free hash is `hash`) off the async
    /// runtime, or takes it from the cache, and pre-links it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidComponent`] if it is too large, not a component,
    /// does not export `wasi:http/incoming-handler`, or imports something
    /// the host does not provide.
    pub async fn prepare(&self, wasm: Arc<Vec<u8>>, hash: &str) -> Result<ActorComponent> {
        if wasm.len() > self.limits.max_component_bytes {
            return Err(Error::new(
                ErrorKind::InvalidComponent,
                format!(
                    "component of {} bytes exceeds the limit of {}",
                    wasm.len(),
                    self.limits.max_component_bytes
                ),
            ));
        }
        let gate = self
            .compiling
            .lock()
            .ok()
            .map(|mut g| g.entry(hash.to_owned()).or_default().clone());
        let turn = match &gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        let cached = self.cache.lock().ok().and_then(|c| c.get(hash).cloned());
        let cached = match cached {
            Some(component) => Some(component),
            None => self.load_compiled(hash).inspect(|c| self.remember(hash, c)),
        };
        let component = match cached {
            Some(component) => component,
            None => {
                let engine = self.engine.clone();
                let timeout = self.limits.compile_timeout;
                self.compilations.fetch_add(1, Ordering::Relaxed);
                // Cranelift cannot be interrupted: past the timeout the start
                // fails and the compiling thread's result is dropped.
                let compiled = tokio::time::timeout(
                    timeout,
                    tokio::task::spawn_blocking(move || Component::new(&engine, &*wasm)),
                )
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "compiling the component took over {} ms",
                            timeout.as_millis()
                        ),
                    )
                })
                .and_then(|joined| {
                    joined.map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidComponent,
                            format!("compilation task failed: {e}"),
                        )
                    })
                })
                .and_then(|c| {
                    c.map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidComponent,
                            format!("not a valid component: {e:#}"),
                        )
                    })
                });
                let component = match compiled {
                    Ok(component) => component,
                    Err(e) => {
                        drop(turn);
                        self.forget_gate(hash);
                        return Err(e);
                    }
                };
                self.store_compiled(hash, &component);
                self.remember(hash, &component);
                component
            }
        };
        drop(turn);
        self.forget_gate(hash);
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            Error::new(
                ErrorKind::InvalidComponent,
                format!("cannot link the component: {e:#}"),
            )
        })?;
        let pre = ProxyPre::new(instance_pre).map_err(|e| {
            Error::new(
                ErrorKind::InvalidComponent,
                format!("the component does not export wasi:http/incoming-handler: {e:#}"),
            )
        })?;
        Ok(ActorComponent { pre })
    }

    /// Drops the compile gate of `hash` once nobody else waits on it.
    fn forget_gate(&self, hash: &str) {
        if let Ok(mut gates) = self.compiling.lock()
            && gates.get(hash).is_some_and(|g| Arc::strong_count(g) == 1)
        {
            gates.remove(hash);
        }
    }

    /// Components compiled since the runtime started, a count; a module
    /// found in the compile cache, or compiled for a concurrent start of
    /// the same module, does not count.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Stores alive now, all actors together: each holds (or is about to
    /// hold) one instance of the pool, a count.
    pub fn live_instances(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// A fresh store for one invocation of `actor_id`: no preopens, no
    /// environment, no arguments, no sockets, no stdin; stdout and stderr
    /// go to the host log. The execution deadline starts now.
    pub fn new_store(
        &self,
        actor_id: &Arc<str>,
        capabilities: CapabilityContext,
    ) -> Store<ActorState> {
        let wasi = WasiCtxBuilder::new()
            .stdout(LogStream::new(actor_id.clone(), Stream::Stdout))
            .stderr(LogStream::new(actor_id.clone(), Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory_bytes)
            .table_elements(self.limits.max_table_elements)
            .trap_on_grow_failure(true)
            .build();
        let state = ActorState {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: DenyOutgoingHttp,
            table: ResourceTable::new(),
            limits,
            capabilities,
            _live: LiveStore::new(&self.live),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Yield to the async runtime every tick so a busy guest cannot starve
        // other tasks, and trap once the deadline has passed, measured on
        // the clock from the store's creation (not in ticks counted, which
        // a guest waiting in a host call would not spend).
        let started = std::time::Instant::now();
        let deadline = self.limits.execution_deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if started.elapsed() >= deadline {
                Err(wasmtime::Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Handles one HTTP request in a fresh instance of `component` and
    /// collects the whole response, its body at most
    /// [`RuntimeLimits::max_response_body_bytes`] long.
    ///
    /// The guest runs in its own task so that it can stream the body while
    /// this function reads it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Guest`] if the guest traps (deadline, memory, stack,
    /// unreachable), fails to instantiate, never sets a response or writes
    /// too large a body.
    pub async fn handle_http(
        &self,
        component: &ActorComponent,
        mut store: Store<ActorState>,
        request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Result<HttpResponse> {
        use http_body_util::BodyExt as _;
        use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
        let guest = |e: wasmtime::Error| Error::new(ErrorKind::Guest, format!("{e:#}"));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let scheme = match request.uri().scheme_str() {
            Some("https") => Scheme::Https,
            _ => Scheme::Http,
        };
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(scheme, request)
            .map_err(guest)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(guest)?;
        let component = component.clone();
        let deadline = self.limits.execution_deadline;
        // The guest task ends with this call: if the caller gives up (its
        // future is dropped on a timeout), the guard aborts the task, which
        // drops the store and frees the instance's pool slot at once. The
        // guest's own wall-clock deadline holds even while it waits in a
        // host call, where epoch interruption cannot reach it.
        let mut task = AbortOnDropHandle::new(tokio::spawn(async move {
            let run = async {
                let proxy = component.instantiate(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            tokio::time::timeout(deadline, run)
                .await
                .unwrap_or_else(|_| {
                    Err(wasmtime::Error::msg(format!(
                        "the actor ran past its deadline of {} ms",
                        deadline.as_millis()
                    )))
                })
        }));
        let join = |r: std::result::Result<wasmtime::Result<()>, tokio::task::JoinError>| match r {
            Ok(Ok(())) => Error::new(ErrorKind::Guest, "the actor never set a response"),
            Ok(Err(e)) => guest(e),
            Err(e) => Error::new(ErrorKind::Guest, format!("the actor task failed: {e}")),
        };
        let response = match receiver.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                task.abort();
                return Err(Error::new(
                    ErrorKind::Guest,
                    format!("the actor answered with an error: {code:?}"),
                ));
            }
            Err(_) => return Err(join((&mut task).await)),
        };
        let (parts, body) = response.into_parts();
        let limit = self.limits.max_response_body_bytes;
        let collected = http_body_util::Limited::new(body, limit).collect().await;
        let body = match collected {
            Ok(c) => c.to_bytes().to_vec(),
            Err(e) => {
                task.abort();
                return Err(Error::new(
                    ErrorKind::Guest,
                    format!("cannot read the response body: {e}"),
                ));
            }
        };
        // The guest may still fail after the body is complete; that is its
        // own business once the response is whole.
        if let Ok(Err(e)) = (&mut task).await {
            tracing::debug!("actor failed after responding: {e:#}");
        }
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    serde_bytes::ByteBuf::from(value.as_bytes().to_vec()),
                )
            })
            .collect();
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers,
            body,
        })
    }
}
