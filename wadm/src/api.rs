//! The wadm API served over NATS request/reply
//! (`wadm.api.{lattice}.model.{operation}`, `docs/protocol.md` §12).
//!
//! Every wadm process of the lattice serves it in one queue group, so one
//! answers each request. A request is verified (signature, binding to its
//! subject, replay, scope) before anything else is read or done.

use futures::StreamExt as _;
use tokio::sync::watch;
use trellis_claims::invocation::{InvocationVerifier, VerifierSettings};
use trellis_lattice_client::signed::verify_request;
use trellis_protocol::ctl::CtlReply;
use trellis_protocol::wadm::{
    AppStatus, ModelOperation, ModelRequest, ModelSummary, PutModelReply, StatusKind, StoredModel,
    VersionInfo,
};
use trellis_protocol::{DecodeLimits, decode_json};

use crate::WadmConfig;
use crate::error::{Error, ErrorKind};
use crate::manifest::Manifest;
use crate::store::{AppRecord, Store};

/// The queue group every wadm process serves the API in.
pub const API_QUEUE_GROUP: &str = "wadm";

pub(crate) async fn serve(
    nats: async_nats::Client,
    mut requests: async_nats::Subscriber,
    config: WadmConfig,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    let lattice = match trellis_protocol::Lattice::new(config.lattice.clone()) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("wadm: bad lattice name: {e}");
            return;
        }
    };
    let verifier = InvocationVerifier::control(
        lattice.as_str(),
        config.ctl_issuers.iter().cloned(),
        VerifierSettings::default(),
    );
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            m = requests.next() => match m {
                Some(m) => m,
                None => break,
            },
        };
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let reply = match ModelOperation::parse(&lattice, &message.subject) {
            None => failure(&Error::new(ErrorKind::BadRequest, "unknown operation")),
            Some(op) => match verify_request(&verifier, &message, op.name(), op.is_read_only()) {
                Err(e) => failure(&Error::new(ErrorKind::Denied, e.to_string())),
                Ok(_) => match tokio::time::timeout(
                    config.ctl_timeout,
                    handle(&store, op, &message.payload),
                )
                .await
                {
                    Ok(Ok(body)) => body,
                    Ok(Err(e)) => failure(&e),
                    Err(_) => failure(&Error::new(
                        ErrorKind::Timeout,
                        "the request took too long; JetStream may be unavailable",
                    )),
                },
            },
        };
        if let Err(e) = nats.publish(reply_to, reply.into()).await {
            tracing::debug!("cannot answer a wadm request: {e}");
        }
    }
}

fn failure(error: &Error) -> Vec<u8> {
    CtlReply::<()>::refused(error.kind().failure(), error.to_string())
        .encode()
        .unwrap_or_default()
}

fn ok<T: serde::Serialize>(value: T) -> Result<Vec<u8>, Error> {
    CtlReply::ok(value)
        .encode()
        .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
}

fn model_request(payload: &[u8]) -> Result<ModelRequest, Error> {
    let request: ModelRequest = decode_json(payload, &DecodeLimits::default())
        .map_err(|e| Error::new(ErrorKind::BadRequest, format!("bad request body: {e}")))?;
    trellis_protocol::wadm::validate_app_name(&request.name)
        .map_err(|e| Error::new(ErrorKind::BadRequest, format!("name: {e}")))?;
    Ok(request)
}

async fn summary(store: &Store, record: &AppRecord) -> ModelSummary {
    ModelSummary {
        name: record.name.clone(),
        latest_version: record
            .latest()
            .map(|v| v.version.clone())
            .unwrap_or_default(),
        deployed_version: record.deployed.clone(),
        description: record
            .latest()
            .map(|v| v.manifest.description().to_owned())
            .unwrap_or_default(),
        status: status_of(store, record).await,
    }
}

/// The status to report: the reconciler's, unless the record says
/// otherwise (a deploy or undeploy it has not acted on yet).
async fn status_of(store: &Store, record: &AppRecord) -> AppStatus {
    let stored = store.status(&record.name).await.ok().flatten();
    match (&record.deployed, stored) {
        (None, _) => AppStatus::undeployed(record.name.clone()),
        (Some(version), Some(status))
            if status.version.as_deref() == Some(version)
                && status.kind != StatusKind::Undeployed =>
        {
            status
        }
        (Some(version), _) => AppStatus {
            name: record.name.clone(),
            version: Some(version.clone()),
            kind: StatusKind::Reconciling,
            message: "waiting for wadm to act on the deployment".to_owned(),
            components: Vec::new(),
        },
    }
}

async fn record_of(store: &Store, name: &str) -> Result<AppRecord, Error> {
    store
        .get(name)
        .await?
        .map(|(record, _)| record)
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no application {name}")))
}

async fn handle(store: &Store, op: ModelOperation, payload: &[u8]) -> Result<Vec<u8>, Error> {
    match op {
        ModelOperation::Put => {
            let text = std::str::from_utf8(payload)
                .map_err(|_| Error::new(ErrorKind::BadRequest, "the manifest is not UTF-8"))?;
            let manifest = Manifest::parse(text)
                .and_then(|m| m.check_sealed().map(|()| m))
                .map_err(|e| {
                    Error::new(
                        ErrorKind::BadRequest,
                        format!("invalid manifest ({}): {e}", e.kind()),
                    )
                })?;
            let total_versions = store.put(&manifest).await?;
            ok(PutModelReply {
                name: manifest.name().to_owned(),
                version: manifest.version().to_owned(),
                total_versions,
            })
        }
        ModelOperation::Get => {
            let request = model_request(payload)?;
            let record = record_of(store, &request.name).await?;
            let stored = match &request.version {
                Some(v) => record.version(v),
                None => record.latest(),
            }
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such version"))?;
            ok(StoredModel {
                name: record.name.clone(),
                version: stored.version.clone(),
                deployed: record.deployed.as_deref() == Some(stored.version.as_str()),
                manifest: serde_json::to_value(&stored.manifest)
                    .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?,
            })
        }
        ModelOperation::List => {
            let records = store.list().await?;
            let mut out = Vec::with_capacity(records.len());
            for record in &records {
                out.push(summary(store, record).await);
            }
            ok(out)
        }
        ModelOperation::Versions => {
            let request = model_request(payload)?;
            let record = record_of(store, &request.name).await?;
            ok(record
                .versions
                .iter()
                .map(|v| VersionInfo {
                    version: v.version.clone(),
                    deployed: record.deployed.as_deref() == Some(v.version.as_str()),
                })
                .collect::<Vec<_>>())
        }
        ModelOperation::Del => {
            let request = model_request(payload)?;
            store
                .delete(&request.name, request.version.as_deref())
                .await?;
            CtlReply::accepted()
                .encode()
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
        }
        ModelOperation::Deploy => {
            let request = model_request(payload)?;
            let record = store
                .set_deployed(&request.name, request.version.as_deref(), true)
                .await?;
            ok(summary(store, &record).await)
        }
        ModelOperation::Undeploy => {
            let request = model_request(payload)?;
            store.set_deployed(&request.name, None, false).await?;
            CtlReply::accepted()
                .encode()
                .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))
        }
        ModelOperation::Status => {
            let request = model_request(payload)?;
            let record = record_of(store, &request.name).await?;
            ok(status_of(store, &record).await)
        }
        _ => Err(Error::new(ErrorKind::BadRequest, "unknown operation")),
    }
}
