//! Connecting a provider to the lattice and serving it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::Semaphore;
use trellis_claims::invocation::{InvocationSigner, InvocationVerifier, VerifierSettings};
use trellis_claims::keys::{KeyKind, parse_seed};
use trellis_lattice_client::{CallError, InvokeError, RpcClient};
use trellis_protocol::ctl::{CtlReply, LinkList};
use trellis_protocol::provider::HostData;
use trellis_protocol::subject::{CtlOperation, ProviderSubjects};
use trellis_protocol::{
    DecodeLimits, Entity, EntityKind, Invocation, InvocationResponse, Lattice, LinkDefinition,
    RpcErrorKind, encode_json,
};

use crate::{
    DEFAULT_MAX_CONCURRENT_INVOCATIONS, NATS_TIMEOUT, Provider, ProviderInvocation, SdkError,
};

/// A provider's connection to the lattice: who it is, its subjects, and a
/// client to invoke actors with (the HTTP server provider does).
pub struct ProviderContext {
    /// The host data it was started with.
    pub host_data: HostData,
    /// Its public key (`V…`).
    pub provider_id: String,
    /// Its lattice.
    pub lattice: Lattice,
    /// Its subjects.
    pub subjects: ProviderSubjects,
    rpc: RpcClient,
    verifier: InvocationVerifier,
}

impl ProviderContext {
    /// Connects to NATS with the settings in `host_data`.
    ///
    /// # Errors
    ///
    /// [`SdkError::Config`] for an invalid seed, credential, lattice name
    /// or link name; [`SdkError::Nats`] if NATS cannot be reached.
    pub async fn connect(host_data: HostData) -> Result<Self, SdkError> {
        let config = |m: String| SdkError::Config(m);
        let key = parse_seed(&host_data.provider_seed, KeyKind::Provider)
            .map_err(|e| config(e.to_string()))?;
        trellis_claims::keys::expect_public_key(&host_data.provider_id, KeyKind::Provider)
            .map_err(|e| config(e.to_string()))?;
        let provider_id = host_data.provider_id.clone();
        let lattice = Lattice::new(host_data.lattice.clone()).map_err(|e| config(e.to_string()))?;
        let subjects = lattice
            .provider(&provider_id, &host_data.link_name, &host_data.host_id)
            .map_err(|e| config(e.to_string()))?;
        let nats = trellis_lattice_client::connect(
            &host_data.nats,
            &format!("trellis-provider-{provider_id}"),
            NATS_TIMEOUT,
        )
        .await
        .map_err(|e| SdkError::Nats(e.to_string()))?;
        let signer = InvocationSigner::new(
            key,
            host_data.credential.clone(),
            trellis_claims::invocation::DEFAULT_TOKEN_TTL,
        )
        .map_err(|e| config(e.to_string()))?;
        let max_payload = nats.server_info().max_payload;
        let verifier = InvocationVerifier::new(
            lattice.as_str(),
            host_data.invocation_issuers.clone(),
            VerifierSettings::default(),
        );
        Ok(Self {
            host_data,
            provider_id,
            lattice,
            subjects,
            rpc: RpcClient::new(nats, signer, max_payload),
            verifier,
        })
    }

    /// The NATS client.
    pub fn nats(&self) -> &async_nats::Client {
        self.rpc.nats()
    }

    /// Invokes `operation` on actor `actor_id` with `payload`, waiting up
    /// to `timeout`, as this provider over `link_name`.
    ///
    /// # Errors
    ///
    /// `(kind, message)`: [`RpcErrorKind::NotFound`] when no host runs the
    /// actor, [`RpcErrorKind::Timeout`], [`RpcErrorKind::TooLarge`], or the
    /// error the actor's host reported.
    pub async fn invoke_actor(
        &self,
        actor_id: &str,
        contract_id: &str,
        operation: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        self.try_invoke_actor(actor_id, contract_id, operation, payload, timeout)
            .await
            .map_err(CallError::from)
    }

    /// As [`ProviderContext::invoke_actor`], telling an invocation too
    /// large to send ([`InvokeError::TooLarge`]) apart from a failed call.
    ///
    /// # Errors
    ///
    /// As [`RpcClient::try_invoke`].
    pub async fn try_invoke_actor(
        &self,
        actor_id: &str,
        contract_id: &str,
        operation: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let subject = self
            .lattice
            .rpc(actor_id, None)
            .map_err(|e| InvokeError::Call((RpcErrorKind::BadRequest, e.to_string())))?;
        let origin = Entity {
            kind: EntityKind::Provider,
            id: self.provider_id.clone(),
            contract_id: Some(contract_id.to_owned()),
            link_name: Some(self.host_data.link_name.clone()),
        };
        let target = Entity {
            kind: EntityKind::Actor,
            id: actor_id.to_owned(),
            contract_id: None,
            link_name: None,
        };
        self.rpc
            .try_invoke(&subject, origin, target, operation, payload, timeout)
            .await
    }

    async fn answer<P: Provider>(&self, provider: &P, payload: &[u8]) -> InvocationResponse {
        let limits = DecodeLimits {
            max_message_bytes: self.rpc.max_payload().max(1024),
            ..DecodeLimits::default()
        };
        let invocation = match Invocation::decode(payload, &limits) {
            Ok(i) => i,
            Err(e) => {
                let kind = trellis_lattice_client::rpc::decode_error_kind(&e);
                return InvocationResponse::error(
                    "",
                    kind,
                    format!("cannot decode the invocation: {e}"),
                );
            }
        };
        let id = invocation.id.clone();
        if invocation.target.id != self.provider_id {
            return InvocationResponse::error(
                id,
                RpcErrorKind::NotFound,
                "this subject serves another provider",
            );
        }
        if let Err(e) = self.verifier.verify_call(
            &invocation.token,
            &invocation.id,
            &invocation.origin.id,
            &self.provider_id,
            &invocation.operation,
            &invocation.payload,
        ) {
            return InvocationResponse::error(
                id,
                RpcErrorKind::Denied,
                format!("invocation refused: {e}"),
            );
        }
        let call = ProviderInvocation {
            origin: invocation.origin,
            operation: invocation.operation,
            payload: invocation.payload,
        };
        match provider.handle(call).await {
            Ok(payload) => InvocationResponse::ok(id, payload),
            Err((kind, message)) => InvocationResponse::error(id, kind, message),
        }
    }
}

/// Serves `provider` until its host asks it to shut down, or the process
/// gets SIGTERM or Ctrl-C. The current links from the host data are handed
/// to it first.
///
/// # Errors
///
/// [`SdkError::Nats`] if a subscription fails.
pub async fn serve<P: Provider>(
    ctx: Arc<ProviderContext>,
    provider: Arc<P>,
) -> Result<(), SdkError> {
    let nats = ctx.nats().clone();
    let sub_err = |e: async_nats::SubscribeError| SdkError::Nats(format!("cannot subscribe: {e}"));
    let s = &ctx.subjects;
    let mut invocations = nats
        .queue_subscribe(s.rpc.clone(), s.queue_group.clone())
        .await
        .map_err(sub_err)?;
    let mut link_puts = nats.subscribe(s.link_put.clone()).await.map_err(sub_err)?;
    let mut link_dels = nats.subscribe(s.link_del.clone()).await.map_err(sub_err)?;
    let mut health = nats.subscribe(s.health.clone()).await.map_err(sub_err)?;
    let mut shutdown = nats.subscribe(s.shutdown.clone()).await.map_err(sub_err)?;
    trellis_lattice_client::round_trip(&nats, NATS_TIMEOUT)
        .await
        .map_err(|e| SdkError::Nats(e.to_string()))?;

    for link in current_links(&ctx).await {
        if let Err(e) = provider.put_link(&link).await {
            tracing::warn!(actor = link.actor_id, "link refused: {e}");
        }
    }
    tracing::info!(
        provider = ctx.provider_id,
        link_name = ctx.host_data.link_name,
        "provider serving"
    );

    let permits = Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_INVOCATIONS));
    let limits = DecodeLimits::default();
    let terminate = terminate_signal();
    tokio::pin!(terminate);
    loop {
        tokio::select! {
            Some(message) = invocations.next() => {
                let Some(reply) = message.reply.clone() else { continue };
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let (ctx, provider) = (ctx.clone(), provider.clone());
                tokio::spawn(async move {
                    let response = ctx.answer(provider.as_ref(), &message.payload).await;
                    trellis_lattice_client::rpc::respond(ctx.nats(), reply, response, ctx.rpc.max_payload()).await;
                    drop(permit);
                });
            }
            Some(message) = link_puts.next() => match LinkDefinition::decode(&message.payload, &limits) {
                Ok(link) if link.provider_id == ctx.provider_id => {
                    if let Err(e) = provider.put_link(&link).await {
                        tracing::warn!(actor = link.actor_id, "link refused: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("ignoring an invalid link: {e}"),
            },
            Some(message) = link_dels.next() => match LinkDefinition::decode(&message.payload, &limits) {
                Ok(link) if link.provider_id == ctx.provider_id => provider.delete_link(&link).await,
                Ok(_) => {}
                Err(e) => tracing::warn!("ignoring an invalid link deletion: {e}"),
            },
            Some(message) = health.next() => {
                let status = provider.health().await;
                if let (Some(reply), Ok(body)) = (message.reply, encode_json(&status)) {
                    let _ = nats.publish(reply, body.into()).await;
                }
            }
            Some(message) = shutdown.next() => {
                if let Some(reply) = message.reply {
                    let _ = nats.publish(reply, "{}".into()).await;
                }
                tracing::info!("shutdown requested by the host");
                break;
            }
            () = &mut terminate => {
                tracing::info!("terminated by a signal");
                break;
            }
        }
    }
    // Stop taking invocations, finish those in flight, then stop.
    let _ = invocations.unsubscribe().await;
    let _ = tokio::time::timeout(
        NATS_TIMEOUT,
        permits.acquire_many(u32::try_from(DEFAULT_MAX_CONCURRENT_INVOCATIONS).unwrap_or(u32::MAX)),
    )
    .await;
    provider.shutdown().await;
    let _ = tokio::time::timeout(NATS_TIMEOUT, nats.flush()).await;
    Ok(())
}

/// The links naming this provider instance: those in the host data, and
/// those the lattice lists now (a link put while the process was starting
/// was published before it subscribed, so it is fetched here).
async fn current_links(ctx: &ProviderContext) -> Vec<LinkDefinition> {
    let listed = async {
        let subject = ctx.lattice.ctl(&CtlOperation::LinkList).ok()?;
        let reply = tokio::time::timeout(NATS_TIMEOUT, ctx.nats().request(subject, "".into()))
            .await
            .ok()?
            .ok()?;
        CtlReply::<LinkList>::decode(&reply.payload, &DecodeLimits::default())
            .ok()?
            .response
    };
    // The lattice's list is current; the host data's may be stale after a
    // restart, so it is only the fallback.
    let links = match listed.await {
        Some(list) => list.links,
        None => {
            tracing::warn!("cannot list the lattice's links; using those from the host data");
            ctx.host_data.links.clone()
        }
    };
    links
        .into_iter()
        .filter(|l| l.provider_id == ctx.provider_id && l.link_name == ctx.host_data.link_name)
        .collect()
}

/// Resolves on SIGTERM or Ctrl-C.
async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
