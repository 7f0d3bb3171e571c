//! Sending a request to an actor as a signed invocation, through the SDK's
//! [`ProviderContext::try_invoke_actor`] (one shared NATS client, the
//! provider's own key and credential).

use std::sync::Arc;
use std::time::Duration;

use trellis_protocol::contracts::http::HANDLE_OPERATION;
pub use trellis_provider_sdk::InvokeError;
use trellis_provider_sdk::ProviderContext;

/// The contract this provider serves.
pub const CONTRACT_ID: &str = "wasi:http";

/// Sends signed `wasi:http` invocations to actors. Shared by every
/// listener; holds no lock.
pub struct Invoker {
    ctx: Arc<ProviderContext>,
}

impl Invoker {
    /// An invoker sending as the provider described by `ctx`.
    pub fn new(ctx: Arc<ProviderContext>) -> Self {
        Self { ctx }
    }

    /// Invokes the `wasi:http` handler of `actor_id` with `payload` (an
    /// encoded `HttpRequest`) and returns the response payload, waiting up
    /// to `timeout` for it.
    ///
    /// # Errors
    ///
    /// As [`ProviderContext::try_invoke_actor`]: [`InvokeError::TooLarge`]
    /// for an invocation over the server's `max_payload` (not sent),
    /// otherwise [`InvokeError::Call`].
    pub async fn invoke(
        &self,
        actor_id: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        self.ctx
            .try_invoke_actor(actor_id, CONTRACT_ID, HANDLE_OPERATION, payload, timeout)
            .await
    }
}
