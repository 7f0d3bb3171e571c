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
use trellis_claims::invocation::{Call, InvocationSigner, InvocationVerifier};
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
            .sign(&route_call(route, &id, operation), &payload)
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

/// The [`Call`] an invocation `id` of `operation` along `route` is signed
/// and verified as: its subject, and the contract and link name of its
/// origin.
pub fn route_call<'a>(route: &'a Route, id: &'a str, operation: &'a str) -> Call<'a> {
    Call {
        id,
        origin: &route.origin.id,
        target: &route.target.id,
        operation,
        subject: &route.subject,
        contract_id: route.origin.contract_id.as_deref(),
        link_name: route.origin.link_name.as_deref(),
    }
}

/// What answers verified invocations for one target: an actor, or a
/// provider's contract.
pub trait Service: Send + Sync + 'static {
    /// What a running invocation holds: an instance permit, a handler
    /// permit, the module it runs on.
    type Slot: Send + 'static;

    /// Waits for a free slot, at most until `deadline` (the invocation's
    /// end-to-end deadline, counted from its receipt).
    ///
    /// # Errors
    ///
    /// The error to answer with: [`RpcErrorKind::Timeout`] when no slot
    /// came free in time, [`RpcErrorKind::NotFound`] when the target no
    /// longer runs.
    fn admit(
        &self,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Self::Slot, RpcError>> + Send;

    /// Answers one verified invocation, within `deadline`. `Ok` is the
    /// response payload (for a contract, its encoded answer); `Err` is
    /// sent as the response's error.
    fn call(
        &self,
        slot: &Self::Slot,
        invocation: Invocation,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Vec<u8>, RpcError>> + Send;
}

/// End-to-end deadline of one served invocation, from its receipt: the
/// wait for a slot and the call together. Defaults to 30 s.
pub const DEFAULT_SERVE_DEADLINE: Duration = Duration::from_secs(30);

/// Most verified invocations that may wait for a slot or run at once per
/// [`serve`] loop; further ones are answered `timeout` at once instead of
/// queueing. Defaults to 4,096.
pub const DEFAULT_MAX_PENDING: usize = 4_096;

/// What [`serve`] checks every invocation against, and how it replies.
pub struct Server {
    nats: async_nats::Client,
    verifier: Arc<InvocationVerifier>,
    target_id: Arc<str>,
    limits: DecodeLimits,
    max_payload: usize,
    deadline: Duration,
    max_pending: usize,
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
            deadline: DEFAULT_SERVE_DEADLINE,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }

    /// Sets the end-to-end deadline of each invocation, from receipt.
    /// Defaults to [`DEFAULT_SERVE_DEADLINE`].
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets how many verified invocations may wait or run at once.
    /// Defaults to [`DEFAULT_MAX_PENDING`].
    #[must_use]
    pub fn with_max_pending(mut self, max_pending: usize) -> Self {
        self.max_pending = max_pending.max(1);
        self
    }

    /// The limits invocations are decoded within.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Decodes `payload`, checks that it targets this server, and verifies
    /// its token. The one place where a received invocation is verified.
    fn admit(&self, subject: &str, payload: &[u8]) -> Result<Invocation, InvocationResponse> {
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
        // A call over a link names the same contract and link on both ends.
        let (origin, target) = (&invocation.origin, &invocation.target);
        if (target.contract_id.is_some() && target.contract_id != origin.contract_id)
            || (target.link_name.is_some() && target.link_name != origin.link_name)
        {
            return Err(refuse(
                RpcErrorKind::BadRequest,
                "the origin and target name different links".to_owned(),
            ));
        }
        let call = Call {
            id: &invocation.id,
            origin: &origin.id,
            target: &self.target_id,
            operation: &invocation.operation,
            subject,
            contract_id: origin.contract_id.as_deref(),
            link_name: origin.link_name.as_deref(),
        };
        self.verifier
            .verify_call(&invocation.token, &call, &invocation.payload)
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
/// anything is spent on it; refusals are answered at once. A verified
/// invocation then takes one of the server's pending places (when all are
/// taken it is answered `timeout` at once) and waits on its own task for
/// [`Service::admit`], so the loop never blocks on a busy service. Its
/// deadline counts from its receipt. Messages without a reply subject are
/// ignored.
pub async fn serve<S: Service>(
    server: Arc<Server>,
    mut subscriber: async_nats::Subscriber,
    service: Arc<S>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let pending = Arc::new(tokio::sync::Semaphore::new(server.max_pending));
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
        let received = tokio::time::Instant::now();
        let Some(reply) = message.reply else { continue };
        let invocation = match server.admit(&message.subject, &message.payload) {
            Ok(invocation) => invocation,
            Err(refusal) => {
                server.respond(reply, refusal).await;
                continue;
            }
        };
        let Ok(place) = pending.clone().try_acquire_owned() else {
            let busy = InvocationResponse::error(
                invocation.id,
                RpcErrorKind::Timeout,
                format!(
                    "{} invocations of {} already wait or run here",
                    server.max_pending, server.target_id
                ),
            );
            server.respond(reply, busy).await;
            continue;
        };
        let (server, service) = (server.clone(), service.clone());
        tokio::spawn(async move {
            let id = invocation.id.clone();
            let deadline = received + server.deadline;
            let response = match service.admit(deadline).await {
                Ok(slot) => {
                    let answer = service.call(&slot, invocation, deadline).await;
                    drop(slot);
                    match answer {
                        Ok(payload) => InvocationResponse::ok(id, payload),
                        Err(e) => InvocationResponse::error(id, e.kind, e.message),
                    }
                }
                Err(e) => InvocationResponse::error(id, e.kind, e.message),
            };
            server.respond(reply, response).await;
            drop(place);
        });
    }
}

/// Resolves once `stop` is true or its sender is gone.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any other await.
    let _ = stop.wait_for(|stopped| *stopped).await.is_ok();
}
