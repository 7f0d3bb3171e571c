//! Listeners: accepting connections, routing each request to a link, and
//! answering it with what the link's actor returned.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_bytes::ByteBuf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use trellis_protocol::contracts::http::{HttpRequest, HttpResponse};
use trellis_protocol::contracts::{self, Operation as _};
use trellis_protocol::{DecodeLimits, RpcErrorKind};
use trellis_provider_sdk::{InvokeErrorKind, ProviderContext};

use crate::routes::{Route, RouteTable};
use crate::settings::{ProviderSettings, normalize_host};

/// How long requests in flight when a listener closes may take to finish
/// before their connections are dropped. Defaults to 3 s, within the 5 s a
/// host gives a provider to exit.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a client may take to send a request's headers. Defaults to 30 s.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections waiting to be accepted, per listener. Defaults to 1,024.
pub const LISTEN_BACKLOG: u32 = 1_024;

/// Headers that describe one connection rather than the message, so they
/// are not passed between the client and the actor.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

/// What the connections of one listener share.
pub struct Shared {
    address: SocketAddr,
    /// Largest body read: the smaller of a link's `max_body_bytes` and the
    /// NATS server's `max_payload`.
    max_payload: usize,
    routes: RwLock<Arc<RouteTable>>,
    ctx: Arc<ProviderContext>,
}

impl Shared {
    /// The current routes. Readers only clone an `Arc`, so link changes
    /// never hold up requests for long.
    pub fn routes(&self) -> Arc<RouteTable> {
        match self.routes.read() {
            Ok(routes) => routes.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current routes except those of link `key`.
    pub fn routes_without(&self, key: &str) -> Vec<Arc<Route>> {
        self.routes()
            .routes()
            .iter()
            .filter(|r| r.key != key)
            .cloned()
            .collect()
    }

    /// Replaces the routes.
    pub fn set_routes(&self, routes: Vec<Arc<Route>>) {
        let table = Arc::new(RouteTable::new(routes));
        match self.routes.write() {
            Ok(mut current) => *current = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
    }
}

/// One listening socket and the task accepting on it.
pub struct Listener {
    /// Its routes and the provider's lattice connection.
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    closed: oneshot::Receiver<()>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Listens on `address`, serving `routes` from the first connection.
    ///
    /// # Errors
    ///
    /// The socket error, e.g. when the address is in use.
    pub fn bind(
        address: SocketAddr,
        ctx: Arc<ProviderContext>,
        routes: Vec<Arc<Route>>,
        settings: &ProviderSettings,
    ) -> io::Result<Self> {
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let shared = Arc::new(Shared {
            address: listener.local_addr().unwrap_or(address),
            max_payload: ctx.rpc().max_payload(),
            routes: RwLock::new(Arc::new(RouteTable::new(routes))),
            ctx,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (closed_tx, closed) = oneshot::channel();
        let connections = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        let task = tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            connections,
            stop_rx,
            closed_tx,
        ));
        tracing::info!(%address, "listening");
        Ok(Self {
            shared,
            stop,
            closed,
            task,
        })
    }

    /// Stops accepting and returns once the socket is closed, so the
    /// address can be bound again. Connections finish their requests in
    /// flight (up to [`DRAIN_TIMEOUT`]) in the returned task.
    pub async fn close(self) -> JoinHandle<()> {
        self.stop.send_replace(true);
        let _ = self.closed.await;
        tracing::info!(address = %self.shared.address, "stopped listening");
        self.task
    }
}

/// Waits for a free connection place, then accepts a connection into it.
/// Cancel-safe: a cancelled wait gives the place back.
async fn accept_within(
    listener: &tokio::net::TcpListener,
    places: &Arc<Semaphore>,
) -> (OwnedSemaphorePermit, io::Result<(TcpStream, SocketAddr)>) {
    // The semaphore is never closed.
    let place = match places.clone().acquire_owned().await {
        Ok(place) => place,
        Err(_) => std::future::pending().await,
    };
    (place, listener.accept().await)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    places: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    closed: oneshot::Sender<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            (place, accepted) = accept_within(&listener, &places) => match accepted {
                Ok((stream, _peer)) => {
                    let (shared, stop) = (shared.clone(), stop.clone());
                    connections.spawn(async move {
                        serve_connection(stream, shared, stop).await;
                        drop(place);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, usually: wait for some to free.
                    tracing::warn!(address = %shared.address, "cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = closed.send(());
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            address = %shared.address,
            "dropping {} connections still busy after {DRAIN_TIMEOUT:?}",
            connections.len()
        );
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.changed() => {
            // Finish the request in flight, if any, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection ended: {e}");
    }
}

/// Answers one request: routes it, reads its body within the limits of
/// its link, invokes the link's actor and converts its answer.
async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    // RFC 9112 §3.2.2: an absolute-form target overrides the Host header.
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    let host = authority.as_deref().and_then(normalize_host);
    let routes = shared.routes();
    let Some(route) = routes.find(host.as_deref(), request.uri().path()) else {
        return error(StatusCode::NOT_FOUND, "no route for this host and path");
    };
    let settings = &route.settings;
    // No body larger than one NATS message could carry is ever buffered.
    let max_body = settings.max_body_bytes.min(shared.max_payload);
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body exceeds the limit of {max_body} bytes"),
        )
    };
    // A Content-Length over the limit is refused before reading the body.
    if request.body().size_hint().lower() > max_body as u64 {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(settings.timeout, Limited::new(body, max_body).collect())
        .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}"),
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {} ms",
                    settings.timeout.as_millis()
                ),
            );
        }
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                ByteBuf::from(value.as_bytes().to_vec()),
            )
        })
        .collect();
    let http_request = HttpRequest {
        method: parts.method.as_str().to_owned(),
        scheme: "http".to_owned(),
        authority: authority.unwrap_or_else(|| shared.address.to_string()),
        path_with_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        headers,
        body: body.into(),
    };
    let payload = match contracts::encode_request(&http_request) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot encode the request: {e}"),
            );
        }
    };
    let lattice_route = match shared
        .ctx
        .route_to_actor(crate::CONTRACT_ID, &route.actor_id)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(actor = route.actor_id, "cannot route to the actor: {e}");
            return error(StatusCode::BAD_GATEWAY, "the link names an invalid actor");
        }
    };
    let answer = shared
        .ctx
        .rpc()
        .invoke(&lattice_route, HttpRequest::NAME, payload, settings.timeout)
        .await;
    let head = parts.method == Method::HEAD;
    match answer {
        Ok(payload) => match contracts::decode_answer::<HttpRequest>(&payload, &answer_limits()) {
            Ok(Ok(answer)) => match to_response(answer, head) {
                Ok(response) => response,
                Err(e) => invalid_answer(route, &e),
            },
            Ok(Err(failure)) => call_error(route, failure.kind, &failure.message),
            Err(e) => invalid_answer(route, &e.message),
        },
        Err(e) if e.kind() == InvokeErrorKind::RequestTooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request exceeds the lattice's message limit: {}",
                e.detail()
            ),
        ),
        Err(e) => call_error(route, e.rpc_kind(), &e.detail()),
    }
}

/// Limits for decoding an actor's answer: whatever the server carried.
fn answer_limits() -> DecodeLimits {
    DecodeLimits {
        max_message_bytes: usize::MAX,
        ..DecodeLimits::default()
    }
}

/// The response to an answer that is not a valid HTTP response.
fn invalid_answer(route: &Route, message: &str) -> Response<Full<Bytes>> {
    tracing::warn!(
        actor = route.actor_id,
        "invalid answer from the actor: {message}"
    );
    error(
        StatusCode::BAD_GATEWAY,
        "the actor gave an invalid response",
    )
}

/// The response to a failed invocation.
fn call_error(route: &Route, kind: RpcErrorKind, message: &str) -> Response<Full<Bytes>> {
    let actor = route.actor_id.as_str();
    match kind {
        RpcErrorKind::Timeout => error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "the actor did not answer within {} ms",
                route.settings.timeout.as_millis()
            ),
        ),
        RpcErrorKind::NotFound => {
            tracing::debug!(actor, "no running actor: {message}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no running actor serves this route",
            )
        }
        RpcErrorKind::BadRequest => error(
            StatusCode::BAD_REQUEST,
            &format!("the request is malformed: {message}"),
        ),
        RpcErrorKind::Denied => {
            tracing::warn!(actor, "the invocation was refused: {message}");
            error(
                StatusCode::BAD_GATEWAY,
                "the actor's host refused the request",
            )
        }
        RpcErrorKind::TooLarge => {
            tracing::warn!(actor, "too large: {message}");
            error(
                StatusCode::BAD_GATEWAY,
                "the actor's response exceeds the lattice's message limit",
            )
        }
        _ => {
            tracing::warn!(actor, "the actor failed: {message}");
            error(StatusCode::BAD_GATEWAY, "the actor failed")
        }
    }
}

/// Converts the actor's answer. Hop-by-hop headers are dropped, and so is
/// Content-Length (except for `HEAD`): the server sets it from the body.
fn to_response(answer: HttpResponse, head: bool) -> Result<Response<Full<Bytes>>, String> {
    let status = StatusCode::from_u16(answer.status).map_err(|e| e.to_string())?;
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        if is_hop_by_hop(&name) || (name == header::CONTENT_LENGTH && !head) {
            continue;
        }
        let value = HeaderValue::from_bytes(&value).map_err(|e| format!("{name}: {e}"))?;
        headers.append(name, value);
    }
    Ok(response)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || name == header::UPGRADE
}

/// A JSON error response: `{"error": message}`.
fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn encoded(status: u16, headers: &[(&str, &[u8])], body: &[u8]) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), ByteBuf::from(v.to_vec())))
                .collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn the_actors_status_headers_and_body_are_kept() {
        let payload = encoded(
            201,
            &[
                ("x-a", b"1"),
                ("x-a", b"2"),
                ("content-length", b"99"),
                ("transfer-encoding", b"chunked"),
            ],
            b"made",
        );
        let response = to_response(payload, false).unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let values: Vec<_> = response.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        assert!(response.headers().get(header::TRANSFER_ENCODING).is_none());
    }

    #[test]
    fn an_invalid_answer_is_an_error() {
        assert!(to_response(encoded(1000, &[], b""), false).is_err());
        assert!(to_response(encoded(200, &[("bad name", b"x")], b""), false).is_err());
        assert!(to_response(encoded(200, &[("x", b"a\nb")], b""), false).is_err());
        assert!(contracts::decode_answer::<HttpRequest>(b"\xc1", &answer_limits()).is_err());
    }

    #[test]
    fn error_bodies_are_json() {
        let response = error(StatusCode::NOT_FOUND, "no \"route\"");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
