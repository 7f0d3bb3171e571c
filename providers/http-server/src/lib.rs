//! Trellis capability provider: `wasi:http`: an HTTP server that forwards
//! requests to linked actors.
//!
//! Each link definition naming this provider makes an actor answer HTTP
//! requests. A request is sent to the actor over NATS as a signed
//! `wasi:http` invocation ([`HANDLE_OPERATION`]) carrying its method,
//! scheme (`http`), authority (the `Host` header, else the listener's
//! address), path and query, headers and whole body; the actor's
//! `wasi:http/incoming-handler` answers with a status, headers and body,
//! which the client receives. Requests are served concurrently, over the
//! provider's one NATS connection, signed with the provider's key.
//!
//! # Link configuration
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `address` | `127.0.0.1:8080` | IP address and port to listen on (`0.0.0.0:8080` for every interface) |
//! | `host` | none: every host | answer only requests whose `Host` header names this host (case-insensitive, port ignored) |
//! | `path_prefix` | `/`: every path | answer only paths under this prefix, by whole segments: `/api` matches `/api` and `/api/x`, not `/apix`. The path is forwarded unchanged |
//! | `max_body_bytes` | `10485760` (10 MiB) | largest request body, in bytes; never more than the NATS server's `max_payload`, the largest invocation it carries |
//! | `timeout_ms` | `30000` (30 s) | how long the actor may take to answer, and the request body to arrive, in ms |
//!
//! Defaults are in [`Settings`]'s `Default`. Other keys are left to the
//! actor. A link with an invalid value is refused (the SDK logs why) and
//! the previous version of that link, if any, stops being served.
//!
//! # Provider configuration
//!
//! The configuration of the provider's start request (not a link's):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `max_connections` | `4096` | most connections open at once on each listener; further ones wait in the listen backlog ([`LISTEN_BACKLOG`]) until one closes |
//!
//! Defaults are in [`ProviderSettings`]'s `Default`. An invalid value
//! stops the provider at start, naming the key.
//!
//! # Listeners and routing
//!
//! There is one listener per distinct `address`, opened when the first link
//! naming it is put and closed when the last one is deleted, or when the
//! provider shuts down; requests in flight then get [`DRAIN_TIMEOUT`] to
//! finish. Several links may share an address when they differ by `host`
//! or `path_prefix`; a request goes to the most specific match: links
//! naming its host before links naming none, then the longest matching
//! prefix. A link with the same address, `host` and `path_prefix` as
//! another is refused.
//!
//! If an address cannot be bound (in use, not local, no permission), the
//! link is refused and [`health`](Provider::health) reports the provider
//! unhealthy, naming the address, until that link is deleted or put again
//! and binds.
//!
//! # Limits and errors
//!
//! The provider answers with a JSON body `{"error": "…"}` when:
//!
//! | status | when |
//! |---|---|
//! | `400` | the request is malformed (most are refused by the HTTP parser itself), its body cannot be read, or the actor's host found it invalid (`bad_request`) |
//! | `404` | no link answers its host and path |
//! | `408` | the request body did not arrive within `timeout_ms` |
//! | `413` | the body exceeds `max_body_bytes` or the NATS server's `max_payload` (1 MiB by default, so raise it for large bodies), checked on `Content-Length` before reading and while reading, so no more is buffered; or the encoded request exceeds `max_payload` |
//! | `502` | the actor failed (trapped: `failed`), its host refused the call (`denied`), its response exceeds the NATS `max_payload` (`too_large`), or its response is invalid |
//! | `503` | no running actor answers the link (`not_found`: nothing serves its NATS subject) |
//! | `504` | the actor did not answer within `timeout_ms`, or its host's own RPC timeout expired first (`timeout`) |
//! | `500` | the request could not be encoded (not expected to happen) |
//!
//! Names in parentheses are the `RpcErrorKind` the actor's host answered;
//! their details are logged by the provider, and sent to the client only
//! for `400`.
//!
//! Hop-by-hop headers (`Connection`, `Transfer-Encoding`, …) are not
//! forwarded either way, and the response's `Content-Length` is set from
//! its body.

mod routes;
mod server;
pub mod settings;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Mutex;
use trellis_protocol::LinkDefinition;
use trellis_protocol::contracts::Contract as _;
use trellis_provider_sdk::{HealthCheck, Provider, ProviderContext, SdkError, SdkErrorKind};

pub use server::{DRAIN_TIMEOUT, HEADER_READ_TIMEOUT, LISTEN_BACKLOG};
pub use settings::{ProviderSettings, Settings};
pub use trellis_protocol::contracts::http::HANDLE_OPERATION;

use routes::{LinkKey, Route, link_key};

/// The contract this provider serves: it calls actors' `wasi:http` handler.
pub const CONTRACT_ID: &str = trellis_protocol::contracts::http::Http::ID;
use server::Listener;

/// Runs the provider process: reads host data from stdin and serves.
pub fn run() -> std::process::ExitCode {
    trellis_provider_sdk::run(|ctx| async move { HttpServerProvider::new(ctx) })
}

/// The `wasi:http` server provider.
pub struct HttpServerProvider {
    ctx: Arc<ProviderContext>,
    settings: ProviderSettings,
    state: Mutex<State>,
}

/// Listeners and the links they serve. Changed only by link puts and
/// deletions; requests read their listener's routes without this lock.
#[derive(Default)]
struct State {
    listeners: HashMap<SocketAddr, Listener>,
    /// The address each served link is on.
    links: HashMap<LinkKey, SocketAddr>,
    /// Links refused because their address could not be bound, with why.
    bind_failures: BTreeMap<LinkKey, String>,
}

impl HttpServerProvider {
    /// A provider invoking actors over `ctx`'s NATS client, with no links
    /// yet, configured by its start configuration
    /// ([`ProviderSettings::from_config`]).
    ///
    /// # Errors
    ///
    /// [`SdkErrorKind::Config`] when a provider setting is invalid.
    pub fn new(ctx: Arc<ProviderContext>) -> Result<Self, SdkError> {
        let settings = ProviderSettings::from_config(&ctx.host_data.config)
            .map_err(|e| SdkError::with_source(SdkErrorKind::Config, e))?;
        Ok(Self {
            ctx,
            settings,
            state: Mutex::new(State::default()),
        })
    }
}

impl Provider for HttpServerProvider {
    /// The route a link is served by.
    type Link = Arc<Route>;

    async fn bind(&self, link: &LinkDefinition) -> Result<Arc<Route>, String> {
        let settings = Settings::from_config(&link.config)?;
        let route = Arc::new(Route {
            key: link_key(link),
            actor_id: link.actor_id.clone(),
            settings,
        });
        self.state
            .lock()
            .await
            .put(route.clone(), &self.ctx, &self.settings)
            .await?;
        Ok(route)
    }

    async fn unbind(&self, link: &LinkDefinition, bound: Option<Arc<Arc<Route>>>) {
        let mut state = self.state.lock().await;
        match bound {
            // Only while it is still the route served for its link: a
            // replacement has already taken its place otherwise.
            Some(route) => state.remove_route(&route).await,
            None => {
                state.bind_failures.remove(&link_key(link));
            }
        }
    }

    async fn health(&self) -> HealthCheck {
        let state = self.state.lock().await;
        if state.bind_failures.is_empty() {
            let mut addresses: Vec<_> = state.listeners.keys().map(ToString::to_string).collect();
            addresses.sort();
            HealthCheck {
                healthy: true,
                message: if addresses.is_empty() {
                    "no links".to_owned()
                } else {
                    format!("listening on {}", addresses.join(", "))
                },
            }
        } else {
            let mut failures: Vec<_> = state.bind_failures.values().cloned().collect();
            failures.sort();
            failures.dedup();
            HealthCheck {
                healthy: false,
                message: failures.join("; "),
            }
        }
    }

    async fn shutdown(&self) {
        let listeners: Vec<_> = {
            let mut state = self.state.lock().await;
            state.links.clear();
            state.listeners.drain().map(|(_, l)| l).collect()
        };
        let mut tasks = Vec::with_capacity(listeners.len());
        for listener in listeners {
            tasks.push(listener.close().await);
        }
        // Each task drains its connections within DRAIN_TIMEOUT.
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, wait_all(tasks)).await;
    }
}

/// Waits for every task.
async fn wait_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

impl State {
    /// Serves `route` on its address, replacing any previous version of
    /// its link.
    async fn put(
        &mut self,
        route: Arc<Route>,
        ctx: &Arc<ProviderContext>,
        settings: &ProviderSettings,
    ) -> Result<(), String> {
        let address = route.settings.address;
        let conflict = self.listeners.get(&address).and_then(|l| {
            l.shared
                .routes()
                .routes()
                .iter()
                .find(|r| r.key != route.key && r.same_scope(&route.settings))
                .cloned()
        });
        if let Some(other) = conflict {
            self.remove(&route.key).await;
            return Err(format!(
                "{address} already routes host {} and path prefix {} to actor {}",
                other.settings.host.as_deref().unwrap_or("(any)"),
                other.settings.path_prefix,
                other.actor_id
            ));
        }
        // The listener's routes change in one step: a request sees the
        // old version of the link or the new one, never none.
        let bind_error = match self.listeners.entry(address) {
            Entry::Occupied(listener) => {
                let shared = &listener.get().shared;
                let mut routes = shared.routes_without(&route.key);
                routes.push(route.clone());
                shared.set_routes(routes);
                None
            }
            Entry::Vacant(vacant) => {
                match Listener::bind(address, ctx.clone(), vec![route.clone()], settings) {
                    Ok(listener) => {
                        vacant.insert(listener);
                        None
                    }
                    Err(e) => Some(format!("cannot listen on {address}: {e}")),
                }
            }
        };
        if let Some(message) = bind_error {
            tracing::warn!(actor = route.actor_id, "{message}");
            self.remove(&route.key).await;
            self.bind_failures
                .insert(route.key.clone(), message.clone());
            return Err(message);
        }
        self.bind_failures.remove(&route.key);
        let previous = self.links.insert(route.key.clone(), address);
        tracing::info!(
            actor = route.actor_id,
            %address,
            host = route.settings.host.as_deref().unwrap_or("*"),
            path_prefix = route.settings.path_prefix,
            "serving a link"
        );
        if let Some(previous) = previous.filter(|p| *p != address) {
            if let Some(listener) = self.listeners.get(&previous) {
                listener
                    .shared
                    .set_routes(listener.shared.routes_without(&route.key));
            }
            self.close_if_unused(previous).await;
        }
        Ok(())
    }

    /// Stops serving `route` if it is still the one served for its link.
    async fn remove_route(&mut self, route: &Arc<Route>) {
        let current = self
            .links
            .get(&route.key)
            .and_then(|address| self.listeners.get(address))
            .is_some_and(|l| {
                l.shared
                    .routes()
                    .routes()
                    .iter()
                    .any(|r| Arc::ptr_eq(r, route))
            });
        if current {
            self.remove(&route.key).await;
        }
    }

    /// Stops serving link `key`, closing its listener if it was the last.
    async fn remove(&mut self, key: &LinkKey) {
        if let Some(address) = self.detach(key) {
            self.close_if_unused(address).await;
        }
    }

    /// Takes link `key` out of its listener's routes (leaving the listener
    /// open) and forgets its bind failure; returns its address.
    fn detach(&mut self, key: &LinkKey) -> Option<SocketAddr> {
        self.bind_failures.remove(key);
        let address = self.links.remove(key)?;
        if let Some(listener) = self.listeners.get(&address) {
            listener
                .shared
                .set_routes(listener.shared.routes_without(key));
        }
        Some(address)
    }

    /// Closes the listener on `address` if no link uses it any more.
    async fn close_if_unused(&mut self, address: SocketAddr) {
        let unused = self
            .listeners
            .get(&address)
            .is_some_and(|l| l.shared.routes().is_empty());
        if unused && let Some(listener) = self.listeners.remove(&address) {
            // The socket is closed on return; requests in flight finish in
            // the background.
            drop(listener.close().await);
        }
    }
}
