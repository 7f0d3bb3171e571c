//! Signed control messages: the messages around invocations that change
//! state, carried with the sender's token in the [`TOKEN_HEADER`] NATS
//! header (`docs/protocol.md` §5.1 and §2.6).
//!
//! - Control requests to hosts are signed by a control client with
//!   [`InvocationSigner::sign_control`] (see [`crate::CtlClient`]) and
//!   checked by the host with [`verify_control`].
//! - A host's messages to the providers it started (link changes, health
//!   checks, shutdown) are signed with the host's own key by
//!   [`RpcClient::tell`] and [`RpcClient::ask`], and checked by the
//!   provider with [`verify_from`], which also requires the sender to be
//!   its own host.
//!
//! - Events and heartbeats are signed by the host that publishes them
//!   ([`InvocationSigner::sign_control`] with the host's key, bound to the
//!   event's subject), and checked by subscribers such as wadm and
//!   dashboards with [`verify_event`].
//!
//! All use the invocation machinery of `trellis-claims`: the same tokens,
//! credentials, expiry, payload hash and replay cache.

use std::time::Duration;

use async_nats::HeaderMap;
use trellis_claims::invocation::{CtlScope, InvocationSigner, InvocationVerifier};
use trellis_claims::{Error as ClaimsError, ErrorKind as ClaimsErrorKind};
use trellis_protocol::RpcErrorKind;
use trellis_protocol::subject::{CtlOperation, TOKEN_HEADER};

use crate::rpc::{InvokeError, InvokeErrorKind, RpcClient};

/// Headers carrying `token`.
pub fn headers(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(TOKEN_HEADER, token);
    headers
}

/// The token a message carries in its [`TOKEN_HEADER`], if any.
pub fn token(message: &async_nats::Message) -> Option<&str> {
    message
        .headers
        .as_ref()?
        .get(TOKEN_HEADER)
        .map(async_nats::HeaderValue::as_str)
}

/// Checks a control request received on its subject for operation `op`:
/// its token verifies with `verifier` (made with
/// [`InvocationVerifier::control`]), is bound to the subject and payload,
/// is not a replay, and its credential's scope allows `op` (read-only
/// operations need [`CtlScope::Read`], every other one [`CtlScope::Full`]).
/// Returns the sender's public key.
///
/// # Errors
///
/// [`ClaimsErrorKind::MissingClaims`] for a request without a token,
/// [`ClaimsErrorKind::Unauthorized`] when the scope does not allow the
/// operation, or any kind of [`InvocationVerifier::verify_control`].
pub fn verify_control(
    verifier: &InvocationVerifier,
    message: &async_nats::Message,
    op: &CtlOperation,
) -> Result<String, ClaimsError> {
    verify_request(verifier, message, op.name(), op.is_read_only())
}

/// Checks a signed request of operation `op_name` received on its subject,
/// as [`verify_control`] does for control operations: used by wadm for its
/// API (`docs/protocol.md` §12). `read_only` operations need
/// [`CtlScope::Read`], the others [`CtlScope::Full`]. Returns the sender's
/// public key.
///
/// # Errors
///
/// As [`verify_control`].
pub fn verify_request(
    verifier: &InvocationVerifier,
    message: &async_nats::Message,
    op_name: &str,
    read_only: bool,
) -> Result<String, ClaimsError> {
    let token = token(message).ok_or_else(|| {
        ClaimsError::new(
            ClaimsErrorKind::MissingClaims,
            "the request carries no token",
        )
    })?;
    let sender = verifier.verify_control(token, &message.subject, op_name, &message.payload)?;
    let required = if read_only {
        CtlScope::Read
    } else {
        CtlScope::Full
    };
    match sender.scope {
        Some(scope) if scope.allows(required) => Ok(sender.sender),
        scope => Err(ClaimsError::new(
            ClaimsErrorKind::Unauthorized,
            format!(
                "{op_name} needs the {required} scope; the credential has {}",
                scope.map_or("none", CtlScope::as_str)
            ),
        )),
    }
}

/// Checks an event received on its subject
/// (`trellis.evt.{lattice}.{event_type}`): its token verifies with
/// `verifier` (made with [`InvocationVerifier::new`] for the lattice's
/// cluster issuers), was signed by a host for this subject, event type and
/// payload, is not a replay, and the event's `source` is that host.
/// Returns the host's id.
///
/// # Errors
///
/// [`ClaimsErrorKind::MissingClaims`] for an unsigned event,
/// [`ClaimsErrorKind::Malformed`] for a payload that is not a CloudEvent,
/// [`ClaimsErrorKind::Unauthorized`] when the event names another source
/// than its signer or was signed by a provider, or any kind of
/// [`InvocationVerifier::verify_control`].
///
/// # Examples
///
/// A subscriber that tells real heartbeats from forged ones:
///
/// ```no_run
/// # async fn run(nats: async_nats::Client, cluster_issuer: String) {
/// use futures::StreamExt as _;
/// use trellis_claims::invocation::{InvocationVerifier, VerifierSettings};
/// use trellis_lattice_client::signed::verify_event;
///
/// let verifier = InvocationVerifier::new("default", [cluster_issuer], VerifierSettings::default());
/// let mut beats = nats.subscribe("trellis.evt.default.host_heartbeat").await.unwrap();
/// while let Some(message) = beats.next().await {
///     match verify_event(&verifier, &message) {
///         Ok(host) => println!("heartbeat of {host}"),
///         Err(e) => println!("forged heartbeat: {e}"),
///     }
/// }
/// # }
/// ```
pub fn verify_event(
    verifier: &InvocationVerifier,
    message: &async_nats::Message,
) -> Result<String, ClaimsError> {
    let token = token(message).ok_or_else(|| {
        ClaimsError::new(ClaimsErrorKind::MissingClaims, "the event is not signed")
    })?;
    let event_type = message.subject.rsplit('.').next().unwrap_or_default();
    let sender = verifier.verify_control(token, &message.subject, event_type, &message.payload)?;
    let event = trellis_protocol::CloudEvent::<serde_json::Value>::decode(
        &message.payload,
        &trellis_protocol::DecodeLimits::default(),
    )
    .map_err(|e| ClaimsError::new(ClaimsErrorKind::Malformed, format!("not an event: {e}")))?;
    let is_host = trellis_claims::keys::public_key_kind(&sender.sender)
        .is_ok_and(|k| k == trellis_claims::keys::KeyKind::Host);
    if !is_host || event.source != sender.sender {
        return Err(ClaimsError::new(
            ClaimsErrorKind::Unauthorized,
            format!(
                "the event names source {}, but {} signed it",
                event.source, sender.sender
            ),
        ));
    }
    Ok(sender.sender)
}

/// Checks a message that `target` received for `operation`: its token
/// verifies with `verifier`, is bound to `target`, `operation` and the
/// payload, is not a replay, and was signed by `sender` (a provider's own
/// host).
///
/// # Errors
///
/// [`ClaimsErrorKind::MissingClaims`] for a message without a token,
/// [`ClaimsErrorKind::Unauthorized`] when another member sent it, or any
/// kind of [`InvocationVerifier::verify_message`].
pub fn verify_from(
    verifier: &InvocationVerifier,
    message: &async_nats::Message,
    target: &str,
    operation: &str,
    sender: &str,
) -> Result<(), ClaimsError> {
    let token = token(message).ok_or_else(|| {
        ClaimsError::new(
            ClaimsErrorKind::MissingClaims,
            "the message carries no token",
        )
    })?;
    let verified = verifier.verify_message(token, target, operation, &message.payload)?;
    if verified.sender != sender {
        return Err(ClaimsError::new(
            ClaimsErrorKind::Unauthorized,
            format!("{operation} is accepted only from {sender}"),
        ));
    }
    Ok(())
}

fn sign(
    signer: &InvocationSigner,
    target: &str,
    operation: &str,
    payload: &[u8],
) -> Result<HeaderMap, InvokeError> {
    let token = signer
        .sign_message(target, operation, payload)
        .map_err(|e| InvokeError::with_source(InvokeErrorKind::Rpc(RpcErrorKind::Failed), e))?;
    Ok(headers(&token))
}

impl RpcClient {
    /// Publishes `payload` on `subject` as a message of `operation` to
    /// `target`, signed with this client's key. Nothing answers.
    ///
    /// # Errors
    ///
    /// [`InvokeErrorKind::Rpc`] with [`RpcErrorKind::Failed`] if signing or
    /// publishing fails.
    pub async fn tell(
        &self,
        target: &str,
        subject: String,
        operation: &str,
        payload: Vec<u8>,
    ) -> Result<(), InvokeError> {
        let headers = sign(self.signer(), target, operation, &payload)?;
        self.nats()
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| InvokeError::with_source(InvokeErrorKind::Rpc(RpcErrorKind::Failed), e))
    }

    /// Sends `payload` on `subject` as a request of `operation` to
    /// `target`, signed with this client's key, and waits up to `timeout`
    /// for the answer.
    ///
    /// # Errors
    ///
    /// [`InvokeErrorKind::Rpc`] with [`RpcErrorKind::Timeout`] when no
    /// answer comes in time, [`RpcErrorKind::NotFound`] when nothing
    /// listens, and [`RpcErrorKind::Failed`] for any other failure.
    pub async fn ask(
        &self,
        target: &str,
        subject: String,
        operation: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<async_nats::Message, InvokeError> {
        let headers = sign(self.signer(), target, operation, &payload)?;
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload.into())
            .timeout(Some(timeout));
        let timed_out = || {
            InvokeError::rpc(
                RpcErrorKind::Timeout,
                format!("no answer to {operation} within {timeout:?}"),
            )
        };
        tokio::time::timeout(timeout, self.nats().send_request(subject, request))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => InvokeError::rpc(
                    RpcErrorKind::NotFound,
                    format!("nothing answers {operation}"),
                ),
                async_nats::RequestErrorKind::TimedOut => timed_out(),
                _ => InvokeError::with_source(InvokeErrorKind::Rpc(RpcErrorKind::Failed), e),
            })
    }
}
