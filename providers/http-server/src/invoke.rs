//! Sending a request to an actor as a signed invocation.
//!
//! This does what [`ProviderContext::invoke_actor`] does, over the same
//! NATS client and with the same key and credential, with one difference:
//! the NATS request is bounded by the caller's `timeout`. `invoke_actor`
//! sends it with `async_nats::Client::request`, which is bounded by the
//! client's own request timeout (the SDK's 5 s `NATS_TIMEOUT`) whatever
//! timeout it is given, so a `timeout_ms` above 5 s would end in `504`
//! after 5 s. Switch to `invoke_actor` once it honours its timeout.

use std::time::Duration;

use trellis_claims::invocation::{DEFAULT_TOKEN_TTL, InvocationSigner};
use trellis_claims::keys::{KeyKind, parse_seed};
use trellis_protocol::contracts::http::HANDLE_OPERATION;
use trellis_protocol::{
    DecodeLimits, Entity, EntityKind, Invocation, InvocationResponse, Lattice, RpcErrorKind,
};
use trellis_provider_sdk::{CallError, ProviderContext, SdkError};

/// The contract this provider serves.
pub const CONTRACT_ID: &str = "wasi:http";

/// Why an invocation did not return a payload.
#[derive(Debug)]
pub enum InvokeError {
    /// The invocation is larger than the NATS server carries
    /// (`max_payload`); it was not sent.
    TooLarge {
        /// Size of the encoded invocation, in bytes.
        size: usize,
        /// The server's `max_payload`.
        max: usize,
    },
    /// The call failed: sent but not answered in time, nothing serves the
    /// actor, or the actor's host reported an error.
    Call(CallError),
}

/// Sends signed `wasi:http` invocations to actors over the provider's NATS
/// client. Shared by every listener; holds no lock.
pub struct Invoker {
    nats: async_nats::Client,
    signer: InvocationSigner,
    lattice: Lattice,
    origin: Entity,
}

impl Invoker {
    /// An invoker signing as the provider described by `ctx`.
    ///
    /// # Errors
    ///
    /// [`SdkError::Config`] for an invalid seed or credential (which
    /// [`ProviderContext::connect`] has already accepted).
    pub fn new(ctx: &ProviderContext) -> Result<Self, SdkError> {
        let config = |e: trellis_claims::Error| SdkError::Config(e.to_string());
        let key = parse_seed(&ctx.host_data.provider_seed, KeyKind::Provider).map_err(config)?;
        let signer =
            InvocationSigner::new(key, ctx.host_data.credential.clone(), DEFAULT_TOKEN_TTL)
                .map_err(config)?;
        Ok(Self {
            nats: ctx.nats().clone(),
            signer,
            lattice: ctx.lattice.clone(),
            origin: Entity {
                kind: EntityKind::Provider,
                id: ctx.provider_id.clone(),
                contract_id: Some(CONTRACT_ID.to_owned()),
                link_name: Some(ctx.host_data.link_name.clone()),
            },
        })
    }

    /// Invokes the `wasi:http` handler of `actor_id` with `payload` (an
    /// encoded `HttpRequest`) and returns the response payload, waiting up
    /// to `timeout` for it.
    ///
    /// # Errors
    ///
    /// [`InvokeError::TooLarge`] for an invocation over the server's
    /// `max_payload`; otherwise [`InvokeError::Call`] with
    /// [`RpcErrorKind::Timeout`] when no answer came in time,
    /// [`RpcErrorKind::NotFound`] when nothing serves the actor,
    /// [`RpcErrorKind::Failed`] for an answer that does not decode or a
    /// NATS failure, or the error the actor's host reported.
    pub async fn invoke(
        &self,
        actor_id: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let fail = |kind: RpcErrorKind, message: String| InvokeError::Call((kind, message));
        let subject = self
            .lattice
            .rpc(actor_id, None)
            .map_err(|e| fail(RpcErrorKind::Failed, e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let target = Entity {
            kind: EntityKind::Actor,
            id: actor_id.to_owned(),
            contract_id: None,
            link_name: None,
        };
        let mut invocation = Invocation::new(
            id.clone(),
            self.origin.clone(),
            target,
            HANDLE_OPERATION,
            payload,
        );
        invocation.token = self
            .signer
            .sign(
                &id,
                &invocation.origin.id,
                actor_id,
                HANDLE_OPERATION,
                &invocation.payload,
            )
            .map_err(|e| fail(RpcErrorKind::Failed, e.to_string()))?;
        let bytes = invocation
            .encode()
            .map_err(|e| fail(RpcErrorKind::Failed, e.to_string()))?;
        let max = self.nats.max_payload();
        if bytes.len() > max {
            return Err(InvokeError::TooLarge {
                size: bytes.len(),
                max,
            });
        }
        let request = async_nats::Request::new()
            .payload(bytes.into())
            .timeout(Some(timeout));
        let reply = self
            .nats
            .send_request(subject.clone(), request)
            .await
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
        // Accept any answer the server could carry.
        let limits = DecodeLimits {
            max_message_bytes: DecodeLimits::default().max_message_bytes.max(max),
            ..DecodeLimits::default()
        };
        let response = InvocationResponse::decode(&reply.payload, &limits)
            .map_err(|e| fail(RpcErrorKind::Failed, format!("undecodable answer: {e}")))?;
        match response.error {
            Some(err) => Err(InvokeError::Call((err.kind, err.message))),
            None => Ok(response.payload),
        }
    }
}
