//! Connecting a provider to the lattice and serving it.

use std::sync::Arc;

use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use trellis_claims::invocation::{InvocationSigner, InvocationVerifier, VerifierSettings};
use trellis_claims::keys::{KeyKind, parse_seed};
use trellis_claims::secrets::{XKey, open, parse_xkey_seed};
use trellis_lattice_client::RpcClient;
use trellis_lattice_client::rpc::{Server, Service};
use trellis_lattice_client::signed::verify_from;
use trellis_protocol::provider::{
    CREDENTIAL_OPERATION, CredentialRenewal, HEALTH_OPERATION, HostData, LINK_DEL_OPERATION,
    LINK_PUT_OPERATION, SHUTDOWN_OPERATION,
};
use trellis_protocol::subject::ProviderSubjects;
use trellis_protocol::{
    DecodeLimits, Invocation, Lattice, LinkDefinition, Route, RpcError, RpcErrorKind, decode_json,
    encode_json,
};

use crate::{
    DEFAULT_MAX_CONCURRENT_INVOCATIONS, LinkedProvider, NATS_TIMEOUT, Provider, SdkError,
    SdkErrorKind,
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
    verifier: Arc<InvocationVerifier>,
    /// This process's xkey: link secrets from its host are sealed to it.
    secrets: XKey,
}

impl ProviderContext {
    /// Connects to NATS with the settings in `host_data`.
    ///
    /// # Errors
    ///
    /// [`SdkErrorKind::Config`] for an invalid seed, credential, lattice
    /// name or link name; [`SdkErrorKind::Nats`] if NATS cannot be reached.
    pub async fn connect(host_data: HostData) -> Result<Self, SdkError> {
        fn config(e: impl std::error::Error + Send + Sync + 'static) -> SdkError {
            SdkError::with_source(SdkErrorKind::Config, e)
        }
        let key = parse_seed(&host_data.provider_seed, KeyKind::Provider).map_err(config)?;
        let secrets = parse_xkey_seed(&host_data.secrets_seed).map_err(config)?;
        trellis_claims::keys::expect_public_key(&host_data.provider_id, KeyKind::Provider)
            .map_err(config)?;
        let provider_id = host_data.provider_id.clone();
        let lattice = Lattice::new(host_data.lattice.clone()).map_err(config)?;
        let subjects = lattice
            .provider(&provider_id, &host_data.link_name, &host_data.host_id)
            .map_err(config)?;
        let nats = trellis_lattice_client::connect(
            &host_data.nats,
            &format!("trellis-provider-{provider_id}"),
            NATS_TIMEOUT,
        )
        .await
        .map_err(|e| SdkError::with_source(SdkErrorKind::Nats, e))?;
        let signer = InvocationSigner::new(
            key,
            host_data.credential.clone(),
            trellis_claims::invocation::DEFAULT_TOKEN_TTL,
        )
        .map_err(config)?;
        let max_payload = nats.server_info().max_payload;
        let verifier = Arc::new(InvocationVerifier::new(
            lattice.as_str(),
            host_data.invocation_issuers.clone(),
            VerifierSettings::default(),
        ));
        Ok(Self {
            host_data,
            provider_id,
            lattice,
            subjects,
            rpc: RpcClient::new(nats, signer, max_payload),
            verifier,
            secrets,
        })
    }

    /// `link` as the provider binds it: each sealed secret opened and put
    /// among the configuration, so that the provider reads a secret `url`
    /// as it would a plain one. The values are never logged.
    ///
    /// # Errors
    ///
    /// The name of the first secret that does not open with this
    /// process's key, and why (a `trellis_claims` error kind).
    pub fn open_link(&self, link: &LinkDefinition) -> Result<LinkDefinition, String> {
        let mut opened = link.clone();
        for (name, secret) in std::mem::take(&mut opened.secrets) {
            let value = open(&secret.sealed, &secret.sender, &self.secrets)
                .map_err(|e| format!("secret `{name}` does not open: {}", e.kind()))?;
            let value = String::from_utf8(value)
                .map_err(|_| format!("secret `{name}` is not UTF-8 text"))?;
            opened.config.insert(name, value);
        }
        Ok(opened)
    }

    /// The NATS client.
    pub fn nats(&self) -> &async_nats::Client {
        self.rpc.nats()
    }

    /// The RPC client: invocations it sends are signed as this provider.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// The route of an invocation of actor `actor_id` by this provider
    /// over its link of `contract_id`, for [`RpcClient::invoke`].
    ///
    /// # Errors
    ///
    /// [`SdkErrorKind::Config`] if `actor_id` is not a valid subject token.
    pub fn route_to_actor(&self, contract_id: &str, actor_id: &str) -> Result<Route, SdkError> {
        self.lattice
            .route_to_actor(
                &self.provider_id,
                contract_id,
                &self.host_data.link_name,
                actor_id,
            )
            .map_err(|e| SdkError::with_source(SdkErrorKind::Config, e))
    }
}

/// Answers verified invocations with a [`LinkedProvider`], at most
/// [`DEFAULT_MAX_CONCURRENT_INVOCATIONS`] at once.
struct ProviderService<P: Provider> {
    linked: Arc<LinkedProvider<P>>,
    permits: Arc<Semaphore>,
}

impl<P: Provider> Service for ProviderService<P> {
    type Slot = OwnedSemaphorePermit;

    async fn admit(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<OwnedSemaphorePermit, RpcError> {
        tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                RpcError::new(
                    RpcErrorKind::Timeout,
                    "every handler of the provider is busy",
                )
            })?
            .map_err(|_| RpcError::new(RpcErrorKind::NotFound, "the provider is shutting down"))
    }

    async fn call(
        &self,
        _slot: &OwnedSemaphorePermit,
        invocation: Invocation,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, RpcError> {
        tokio::time::timeout_at(
            deadline,
            self.linked.call(
                &invocation.origin,
                &invocation.operation,
                &invocation.payload,
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err(RpcError::new(
                RpcErrorKind::Timeout,
                "the provider did not answer within the invocation's deadline",
            ))
        })
    }
}

/// Serves `linked` until its host asks it to shut down, or the process
/// gets SIGTERM or Ctrl-C. The links in the host data are bound first;
/// the host sends every current link again once the process answers its
/// first health check, so none put while it was starting is missed.
///
/// Link changes, health checks and shutdown requests are accepted only
/// when signed by the host that started this provider; anything else is
/// dropped with a warning.
///
/// # Errors
///
/// [`SdkErrorKind::Nats`] if a subscription fails.
pub async fn serve<P: Provider>(
    ctx: Arc<ProviderContext>,
    linked: Arc<LinkedProvider<P>>,
) -> Result<(), SdkError> {
    let nats = ctx.nats().clone();
    let sub_err = |e: async_nats::SubscribeError| SdkError::with_source(SdkErrorKind::Nats, e);
    let s = &ctx.subjects;
    let invocations = nats
        .queue_subscribe(s.rpc.clone(), s.queue_group.clone())
        .await
        .map_err(sub_err)?;
    let mut link_puts = nats.subscribe(s.link_put.clone()).await.map_err(sub_err)?;
    let mut link_dels = nats.subscribe(s.link_del.clone()).await.map_err(sub_err)?;
    let mut health = nats.subscribe(s.health.clone()).await.map_err(sub_err)?;
    let mut shutdown = nats.subscribe(s.shutdown.clone()).await.map_err(sub_err)?;
    let mut renewals = nats
        .subscribe(s.credential.clone())
        .await
        .map_err(sub_err)?;
    trellis_lattice_client::round_trip(&nats, NATS_TIMEOUT)
        .await
        .map_err(|e| SdkError::with_source(SdkErrorKind::Nats, e))?;

    for link in ctx.host_data.links.iter().filter(|l| ours(&ctx, l)) {
        put_sealed_link(&ctx, &linked, link).await;
    }
    tracing::info!(
        provider = ctx.provider_id,
        link_name = ctx.host_data.link_name,
        "provider serving"
    );

    // Invocations are served on their own task, so link, health and
    // shutdown messages are handled even while every slot is busy.
    let permits = Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_INVOCATIONS));
    let server = Arc::new(Server::new(
        nats.clone(),
        ctx.verifier.clone(),
        ctx.provider_id.as_str(),
        ctx.rpc.max_payload(),
    ));
    let service = Arc::new(ProviderService {
        linked: linked.clone(),
        permits: permits.clone(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(trellis_lattice_client::rpc::serve(
        server,
        invocations,
        service,
        stop_rx,
    ));

    let limits = DecodeLimits::default();
    // Verify before doing any work: only the host that started us may
    // change links, ask for health or stop us.
    let from_host = |message: &async_nats::Message, operation: &str| {
        verify_from(
            &ctx.verifier,
            message,
            &ctx.provider_id,
            operation,
            &ctx.host_data.host_id,
        )
        .map_err(|e| tracing::warn!(operation, "ignoring a control message: {e}"))
        .is_ok()
    };
    let terminate = terminate_signal();
    tokio::pin!(terminate);
    loop {
        tokio::select! {
            Some(message) = link_puts.next() => {
                if !from_host(&message, LINK_PUT_OPERATION) {
                    continue;
                }
                match LinkDefinition::decode(&message.payload, &limits) {
                    Ok(link) if ours(&ctx, &link) => put_sealed_link(&ctx, &linked, &link).await,
                    Ok(_) => {}
                    Err(e) => tracing::warn!("ignoring an invalid link: {e}"),
                }
            }
            Some(message) = link_dels.next() => {
                if !from_host(&message, LINK_DEL_OPERATION) {
                    continue;
                }
                match LinkDefinition::decode(&message.payload, &limits) {
                    Ok(link) if ours(&ctx, &link) => linked.delete_link(&link).await,
                    Ok(_) => {}
                    Err(e) => tracing::warn!("ignoring an invalid link deletion: {e}"),
                }
            }
            Some(message) = health.next() => {
                if !from_host(&message, HEALTH_OPERATION) {
                    continue;
                }
                let status = linked.health().await;
                if let (Some(reply), Ok(body)) = (message.reply, encode_json(&status)) {
                    let _ = nats.publish(reply, body.into()).await;
                }
            }
            Some(message) = renewals.next() => {
                if !from_host(&message, CREDENTIAL_OPERATION) {
                    continue;
                }
                match decode_json::<CredentialRenewal>(&message.payload, &limits) {
                    Ok(renewal) => {
                        ctx.rpc.signer().set_credential(renewal.credential);
                        tracing::debug!("credential renewed by the host");
                    }
                    Err(e) => tracing::warn!("ignoring an invalid credential renewal: {e}"),
                }
            }
            Some(message) = shutdown.next() => {
                if !from_host(&message, SHUTDOWN_OPERATION) {
                    continue;
                }
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
    // Stop taking invocations, answer those already routed here, finish
    // those in flight, then stop.
    stop_tx.send_replace(true);
    let _ = tokio::time::timeout(NATS_TIMEOUT, serving).await;
    let _ = tokio::time::timeout(
        NATS_TIMEOUT,
        permits.acquire_many(u32::try_from(DEFAULT_MAX_CONCURRENT_INVOCATIONS).unwrap_or(u32::MAX)),
    )
    .await;
    linked.shutdown().await;
    let _ = tokio::time::timeout(NATS_TIMEOUT, nats.flush()).await;
    Ok(())
}

/// Opens `link`'s secrets and binds it; a link whose secrets do not open
/// is not bound, with a warning. A refusal by the provider is logged by
/// the link table.
async fn put_sealed_link<P: Provider>(
    ctx: &ProviderContext,
    linked: &LinkedProvider<P>,
    link: &LinkDefinition,
) {
    match ctx.open_link(link) {
        Ok(opened) => {
            let _ = linked.put_link(&opened).await;
        }
        Err(e) => tracing::warn!(actor = link.actor_id, "ignoring a link: {e}"),
    }
}

/// Whether `link` names this provider instance.
fn ours(ctx: &ProviderContext, link: &LinkDefinition) -> bool {
    link.provider_id == ctx.provider_id && link.link_name == ctx.host_data.link_name
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
