//! Signed invocations: sending them, and answering them.

use std::time::Duration;

use trellis_claims::invocation::InvocationSigner;
use trellis_protocol::{
    DecodeError, DecodeLimits, Entity, Invocation, InvocationResponse, RpcErrorKind,
};

/// A failed call: a kind for programs and a message for people.
pub type CallError = (RpcErrorKind, String);

/// Sends signed invocations over one shared NATS client, so calls stay
/// concurrent and no connection is made per call.
pub struct RpcClient {
    nats: async_nats::Client,
    signer: InvocationSigner,
    max_payload: usize,
    limits: DecodeLimits,
}

impl RpcClient {
    /// A client signing with `signer`, refusing invocations larger than
    /// `max_payload` bytes (normally the server's `max_payload`).
    pub fn new(nats: async_nats::Client, signer: InvocationSigner, max_payload: usize) -> Self {
        // Accept any answer the server could carry.
        let limits = DecodeLimits {
            max_message_bytes: DecodeLimits::default().max_message_bytes.max(max_payload),
            ..DecodeLimits::default()
        };
        Self {
            nats,
            signer,
            max_payload,
            limits,
        }
    }

    /// The NATS client.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The signer.
    pub fn signer(&self) -> &InvocationSigner {
        &self.signer
    }

    /// The signer's public key.
    pub fn public_key(&self) -> String {
        self.signer.public_key()
    }

    /// Largest invocation sent, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Signs and sends an invocation to `subject`, waits up to `timeout`
    /// and returns the response payload.
    ///
    /// # Errors
    ///
    /// `(kind, message)`: [`RpcErrorKind::TooLarge`] for an invocation over
    /// `max_payload`, and otherwise as [`RpcClient::try_invoke`].
    pub async fn invoke(
        &self,
        subject: &str,
        origin: Entity,
        target: Entity,
        operation: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        self.try_invoke(subject, origin, target, operation, payload, timeout)
            .await
            .map_err(CallError::from)
    }

    /// As [`RpcClient::invoke`], telling an invocation too large to send
    /// apart from a failed call.
    ///
    /// # Errors
    ///
    /// [`InvokeError::TooLarge`] for an invocation over `max_payload` (not
    /// sent); otherwise [`InvokeError::Call`] with
    /// [`RpcErrorKind::Timeout`] when no answer comes in time,
    /// [`RpcErrorKind::NotFound`] when nothing listens on `subject`,
    /// [`RpcErrorKind::Failed`] for an answer that does not decode or a NATS
    /// failure, or the error the receiver reported.
    pub async fn try_invoke(
        &self,
        subject: &str,
        origin: Entity,
        target: Entity,
        operation: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let fail = |kind: RpcErrorKind, message: String| InvokeError::Call((kind, message));
        let id = uuid::Uuid::new_v4().to_string();
        let mut invocation = Invocation::new(id.clone(), origin, target, operation, payload);
        invocation.token = self
            .signer
            .sign(
                &id,
                &invocation.origin.id,
                &invocation.target.id,
                operation,
                &invocation.payload,
            )
            .map_err(|e| fail(RpcErrorKind::Failed, e.to_string()))?;
        let bytes = invocation
            .encode()
            .map_err(|e| fail(RpcErrorKind::BadRequest, e.to_string()))?;
        if bytes.len() > self.max_payload {
            return Err(InvokeError::TooLarge {
                size: bytes.len(),
                max: self.max_payload,
            });
        }
        let reply = tokio::time::timeout(
            timeout,
            // The client's own request timeout must not cut a longer call short.
            self.nats.send_request(
                subject.to_owned(),
                async_nats::Request::new()
                    .payload(bytes.into())
                    .timeout(Some(timeout)),
            ),
        )
        .await
        .map_err(|_| {
            fail(
                RpcErrorKind::Timeout,
                format!("no answer on {subject} within {timeout:?}"),
            )
        })?
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => {
                fail(RpcErrorKind::NotFound, format!("nothing serves {subject}"))
            }
            async_nats::RequestErrorKind::TimedOut => fail(
                RpcErrorKind::Timeout,
                format!("no answer on {subject} within {timeout:?}"),
            ),
            async_nats::RequestErrorKind::MaxPayloadExceeded => {
                fail(RpcErrorKind::TooLarge, e.to_string())
            }
            _ => fail(RpcErrorKind::Failed, e.to_string()),
        })?;
        let response = InvocationResponse::decode(&reply.payload, &self.limits)
            .map_err(|e| fail(RpcErrorKind::Failed, format!("undecodable response: {e}")))?;
        match response.error {
            Some(err) => Err(InvokeError::Call((err.kind, err.message))),
            None => Ok(response.payload),
        }
    }
}

/// Why [`RpcClient::try_invoke`] did not return a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    /// The invocation is larger than the NATS server carries
    /// (`max_payload`); it was not sent.
    TooLarge {
        /// Size of the encoded invocation, in bytes.
        size: usize,
        /// The server's `max_payload`, in bytes.
        max: usize,
    },
    /// The call was sent and failed: no answer in time, nothing serves the
    /// subject, or the receiver reported an error.
    Call(CallError),
}

impl From<InvokeError> for CallError {
    fn from(error: InvokeError) -> Self {
        match error {
            InvokeError::TooLarge { size, max } => (
                RpcErrorKind::TooLarge,
                format!("invocation of {size} bytes exceeds the server's max_payload of {max}"),
            ),
            InvokeError::Call(call) => call,
        }
    }
}

/// The error kind to answer for an invocation that does not decode.
pub fn decode_error_kind(error: &DecodeError) -> RpcErrorKind {
    if matches!(error, DecodeError::TooLarge { .. }) {
        RpcErrorKind::TooLarge
    } else {
        RpcErrorKind::BadRequest
    }
}

/// Publishes `response` to `reply`, replacing it with a `too_large` error
/// when it exceeds `max_payload` bytes. Failures are logged: the caller
/// has nobody else to tell.
pub async fn respond(
    nats: &async_nats::Client,
    reply: async_nats::Subject,
    response: InvocationResponse,
    max_payload: usize,
) {
    let mut bytes = match response.encode() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot encode a response: {e}");
            return;
        }
    };
    if bytes.len() > max_payload {
        let too_large = InvocationResponse::error(
            response.invocation_id.clone(),
            RpcErrorKind::TooLarge,
            format!(
                "the response of {} bytes exceeds the server's max_payload of {max_payload}",
                bytes.len()
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
    if let Err(e) = nats.publish(reply, bytes.into()).await {
        tracing::warn!("cannot send a response: {e}");
    }
}
