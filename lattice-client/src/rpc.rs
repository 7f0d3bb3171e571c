//! The lattice path, once: [`RpcClient::invoke`] sends a signed invocation
//! and [`serve`] answers them. Hosts (serving actors, calling providers) and
//! capability providers (serving contracts, calling actors) both go through
//! these two functions and nothing else.
//!
//! - **invoke**: sign ([`InvocationSigner`]), encode, check the size
//!   against the server's `max_payload`, request with a timeout, decode the
//!   [`InvocationResponse`], and turn its error into a typed [`InvokeError`].
//! - **serve**: take messages from a subscription, decode within bounds,
//!   check the target, verify the token ([`InvocationVerifier`]), and only
//!   then take an execution slot from the [`Service`] (an actor instance
//!   permit, a provider handler permit) and dispatch. Garbage and forgeries
//!   are answered at once and never hold a slot.
//!
//! The wire format is `docs/protocol.md` §4.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_claims::invocation::{InvocationSigner, InvocationVerifier};
use trellis_protocol::contracts::Transport;
use trellis_protocol::{
    DecodeLimits, Invocation, InvocationResponse, Route, RpcError, RpcErrorKind,
};

use crate::Error;

/// Why [`RpcClient::invoke`] did not return a payload.
pub type InvokeError = Error<InvokeErrorKind>;

/// The kinds of [`InvokeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeErrorKind {
    /// The invocation is larger than the NATS server carries
    /// (`max_payload`); it was not sent.
    RequestTooLarge,
    /// The call was sent (or sending it failed) and did not succeed: no
    /// answer in time ([`RpcErrorKind::Timeout`]), nothing serves the
    /// subject ([`RpcErrorKind::NotFound`]), or the receiver's error.
    Rpc(RpcErrorKind),
}

impl fmt::Display for InvokeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvokeErrorKind::RequestTooLarge => f.write_str("too_large"),
            InvokeErrorKind::Rpc(kind) => fmt::Display::fmt(kind, f),
        }
    }
}

impl Error<InvokeErrorKind> {
    /// The RPC error kind: [`RpcErrorKind::TooLarge`] for a request too
    /// large to send.
    pub fn rpc_kind(&self) -> RpcErrorKind {
        match self.kind() {
            InvokeErrorKind::RequestTooLarge => RpcErrorKind::TooLarge,
            InvokeErrorKind::Rpc(kind) => kind,
        }
    }

    /// The error as the wire's [`RpcError`], for contract stubs and replies.
    pub fn to_rpc(&self) -> RpcError {
        RpcError::new(self.rpc_kind(), self.detail())
    }

    pub(crate) fn rpc(kind: RpcErrorKind, source: impl Into<String>) -> Self {
        Self::with_source(InvokeErrorKind::Rpc(kind), source.into())
    }
}

/// Sends signed invocations over one shared NATS client, so calls stay
/// concurrent and no connection is made per call.
pub struct RpcClient {
    nats: async_nats::Client,
    signer: Arc<InvocationSigner>,
    max_payload: usize,
    limits: DecodeLimits,
}

impl RpcClient {
    /// A client signing with `signer`, refusing invocations larger than
    /// `max_payload` bytes (normally the server's `max_payload`).
    pub fn new(
        nats: async_nats::Client,
        signer: impl Into<Arc<InvocationSigner>>,
        max_payload: usize,
    ) -> Self {
        // Accept any answer the server could carry.
        let limits = DecodeLimits {
            max_message_bytes: DecodeLimits::default().max_message_bytes.max(max_payload),
            ..DecodeLimits::default()
        };
        Self {
            nats,
            signer: signer.into(),
            max_payload,
            limits,
        }
    }

    /// The NATS client.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The signer: its credential can be renewed in place.
    pub fn signer(&self) -> &InvocationSigner {
        &self.signer
    }

    /// The signer, shared: others that sign as this member (its event
    /// publisher) see a renewed credential too.
    pub fn shared_signer(&self) -> Arc<InvocationSigner> {
        self.signer.clone()
    }

    /// The signer's public key.
    pub fn public_key(&self) -> String {
        self.signer.public_key()
    }

    /// Largest invocation sent, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Signs an invocation of `operation` with `payload` along `route`,
    /// sends it, waits up to `timeout` and returns the response payload.
    ///
    /// # Errors
    ///
    /// [`InvokeErrorKind::RequestTooLarge`] for an invocation over
    /// `max_payload` (not sent); otherwise [`InvokeErrorKind::Rpc`] with
    /// [`RpcErrorKind::Timeout`] when no answer comes in time,
    /// [`RpcErrorKind::NotFound`] when nothing listens on the subject,
    /// [`RpcErrorKind::Failed`] for an answer that does not decode or a NATS
    /// failure, or the kind the receiver reported (its message is the
    /// error's [`Error::detail`]).
    pub async fn invoke(
        &self,
        route: &Route,
        operation: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let id = uuid::Uuid::new_v4().to_string();
        let token = self
            .signer
            .sign(&id, &route.origin.id, &route.target.id, operation, &payload)
            .map_err(|e| InvokeError::rpc(RpcErrorKind::Failed, e.to_string()))?;
        let mut invocation = Invocation::new(
            id,
            route.origin.clone(),
            route.target.clone(),
            operation,
            payload,
        );
        invocation.token = token;
        let bytes = invocation
            .encode()
            .map_err(|e| InvokeError::rpc(RpcErrorKind::BadRequest, e.to_string()))?;
        if bytes.len() > self.max_payload {
            return Err(InvokeError::with_source(
                InvokeErrorKind::RequestTooLarge,
                format!(
                    "invocation of {} bytes exceeds the server's max_payload of {}",
                    bytes.len(),
                    self.max_payload
                ),
            ));
        }
        let subject = &route.subject;
        let timed_out = || {
            InvokeError::rpc(
                RpcErrorKind::Timeout,
                format!("no answer on {subject} within {timeout:?}"),
            )
        };
        let reply = tokio::time::timeout(
            timeout,
            // The client's own request timeout must not cut a longer call short.
            self.nats.send_request(
                subject.clone(),
                async_nats::Request::new()
                    .payload(bytes.into())
                    .timeout(Some(timeout)),
            ),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => {
                InvokeError::rpc(RpcErrorKind::NotFound, format!("nothing serves {subject}"))
            }
            async_nats::RequestErrorKind::TimedOut => timed_out(),
            async_nats::RequestErrorKind::MaxPayloadExceeded => {
                InvokeError::with_source(InvokeErrorKind::RequestTooLarge, e)
            }
            _ => InvokeError::with_source(InvokeErrorKind::Rpc(RpcErrorKind::Failed), e),
        })?;
        let response = InvocationResponse::decode(&reply.payload, &self.limits).map_err(|e| {
            InvokeError::rpc(RpcErrorKind::Failed, format!("undecodable response: {e}"))
        })?;
        match response.error {
            Some(err) => Err(InvokeError::rpc(err.kind, err.message)),
            None => Ok(response.payload),
        }
    }

    /// A [`Transport`] for typed contract calls along `route`, each waiting
    /// up to `timeout`.
    pub fn transport<'a>(&'a self, route: &'a Route, timeout: Duration) -> RouteTransport<'a> {
        RouteTransport {
            client: self,
            route,
            timeout,
        }
    }
}

/// Typed contract calls along one route (see [`RpcClient::transport`]).
pub struct RouteTransport<'a> {
    client: &'a RpcClient,
    route: &'a Route,
    timeout: Duration,
}

impl Transport for RouteTransport<'_> {
    async fn call(&self, operation: &'static str, payload: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        self.client
            .invoke(self.route, operation, payload, self.timeout)
            .await
            .map_err(|e| e.to_rpc())
    }
}

/// What answers verified invocations for one target: an actor, or a
/// provider's contract.
pub trait Service: Send + Sync + 'static {
    /// What a running invocation holds: an instance permit, a handler
    /// permit, the module it runs on.
    type Slot: Send + 'static;

    /// Waits for a free slot. `None` stops serving (the service is gone).
    fn admit(&self) -> impl Future<Output = Option<Self::Slot>> + Send;

    /// Answers one verified invocation. `Ok` is the response payload (for
    /// a contract, its encoded answer); `Err` is sent as the response's
    /// error.
    fn call(
        &self,
        slot: &Self::Slot,
        invocation: Invocation,
    ) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send;
}

/// What [`serve`] checks every invocation against, and how it replies.
pub struct Server {
    nats: async_nats::Client,
    verifier: Arc<InvocationVerifier>,
    target_id: Arc<str>,
    limits: DecodeLimits,
    max_payload: usize,
}

impl Server {
    /// A server for invocations of `target_id`, verified by `verifier`,
    /// accepting and answering messages of at most `max_payload` bytes
    /// (normally the server's `max_payload`; at least 1 KiB is accepted).
    pub fn new(
        nats: async_nats::Client,
        verifier: Arc<InvocationVerifier>,
        target_id: impl Into<Arc<str>>,
        max_payload: usize,
    ) -> Self {
        Self {
            nats,
            verifier,
            target_id: target_id.into(),
            limits: DecodeLimits {
                max_message_bytes: max_payload.max(1024),
                ..DecodeLimits::default()
            },
            max_payload,
        }
    }

    /// The limits invocations are decoded within.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Decodes `payload`, checks that it targets this server, and verifies
    /// its token. The one place where a received invocation is verified.
    fn admit(&self, payload: &[u8]) -> Result<Invocation, InvocationResponse> {
        let invocation = Invocation::decode(payload, &self.limits).map_err(|e| {
            InvocationResponse::error(
                "",
                RpcError::decode_kind(&e),
                format!("cannot decode the invocation: {e}"),
            )
        })?;
        let refuse = |kind: RpcErrorKind, message: String| {
            InvocationResponse::error(invocation.id.clone(), kind, message)
        };
        if invocation.target.id != *self.target_id {
            return Err(refuse(
                RpcErrorKind::NotFound,
                format!(
                    "this subject serves {}, not {}",
                    self.target_id, invocation.target.id
                ),
            ));
        }
        self.verifier
            .verify_call(
                &invocation.token,
                &invocation.id,
                &invocation.origin.id,
                &self.target_id,
                &invocation.operation,
                &invocation.payload,
            )
            .map_err(|e| refuse(RpcErrorKind::Denied, format!("invocation refused: {e}")))?;
        Ok(invocation)
    }

    /// Publishes `response` to `reply`, replacing it with a `too_large`
    /// error when it exceeds `max_payload` bytes. Failures are logged: the
    /// caller has nobody else to tell.
    async fn respond(&self, reply: async_nats::Subject, response: InvocationResponse) {
        let mut bytes = match response.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot encode a response: {e}");
                return;
            }
        };
        if bytes.len() > self.max_payload {
            let too_large = InvocationResponse::error(
                response.invocation_id.clone(),
                RpcErrorKind::TooLarge,
                format!(
                    "the response of {} bytes exceeds the server's max_payload of {}",
                    bytes.len(),
                    self.max_payload
                ),
            );
            match too_large.encode() {
                Ok(b) => bytes = b,
                Err(e) => {
                    tracing::error!("cannot encode a response: {e}");
                    return;
                }
            }
        }
        if let Err(e) = self.nats.publish(reply, bytes.into()).await {
            tracing::warn!("cannot send a response: {e}");
        }
    }
}

/// Serves invocations from `subscriber` with `service` until `stop` turns
/// true (or its sender is dropped), then drains: unsubscribes and answers
/// what the server had already routed here, so nothing is dropped. Returns
/// when the subscription ends; invocations still running finish on their
/// own tasks (wait for them through the service's slots).
///
/// Every message is decoded, checked and verified (see [`Server`]) before
/// [`Service::admit`] is asked for a slot; refusals are answered at once.
/// Messages without a reply subject are ignored.
pub async fn serve<S: Service>(
    server: Arc<Server>,
    mut subscriber: async_nats::Subscriber,
    service: Arc<S>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut draining = *stop.borrow_and_update();
    if draining && let Err(e) = subscriber.drain().await {
        tracing::warn!("cannot drain a subscription: {e}");
        return;
    }
    loop {
        let message = if draining {
            subscriber.next().await
        } else {
            tokio::select! {
                message = subscriber.next() => message,
                () = stopped(&mut stop) => {
                    draining = true;
                    if let Err(e) = subscriber.drain().await {
                        tracing::warn!("cannot drain a subscription: {e}");
                        break;
                    }
                    continue;
                }
            }
        };
        let Some(message) = message else { break };
        let Some(reply) = message.reply else { continue };
        let invocation = match server.admit(&message.payload) {
            Ok(invocation) => invocation,
            Err(refusal) => {
                server.respond(reply, refusal).await;
                continue;
            }
        };
        let Some(slot) = service.admit().await else {
            break;
        };
        let (server, service) = (server.clone(), service.clone());
        tokio::spawn(async move {
            let id = invocation.id.clone();
            let response = match service.call(&slot, invocation).await {
                Ok(payload) => InvocationResponse::ok(id, payload),
                Err(e) => InvocationResponse::error(id, e.kind, e.message),
            };
            server.respond(reply, response).await;
            drop(slot);
        });
    }
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any other await.
    let _ = stop.wait_for(|stopped| *stopped).await.is_ok();
}
