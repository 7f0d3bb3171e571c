//! A client of the control interface: the JSON requests on
//! `trellis.ctl.v1.{lattice}.…` that start and stop actors and providers,
//! put links and read inventories (`docs/protocol.md`). The `trellis` CLI
//! and wadm both drive hosts through it.
//!
//! Every request is signed with the client's control credential
//! ([`CtlClient::with_signer`]); hosts refuse unsigned requests, and
//! requests the credential's scope does not allow, with
//! [`CtlErrorKind::Denied`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_claims::invocation::InvocationSigner;
use trellis_protocol::ctl::{
    ClaimsList, CtlFailure, CtlReply, DeleteLinkRequest, HostPong, LinkList, ScaleActorRequest,
    StartActorRequest, StartProviderRequest, StopActorRequest, StopHostRequest,
    StopProviderRequest, UpdateActorRequest,
};
use trellis_protocol::host::{ActorDescription, HostInventory, ProviderDescription};
use trellis_protocol::subject::CtlOperation;
use trellis_protocol::wadm::ModelOperation;
use trellis_protocol::{DecodeLimits, Lattice, LinkDefinition, SealedSecret, encode_json};

/// How long a control request waits for its reply. Defaults to 5 s.
pub const DEFAULT_CTL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`CtlClient::ping`] collects answers. Defaults to 1 s.
pub const DEFAULT_PING_WINDOW: Duration = Duration::from_secs(1);

/// What went wrong with a control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtlErrorKind {
    /// The request could not be sent, or NATS failed.
    Nats,
    /// No reply within the timeout: no host serves the subject, or it is busy.
    Timeout,
    /// The reply was not a control reply of the expected shape.
    BadReply,
    /// The host answered and refused: the message says why.
    Refused,
    /// The host refused an unsigned request, a token that did not verify,
    /// or an operation the credential's scope does not allow.
    Denied,
    /// The request itself is invalid (e.g. a bad lattice or host id).
    BadRequest,
}

impl CtlErrorKind {
    /// A stable snake-case name for machine-readable output, e.g.
    /// `timeout` or `refused`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Nats => "nats",
            Self::Timeout => "timeout",
            Self::BadReply => "bad_reply",
            Self::Refused => "refused",
            Self::Denied => "denied",
            Self::BadRequest => "bad_request",
        }
    }
}

/// A control request's failure: a matchable [`CtlErrorKind`] and a message
/// for people.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CtlError {
    kind: CtlErrorKind,
    message: String,
    failure: Option<CtlFailure>,
}

impl CtlError {
    fn new(kind: CtlErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            failure: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> CtlErrorKind {
        self.kind
    }

    /// For a refusal, the failure class the host gave (`bad_request`,
    /// `not_found`, …), when it gave one.
    pub fn failure(&self) -> Option<CtlFailure> {
        self.failure
    }
}

/// Sends control requests to the hosts of one lattice.
#[derive(Debug, Clone)]
pub struct CtlClient {
    nats: async_nats::Client,
    lattice: Lattice,
    timeout: Duration,
    signer: Option<Arc<InvocationSigner>>,
}

impl CtlClient {
    /// A client of `lattice` over `nats`, waiting [`DEFAULT_CTL_TIMEOUT`]
    /// for each reply. Its requests are unsigned until
    /// [`CtlClient::with_signer`] gives it a credential.
    pub fn new(nats: async_nats::Client, lattice: Lattice) -> Self {
        Self {
            nats,
            lattice,
            timeout: DEFAULT_CTL_TIMEOUT,
            signer: None,
        }
    }

    /// Signs every request with `signer`: a user key (`U…`) presenting a
    /// control credential issued by an operator the hosts trust.
    #[must_use]
    pub fn with_signer(mut self, signer: Arc<InvocationSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Headers signing a request of `op` on `subject` with `body`; none
    /// without a signer.
    fn sign(
        &self,
        subject: &str,
        op: &CtlOperation,
        body: &[u8],
    ) -> Result<async_nats::HeaderMap, CtlError> {
        self.sign_named(subject, op.name(), body)
    }

    fn sign_named(
        &self,
        subject: &str,
        op_name: &str,
        body: &[u8],
    ) -> Result<async_nats::HeaderMap, CtlError> {
        let Some(signer) = &self.signer else {
            return Ok(async_nats::HeaderMap::new());
        };
        let token = signer
            .sign_control(subject, op_name, body)
            .map_err(|e| CtlError::new(CtlErrorKind::BadRequest, format!("cannot sign: {e}")))?;
        Ok(crate::signed::headers(&token))
    }

    /// Sets how long each request waits for its reply.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Every host of the lattice that answers within `window`, sorted by id.
    ///
    /// # Errors
    ///
    /// [`CtlErrorKind::Nats`] if the request cannot be sent;
    /// [`CtlErrorKind::Denied`] if hosts answered, and all refused.
    pub async fn ping(&self, window: Duration) -> Result<Vec<HostPong>, CtlError> {
        let subject = self.subject(&CtlOperation::HostPing)?;
        let headers = self.sign(&subject, &CtlOperation::HostPing, b"")?;
        let inbox = self.nats.new_inbox();
        let mut replies = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| CtlError::new(CtlErrorKind::Nats, format!("cannot subscribe: {e}")))?;
        self.nats
            .publish_with_reply_and_headers(subject, inbox, headers, bytes::Bytes::new())
            .await
            .map_err(|e| CtlError::new(CtlErrorKind::Nats, format!("cannot publish: {e}")))?;
        let mut hosts = Vec::new();
        let mut denied = None;
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
            match decode::<HostPong>(&message.payload) {
                Ok(Some(pong)) => hosts.push(pong),
                Ok(None) => {}
                Err(e) if e.kind() == CtlErrorKind::Denied => denied = Some(e),
                Err(e) => tracing::warn!("ignoring a ping answer: {e}"),
            }
        }
        // Hosts that refuse this client are not hidden behind an empty list.
        if let (true, Some(denied)) = (hosts.is_empty(), denied) {
            return Err(denied);
        }
        hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
        Ok(hosts)
    }

    /// The inventory of `host_id`: its labels, actors and providers.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Timeout` when no such host answers.
    pub async fn inventory(&self, host_id: &str) -> Result<HostInventory, CtlError> {
        let op = CtlOperation::HostGet {
            host_id: host_id.to_owned(),
        };
        self.required(&op, &()).await
    }

    /// Starts an actor from `request.actor_ref` (a path on the host) on
    /// `host_id`.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Refused` when the host refuses the actor
    /// (untrusted issuer, expired claims, unreadable file…).
    pub async fn start_actor(
        &self,
        host_id: &str,
        request: &StartActorRequest,
    ) -> Result<ActorDescription, CtlError> {
        let op = CtlOperation::ActorStart {
            host_id: host_id.to_owned(),
        };
        self.required(&op, request).await
    }

    /// Changes the maximum concurrent instances (and annotations) of an
    /// actor running on `host_id`.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Refused` when it does not run there.
    pub async fn scale_actor(
        &self,
        host_id: &str,
        request: &ScaleActorRequest,
    ) -> Result<(), CtlError> {
        let op = CtlOperation::ActorScale {
            host_id: host_id.to_owned(),
        };
        self.request::<_, serde_json::Value>(&op, request)
            .await
            .map(drop)
    }

    /// Replaces the module of an actor running on `host_id`; in-flight
    /// invocations finish on the old one.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Refused` with [`CtlFailure::Conflict`] when
    /// the new module's claims name another actor.
    pub async fn update_actor(
        &self,
        host_id: &str,
        request: &UpdateActorRequest,
    ) -> Result<ActorDescription, CtlError> {
        let op = CtlOperation::ActorUpdate {
            host_id: host_id.to_owned(),
        };
        self.required(&op, request).await
    }

    /// Stops an actor on `host_id`.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Refused` when it does not run there.
    pub async fn stop_actor(&self, host_id: &str, actor_id: &str) -> Result<(), CtlError> {
        let op = CtlOperation::ActorStop {
            host_id: host_id.to_owned(),
        };
        let request = StopActorRequest {
            actor_id: actor_id.to_owned(),
        };
        self.request::<_, serde_json::Value>(&op, &request)
            .await
            .map(drop)
    }

    /// Starts a capability provider on `host_id`.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Refused` when the host refuses it (claims,
    /// missing binary, already running with that link name…).
    pub async fn start_provider(
        &self,
        host_id: &str,
        request: &StartProviderRequest,
    ) -> Result<ProviderDescription, CtlError> {
        let op = CtlOperation::ProviderStart {
            host_id: host_id.to_owned(),
        };
        self.required(&op, request).await
    }

    /// Stops a capability provider on `host_id`.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Refused` when it does not run there.
    pub async fn stop_provider(
        &self,
        host_id: &str,
        request: &StopProviderRequest,
    ) -> Result<(), CtlError> {
        let op = CtlOperation::ProviderStop {
            host_id: host_id.to_owned(),
        };
        self.request::<_, serde_json::Value>(&op, request)
            .await
            .map(drop)
    }

    /// Asks `host_id` to drain and stop, waiting up to `timeout` for its
    /// in-flight invocations (the host's own default when `None`).
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`].
    pub async fn stop_host(
        &self,
        host_id: &str,
        timeout: Option<Duration>,
    ) -> Result<(), CtlError> {
        let op = CtlOperation::HostStop {
            host_id: host_id.to_owned(),
        };
        let request = StopHostRequest {
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        self.request::<_, serde_json::Value>(&op, &request)
            .await
            .map(drop)
    }

    /// Puts a link definition (replacing one with the same actor, contract
    /// and link name).
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`].
    pub async fn put_link(&self, link: &LinkDefinition) -> Result<(), CtlError> {
        self.request::<_, serde_json::Value>(&CtlOperation::LinkPut, link)
            .await
            .map(drop)
    }

    /// Seals each value to the lattice's secrets key, for
    /// [`LinkDefinition::secrets`], with a sender key made for this call.
    /// The key is the one the hosts answering a ping within
    /// [`DEFAULT_PING_WINDOW`] report; they must agree.
    ///
    /// # Errors
    ///
    /// [`CtlErrorKind::Timeout`] when no host answers,
    /// [`CtlErrorKind::Refused`] when hosts report different keys,
    /// [`CtlErrorKind::BadRequest`] for a value over
    /// `trellis_claims::secrets::MAX_SECRET_BYTES` or a key that is not an
    /// xkey; those of [`CtlClient::ping`].
    pub async fn seal_secrets(
        &self,
        values: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<BTreeMap<String, SealedSecret>, CtlError> {
        let hosts = self.ping(DEFAULT_PING_WINDOW).await?;
        let keys: BTreeSet<&str> = hosts.iter().map(|h| h.secrets_key.as_str()).collect();
        let key = match keys.into_iter().collect::<Vec<_>>().as_slice() {
            [] => {
                return Err(CtlError::new(
                    CtlErrorKind::Timeout,
                    "no host answered: the lattice's secrets key is unknown",
                ));
            }
            [one] => (*one).to_owned(),
            several => {
                return Err(CtlError::new(
                    CtlErrorKind::Refused,
                    format!(
                        "the hosts hold {} different secrets keys; give them one cluster seed or secrets seed",
                        several.len()
                    ),
                ));
            }
        };
        let sender = trellis_claims::secrets::generate_xkey();
        values
            .into_iter()
            .map(|(name, value)| {
                let sealed = trellis_claims::secrets::seal(&value, &sender, &key).map_err(|e| {
                    CtlError::new(CtlErrorKind::BadRequest, format!("secret `{name}`: {e}"))
                })?;
                Ok((
                    name,
                    SealedSecret {
                        sender: sender.public_key(),
                        sealed,
                    },
                ))
            })
            .collect()
    }

    /// Deletes a link definition.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]; `Refused` when there is no such link.
    pub async fn delete_link(&self, request: &DeleteLinkRequest) -> Result<(), CtlError> {
        self.request::<_, serde_json::Value>(&CtlOperation::LinkDel, request)
            .await
            .map(drop)
    }

    /// Every link definition of the lattice.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`].
    pub async fn links(&self) -> Result<Vec<LinkDefinition>, CtlError> {
        let list: LinkList = self.required(&CtlOperation::LinkList, &()).await?;
        Ok(list.links)
    }

    /// The claims of every actor and provider seen in the lattice.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`].
    pub async fn claims(&self) -> Result<Vec<serde_json::Value>, CtlError> {
        let list: ClaimsList = self.required(&CtlOperation::ClaimsList, &()).await?;
        Ok(list.claims)
    }

    fn subject(&self, op: &CtlOperation) -> Result<String, CtlError> {
        self.lattice
            .ctl(op)
            .map_err(|e| CtlError::new(CtlErrorKind::BadRequest, e.to_string()))
    }

    async fn required<Q: Serialize, R: DeserializeOwned>(
        &self,
        op: &CtlOperation,
        request: &Q,
    ) -> Result<R, CtlError> {
        self.request(op, request)
            .await?
            .ok_or_else(|| CtlError::new(CtlErrorKind::BadReply, "the reply carries no response"))
    }

    async fn request<Q: Serialize, R: DeserializeOwned>(
        &self,
        op: &CtlOperation,
        request: &Q,
    ) -> Result<Option<R>, CtlError> {
        let subject = self.subject(op)?;
        let body = encode_json(request)
            .map_err(|e| CtlError::new(CtlErrorKind::BadRequest, e.to_string()))?;
        self.send(subject, op.name(), body, "host").await
    }

    /// Sends one signed request of operation `op_name` on `subject` and
    /// decodes its [`CtlReply`]; `who` names the server in errors.
    async fn send<R: DeserializeOwned>(
        &self,
        subject: String,
        op_name: &str,
        body: Vec<u8>,
        who: &str,
    ) -> Result<Option<R>, CtlError> {
        let headers = self.sign_named(&subject, op_name, &body)?;
        let timed_out = || {
            CtlError::new(
                CtlErrorKind::Timeout,
                format!("no {who} answered within {} ms", self.timeout.as_millis()),
            )
        };
        let reply = tokio::time::timeout(
            self.timeout,
            self.nats
                .request_with_headers(subject, headers, body.into()),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => CtlError::new(
                CtlErrorKind::Timeout,
                format!("no {who} of the lattice is listening"),
            ),
            async_nats::RequestErrorKind::TimedOut => timed_out(),
            async_nats::RequestErrorKind::InvalidSubject
            | async_nats::RequestErrorKind::MaxPayloadExceeded => {
                CtlError::new(CtlErrorKind::BadRequest, e.to_string())
            }
            _ => CtlError::new(CtlErrorKind::Nats, e.to_string()),
        })?;
        decode(&reply.payload)
    }

    /// Sends one request of the wadm API (`wadm.api.{lattice}.model.…`,
    /// `docs/protocol.md` §12) with `body`, signed like a control request,
    /// and returns the reply's response.
    ///
    /// # Errors
    ///
    /// Any [`CtlErrorKind`]: `Timeout` when no wadm answers, `Refused`
    /// (with the failure class) when wadm refuses, `Denied` for a missing
    /// or insufficient credential.
    pub async fn wadm<R: DeserializeOwned>(
        &self,
        op: ModelOperation,
        body: Vec<u8>,
    ) -> Result<Option<R>, CtlError> {
        self.send(op.subject(&self.lattice), op.name(), body, "wadm")
            .await
    }

    /// The lattice this client talks to.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    /// The signer of this client's requests, if it has one.
    pub fn signer(&self) -> Option<&Arc<InvocationSigner>> {
        self.signer.as_ref()
    }
}

fn decode<R: DeserializeOwned>(payload: &[u8]) -> Result<Option<R>, CtlError> {
    let reply = CtlReply::<R>::decode(payload, &DecodeLimits::default())
        .map_err(|e| CtlError::new(CtlErrorKind::BadReply, format!("bad control reply: {e}")))?;
    if reply.success {
        Ok(reply.response)
    } else if reply.kind == Some(CtlFailure::Denied) {
        Err(CtlError::new(CtlErrorKind::Denied, reply.message))
    } else {
        let mut error = CtlError::new(CtlErrorKind::Refused, reply.message);
        error.failure = reply.kind;
        Err(error)
    }
}
