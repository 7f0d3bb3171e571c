//! The control interface: JSON requests on `trellis.ctl.v1.{lattice}.…`,
//! each answered with a `{success, message, response}` reply. See
//! `docs/protocol.md` for every operation.
//!
//! Every request must carry a control token of a client vouched for by one
//! of [`crate::HostConfig::ctl_issuers`], bound to the request's subject and
//! payload, with a scope that allows the operation. Anything else is
//! refused with a `denied` reply before the payload is even decoded.

use futures::StreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_protocol::ctl::{
    ClaimsList, CtlFailure, CtlReply, DeleteLabelRequest, DeleteLinkRequest, HostPong, LinkList,
    PutLabelRequest, ScaleActorRequest, StartActorRequest, StartProviderRequest, StopActorRequest,
    StopHostRequest, StopProviderRequest, UpdateActorRequest,
};
use trellis_protocol::subject::{CTL_QUEUE_GROUP, CtlOperation};
use trellis_protocol::{DecodeLimits, LinkDefinition, decode_json};

use crate::error::{Error, ErrorKind, Result};
use crate::host::Host;

/// Subscribes the host's control interface and serves it until the host
/// stops.
///
/// # Errors
///
/// [`ErrorKind::Nats`] if a subscription fails.
pub(crate) async fn spawn(host: Host) -> Result<()> {
    let subs = host
        .inner
        .lattice
        .ctl_host_subscriptions(host.id())
        .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
    let nats = host.inner.ctl_nats.clone();
    let sub_err = |e: async_nats::SubscribeError| {
        Error::new(
            ErrorKind::Nats,
            format!("cannot subscribe the control interface: {e}"),
        )
    };
    let mut streams = vec![nats.subscribe(subs.host).await.map_err(sub_err)?];
    for subject in subs.every_host {
        streams.push(nats.subscribe(subject).await.map_err(sub_err)?);
    }
    for subject in subs.one_host {
        streams.push(
            nats.queue_subscribe(subject, CTL_QUEUE_GROUP.to_owned())
                .await
                .map_err(sub_err)?,
        );
    }
    trellis_lattice_client::round_trip(&nats, host.inner.config.nats.request_timeout)
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, e.to_string()))?;
    let mut merged = futures::stream::select_all(streams);
    // At most this many requests are handled at once; further messages
    // wait in their subscriptions' bounded buffers.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(
        host.inner.config.max_concurrent_ctl_requests.max(1),
    ));
    tokio::spawn(async move {
        let stopped = host.stopped();
        tokio::pin!(stopped);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot,
                () = &mut stopped => break,
            };
            let Ok(slot) = slot else { break };
            tokio::select! {
                message = merged.next() => {
                    let Some(message) = message else { break };
                    let host = host.clone();
                    tokio::spawn(async move {
                        handle(host, message).await;
                        drop(slot);
                    });
                }
                () = &mut stopped => break,
            }
        }
    });
    Ok(())
}

fn reply_bytes<T: Serialize>(result: Result<T>) -> Vec<u8> {
    let encoded = match result {
        Ok(value) => CtlReply::ok(value).encode(),
        Err(e) => {
            let kind = match e.kind() {
                ErrorKind::BadRequest | ErrorKind::Config => CtlFailure::BadRequest,
                ErrorKind::NotFound => CtlFailure::NotFound,
                ErrorKind::Conflict => CtlFailure::Conflict,
                ErrorKind::Denied => CtlFailure::Denied,
                _ => CtlFailure::Failed,
            };
            CtlReply::<()>::refused(kind, e.to_string()).encode()
        }
    };
    encoded.unwrap_or_else(|e| {
        format!(r#"{{"success":false,"message":"cannot encode the reply: {e}","response":null}}"#)
            .into_bytes()
    })
}

fn request<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    decode_json(payload, &DecodeLimits::default())
        .map_err(|e| Error::new(ErrorKind::BadRequest, format!("bad request: {e}")))
}

async fn handle(host: Host, message: async_nats::Message) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    let body = match host.inner.lattice.parse_ctl(&message.subject) {
        Ok(op) => match trellis_lattice_client::signed::verify_control(
            &host.inner.ctl_verifier,
            &message,
            &op,
        ) {
            Ok(sender) => {
                tracing::debug!(sender, operation = op.name(), "control request");
                dispatch(&host, op, &message.payload).await
            }
            Err(e) => {
                tracing::warn!(operation = op.name(), "control request refused: {e}");
                refused(&e)
            }
        },
        Err(e) => reply_bytes::<()>(Err(Error::new(ErrorKind::BadRequest, e.to_string()))),
    };
    if let Err(e) = host.inner.ctl_nats.publish(reply, body.into()).await {
        tracing::warn!("cannot answer a control request: {e}");
    }
}

/// The `denied` reply to a request whose token or scope did not pass.
fn refused(e: &trellis_claims::Error) -> Vec<u8> {
    CtlReply::<()>::refused(
        CtlFailure::Denied,
        format!("denied: {} ({})", e, e.kind().code()),
    )
    .encode()
    .unwrap_or_else(|_| {
        br#"{"success":false,"message":"denied","response":null,"kind":"denied"}"#.to_vec()
    })
}

async fn dispatch(host: &Host, op: CtlOperation, payload: &[u8]) -> Vec<u8> {
    match op {
        CtlOperation::HostPing => reply_bytes(Ok(pong(host).await)),
        CtlOperation::HostGet { .. } => reply_bytes(Ok(host.inventory().await)),
        CtlOperation::HostStop { .. } => {
            let req: StopHostRequest = if payload.is_empty() {
                StopHostRequest::default()
            } else {
                match request(payload) {
                    Ok(r) => r,
                    Err(e) => return reply_bytes::<()>(Err(e)),
                }
            };
            let stopping = host.clone();
            tokio::spawn(async move {
                stopping
                    .stop(req.timeout_ms.map(std::time::Duration::from_millis))
                    .await
            });
            reply_bytes(Ok(()))
        }
        CtlOperation::ActorStart { .. } => match request::<StartActorRequest>(payload) {
            Ok(r) => reply_bytes(
                host.start_actor(&r.actor_ref, r.max_instances, r.annotations)
                    .await,
            ),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::ActorScale { .. } => match request::<ScaleActorRequest>(payload) {
            Ok(r) => reply_bytes(
                host.scale_actor(&r.actor_id, r.max_instances, r.annotations)
                    .await,
            ),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::ActorUpdate { .. } => match request::<UpdateActorRequest>(payload) {
            Ok(r) => reply_bytes(host.update_actor(&r.actor_id, &r.new_actor_ref).await),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::ActorStop { .. } => match request::<StopActorRequest>(payload) {
            Ok(r) => reply_bytes(host.stop_actor(&r.actor_id).await),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::LabelPut { .. } => match request::<PutLabelRequest>(payload) {
            Ok(r) => reply_bytes(host.put_label(&r.key, &r.value).await),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::LabelDel { .. } => match request::<DeleteLabelRequest>(payload) {
            Ok(r) => reply_bytes(host.delete_label(&r.key).await),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::LinkPut => match request::<LinkDefinition>(payload) {
            Ok(link) => reply_bytes(host.put_link(link).await),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::LinkDel => match request::<DeleteLinkRequest>(payload) {
            Ok(r) => reply_bytes(
                host.delete_link(&r.actor_id, &r.contract_id, &r.link_name)
                    .await,
            ),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::LinkList => reply_bytes(Ok(LinkList {
            links: host.links(),
        })),
        CtlOperation::ClaimsList => reply_bytes(Ok(ClaimsList {
            claims: host.claims(),
        })),
        CtlOperation::ProviderStart { .. } => match request::<StartProviderRequest>(payload) {
            Ok(r) => reply_bytes(
                host.start_provider(&r.provider_ref, &r.link_name, r.config, r.annotations)
                    .await,
            ),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        CtlOperation::ProviderStop { .. } => match request::<StopProviderRequest>(payload) {
            Ok(r) => reply_bytes(host.stop_provider(&r.provider_id, &r.link_name).await),
            Err(e) => reply_bytes::<()>(Err(e)),
        },
        _ => reply_bytes::<()>(Err(Error::new(ErrorKind::BadRequest, "unknown operation"))),
    }
}

async fn pong(host: &Host) -> HostPong {
    let inventory = host.inventory().await;
    HostPong {
        host_id: inventory.host_id,
        labels: inventory.labels,
        version: inventory.version,
        uptime_ms: inventory.uptime_ms,
        secrets_key: host.inner.secrets.public_key(),
    }
}
