//! Running actors: claims checked at start, one queue subscription per
//! actor, a fresh instance per invocation, a bound on concurrent instances,
//! and updates that never drop in-flight invocations.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use trellis_claims::actor::{ActorMetadata, verify_actor};
use trellis_claims::invocation::InvocationVerifier;
use trellis_claims::{Claims, VerifyOptions};
use trellis_lattice_client::rpc::{Server, Service};
use trellis_protocol::contracts::http::HttpRequest;
use trellis_protocol::contracts::{self, Operation as _};
use trellis_protocol::{ActorDescription, Invocation, RpcError, RpcErrorKind};

use crate::error::{Error, ErrorKind, Result};
use crate::runtime::{ActorComponent, Capabilities, CapabilityContext, Runtime};
use trellis_protocol::policy::{PolicyAction, PolicyRequest};

/// A verified, compiled actor module.
pub struct LoadedActor {
    /// Its verified claims.
    pub claims: Claims<ActorMetadata>,
    /// The claims as signed: the JWT embedded in the module, stored in the
    /// lattice bucket so that every host can verify it again.
    pub token: String,
    /// Where it came from.
    pub image_ref: String,
    /// The compiled component.
    pub component: ActorComponent,
    /// The contract ids its claims grant, as a set shared by every
    /// invocation.
    pub caps: Arc<HashSet<String>>,
}

/// Verifies `wasm`'s claims against `trust` and compiles it.
///
/// # Errors
///
/// [`ErrorKind::Claims`] (with the failed check in
/// [`Error::claims_kind`]) or [`ErrorKind::InvalidComponent`].
pub async fn load(
    runtime: &Runtime,
    wasm: Vec<u8>,
    image_ref: String,
    trust: &VerifyOptions,
) -> Result<LoadedActor> {
    if wasm.len() > runtime.limits().max_component_bytes {
        return Err(Error::new(
            ErrorKind::InvalidComponent,
            format!(
                "module of {} bytes exceeds the limit of {}",
                wasm.len(),
                runtime.limits().max_component_bytes
            ),
        ));
    }
    trellis_claims::wasm::binary_kind(&wasm)?;
    let claims = verify_actor(&wasm, trust)?;
    let token = trellis_claims::wasm::extract_token(&wasm)?.unwrap_or_default();
    let component = runtime
        .prepare(Arc::new(wasm), &claims.trellis.module_hash)
        .await?;
    let caps = Arc::new(claims.trellis.caps.iter().cloned().collect());
    Ok(LoadedActor {
        claims,
        token,
        image_ref,
        component,
        caps,
    })
}

/// The current module of a running actor and its limits.
struct Current {
    loaded: Arc<LoadedActor>,
    max_instances: u32,
    permits: Arc<Semaphore>,
    annotations: BTreeMap<String, String>,
}

/// An actor running on this host.
pub struct RunningActor {
    /// Its public key.
    pub id: Arc<str>,
    current: RwLock<Arc<Current>>,
    served: AtomicU64,
    stop_tx: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What serving an actor needs from the host.
#[derive(Clone)]
pub struct ServeContext {
    /// The runtime.
    pub runtime: Arc<Runtime>,
    /// Links, provider calls and configuration for actors' imports.
    pub capabilities: Arc<dyn Capabilities>,
    /// Verifies incoming invocations.
    pub verifier: Arc<InvocationVerifier>,
    /// NATS.
    pub nats: async_nats::Client,
    /// End-to-end timeout of one invocation.
    pub rpc_timeout: Duration,
    /// Most verified invocations per actor waiting for an instance or
    /// running ([`crate::HostConfig::max_pending_invocations`]).
    pub max_pending_invocations: usize,
    /// Largest reply sent, in bytes.
    pub max_payload: usize,
    /// The policy service that decides each invocation, if one is set.
    pub(crate) policy: Option<Arc<crate::policy::Policy>>,
    /// The lattice, for policy requests.
    pub(crate) lattice: String,
    /// This host's id, for policy requests.
    pub(crate) host_id: String,
}

impl RunningActor {
    /// Subscribes the actor on its RPC subject in a queue group named after
    /// it, so that invocations are balanced over every host running it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Nats`] if the subscription fails.
    pub async fn start(
        ctx: ServeContext,
        subject: String,
        loaded: LoadedActor,
        max_instances: u32,
        annotations: BTreeMap<String, String>,
    ) -> Result<Arc<Self>> {
        let id: Arc<str> = Arc::from(loaded.claims.sub.as_str());
        let subscriber = ctx
            .nats
            .queue_subscribe(subject.clone(), format!("trellis-{id}"))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Nats,
                    format!("cannot subscribe on {subject}: {e}"),
                )
            })?;
        let current = Arc::new(Current {
            loaded: Arc::new(loaded),
            max_instances,
            permits: Arc::new(Semaphore::new(max_instances as usize)),
            annotations,
        });
        // Make sure the server knows the subscription before callers are
        // told the actor runs.
        trellis_lattice_client::round_trip(&ctx.nats, ctx.rpc_timeout)
            .await
            .map_err(|e| Error::new(ErrorKind::Nats, e.to_string()))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = Arc::new(
            Server::new(
                ctx.nats.clone(),
                ctx.verifier.clone(),
                id.clone(),
                ctx.max_payload,
            )
            .with_deadline(ctx.rpc_timeout)
            .with_max_pending(ctx.max_pending_invocations),
        );
        let actor = Arc::new_cyclic(|weak: &std::sync::Weak<RunningActor>| {
            let service = Arc::new(ActorService {
                actor: weak.clone(),
                ctx,
            });
            let task = tokio::spawn(trellis_lattice_client::rpc::serve(
                server, subscriber, service, stop_rx,
            ));
            RunningActor {
                id: id.clone(),
                current: RwLock::new(current),
                served: AtomicU64::new(0),
                stop_tx,
                task: std::sync::Mutex::new(Some(task)),
            }
        });
        Ok(actor)
    }

    fn current(&self) -> Arc<Current> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The module hash of the current module.
    pub fn module_hash(&self) -> String {
        self.current().loaded.claims.trellis.module_hash.clone()
    }

    /// The signed claims (JWT) of its current module.
    pub fn claims_token(&self) -> String {
        self.current().loaded.token.clone()
    }

    /// Invocations answered successfully so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Its description for the inventory.
    pub fn describe(&self) -> ActorDescription {
        let current = self.current();
        ActorDescription {
            id: self.id.to_string(),
            name: current.loaded.claims.trellis.name.clone(),
            image_ref: current.loaded.image_ref.clone(),
            revision: current.loaded.claims.trellis.rev,
            max_instances: current.max_instances,
            annotations: current.annotations.clone(),
        }
    }

    /// Changes the maximum concurrent instances, and merges `annotations`
    /// into the actor's. In-flight invocations keep their instance.
    pub fn scale(&self, max_instances: u32, annotations: BTreeMap<String, String>) {
        self.swap(|c| {
            let mut merged = c.annotations.clone();
            merged.extend(annotations);
            Current {
                loaded: c.loaded.clone(),
                max_instances,
                permits: if c.max_instances == max_instances {
                    c.permits.clone()
                } else {
                    Arc::new(Semaphore::new(max_instances as usize))
                },
                annotations: merged,
            }
        });
    }

    /// Replaces the module. Invocations already running finish on the old
    /// one; new ones use the new one.
    pub fn update(&self, loaded: LoadedActor) {
        let loaded = Arc::new(loaded);
        self.swap(|c| Current {
            loaded: loaded.clone(),
            max_instances: c.max_instances,
            permits: c.permits.clone(),
            annotations: c.annotations.clone(),
        });
    }

    fn swap(&self, f: impl FnOnce(&Current) -> Current) {
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let next = f(&guard);
        *guard = Arc::new(next);
    }

    /// Stops taking invocations: unsubscribes, answers the invocations the
    /// server had already routed here, and waits up to `drain` for those in
    /// flight.
    pub async fn stop(&self, drain: Duration) {
        self.stop_tx.send_replace(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        let deadline = tokio::time::Instant::now() + drain;
        if let Some(mut task) = task
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            task.abort();
        }
        let current = self.current();
        let all = current.max_instances;
        let _ = tokio::time::timeout_at(deadline, current.permits.acquire_many(all)).await;
    }

    /// Answers one verified invocation on `current`'s module.
    async fn answer(
        &self,
        ctx: &ServeContext,
        current: &Current,
        invocation: Invocation,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<Vec<u8>, RpcError> {
        if invocation.operation != HttpRequest::NAME {
            return Err(RpcError::new(
                RpcErrorKind::NotFound,
                format!("the actor does not export {}", invocation.operation),
            ));
        }
        let limits = trellis_protocol::DecodeLimits {
            max_message_bytes: ctx.max_payload.max(1024),
            ..trellis_protocol::DecodeLimits::default()
        };
        let request: HttpRequest = contracts::decode_request(&invocation.payload, &limits)?;
        let request = to_hyper(request).map_err(|e| RpcError::new(RpcErrorKind::BadRequest, e))?;
        let caps = CapabilityContext {
            actor_id: self.id.clone(),
            caps: current.loaded.caps.clone(),
            backend: ctx.capabilities.clone(),
        };
        let store = ctx.runtime.new_store(&self.id, caps);
        let answer = match tokio::time::timeout_at(
            deadline,
            ctx.runtime
                .handle_http(&current.loaded.component, store, request),
        )
        .await
        {
            Ok(Ok(response)) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                Ok(response)
            }
            Ok(Err(e)) => {
                tracing::warn!(actor = %self.id, "invocation failed: {e}");
                Err(RpcError::new(RpcErrorKind::Failed, e.to_string()))
            }
            Err(_) => Err(RpcError::new(
                RpcErrorKind::Timeout,
                format!("the actor did not answer within {:?}", ctx.rpc_timeout),
            )),
        };
        contracts::encode_answer::<HttpRequest>(&answer)
    }
}

/// Serves a running actor's invocations: one instance permit per
/// invocation, taken only after it verified.
struct ActorService {
    actor: std::sync::Weak<RunningActor>,
    ctx: ServeContext,
}

impl Service for ActorService {
    type Slot = (Arc<RunningActor>, Arc<Current>, OwnedSemaphorePermit);

    async fn admit(
        &self,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<Self::Slot, RpcError> {
        let gone = || RpcError::new(RpcErrorKind::NotFound, "the actor no longer runs here");
        let actor = self.actor.upgrade().ok_or_else(gone)?;
        let current = actor.current();
        let permit = tokio::time::timeout_at(deadline, current.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                RpcError::new(
                    RpcErrorKind::Timeout,
                    format!(
                        "no free instance of the actor within {} ms",
                        self.ctx.rpc_timeout.as_millis()
                    ),
                )
            })?
            .map_err(|_| gone())?;
        Ok((actor, current, permit))
    }

    async fn call(
        &self,
        (actor, current, _): &Self::Slot,
        invocation: Invocation,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<Vec<u8>, RpcError> {
        if let Some(policy) = &self.ctx.policy {
            let request = PolicyRequest {
                lattice: self.ctx.lattice.clone(),
                host_id: self.ctx.host_id.clone(),
                action: PolicyAction::Invocation {
                    origin: invocation.origin.id.clone(),
                    target: invocation.target.id.clone(),
                    operation: invocation.operation.clone(),
                },
            };
            policy
                .check(&request)
                .await
                .map_err(|e| RpcError::new(RpcErrorKind::Denied, e.to_string()))?;
        }
        actor.answer(&self.ctx, current, invocation, deadline).await
    }
}

impl Drop for RunningActor {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

fn to_hyper(
    request: HttpRequest,
) -> std::result::Result<hyper::Request<http_body_util::Full<Bytes>>, String> {
    let uri = http::Uri::builder()
        .scheme(request.scheme.as_str())
        .authority(if request.authority.is_empty() {
            "localhost"
        } else {
            request.authority.as_str()
        })
        .path_and_query(if request.path_with_query.is_empty() {
            "/"
        } else {
            request.path_with_query.as_str()
        })
        .build()
        .map_err(|e| format!("bad URI: {e}"))?;
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(uri);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    builder
        .body(http_body_util::Full::new(Bytes::from(request.body)))
        .map_err(|e| format!("bad request: {e}"))
}
