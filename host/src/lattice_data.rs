//! Lattice data: link definitions and claims in a JetStream key-value
//! bucket per lattice, `TRELLIS_LATTICE_{lattice}`, so that every host sees
//! the same links. Each host keeps a local copy, updated by a watcher.
//!
//! Every entry is signed (`docs/protocol.md` §6.3): a link is stored as a
//! JWT issued by the writing host's cluster key, and an actor's claims as
//! the actor's original claims JWT. A host checks each entry again when it
//! reads it, and ignores, with a `lattice_data_rejected` event, any entry
//! that is unsigned, tampered, signed by an issuer it does not trust or
//! stored under another key. If the bucket is deleted, the watcher creates
//! it again and the host writes its links and its running actors' claims
//! back.

use std::time::Duration;

use futures::StreamExt as _;
use trellis_claims::actor::ActorMetadata;
use trellis_claims::keys::{KeyKind, KeyPair};
use trellis_claims::{Claims, VerifyOptions, jwt};
use trellis_protocol::event::LatticeDataRejectedData;
use trellis_protocol::{DecodeLimits, LinkDefinition};

use crate::error::{Error, ErrorKind, Result};
use crate::host::Host;
use crate::providers::LinkChange;

/// Prefix of link keys in the bucket.
pub const LINK_KEY_PREFIX: &str = "link.";
/// Prefix of claims keys in the bucket.
pub const CLAIMS_KEY_PREFIX: &str = "claims.";
/// Revisions kept per key. Defaults to 1: only the current link matters.
pub const BUCKET_HISTORY: i64 = 1;

/// How often a host checks that the bucket's stream still exists (a watch
/// does not end when it is deleted). Defaults to 1 s.
pub const BUCKET_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Name of the lattice's bucket.
pub fn bucket_name(lattice: &str) -> String {
    format!("TRELLIS_LATTICE_{lattice}")
}

/// Opens (creating if needed) the lattice bucket.
///
/// # Errors
///
/// [`ErrorKind::Nats`] if JetStream is unavailable.
pub async fn open_bucket(
    nats: &async_nats::Client,
    lattice: &str,
    max_bytes: usize,
    timeout: Duration,
) -> Result<async_nats::jetstream::kv::Store> {
    let settings = trellis_lattice_client::kv::BucketSettings {
        history: BUCKET_HISTORY,
        max_bytes: i64::try_from(max_bytes).unwrap_or(i64::MAX),
    };
    trellis_lattice_client::kv::open_or_create(nats, &bucket_name(lattice), settings, timeout)
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, e.to_string()))
}

/// Puts a link into the bucket, signed by `cluster`: a JWT whose `sub` is
/// the actor and whose `trellis` claim is the link. The link must already
/// be valid: [`crate::Host::put_link`] checks it before any work is done.
///
/// # Errors
///
/// [`ErrorKind::Claims`] if signing fails, [`ErrorKind::Nats`] if the
/// write fails.
pub async fn put_link(
    bucket: &async_nats::jetstream::kv::Store,
    cluster: &KeyPair,
    link: &LinkDefinition,
) -> Result<()> {
    let mut claims = Claims::new(link.actor_id.clone(), link.clone());
    let token = jwt::sign(&mut claims, cluster, KeyKind::Cluster)?;
    bucket
        .put(link.bucket_key(), token.into_bytes().into())
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot store link: {e}")))?;
    Ok(())
}

/// Checks a link entry: a JWT of a cluster issuer in `cluster_issuers`
/// about the actor it links, stored under the link's own key.
fn verify_link(
    key: &str,
    value: &[u8],
    cluster_issuers: &[String],
) -> std::result::Result<LinkDefinition, String> {
    let token = std::str::from_utf8(value).map_err(|_| "malformed".to_owned())?;
    let options = VerifyOptions {
        trusted_issuers: Some(cluster_issuers.iter().cloned().collect()),
        issuer_kind: KeyKind::Cluster,
        subject_kind: KeyKind::Actor,
        ..VerifyOptions::default()
    };
    let claims: Claims<LinkDefinition> =
        jwt::verify(token, &options).map_err(|e| e.kind().code().to_owned())?;
    let link = claims.trellis;
    if link.actor_id != claims.sub || link.bucket_key() != key || link.validate().is_err() {
        return Err("wrong_key".to_owned());
    }
    Ok(link)
}

/// Checks a claims entry: an actor claims JWT of an issuer `trust` trusts,
/// stored under its own actor's key. Returns the claims as JSON.
fn verify_claims(
    key: &str,
    value: &[u8],
    trust: &VerifyOptions,
) -> std::result::Result<serde_json::Value, String> {
    let token = std::str::from_utf8(value).map_err(|_| "malformed".to_owned())?;
    let options = trust.clone().with_subject_kind(KeyKind::Actor);
    let claims: Claims<ActorMetadata> =
        jwt::verify(token, &options).map_err(|e| e.kind().code().to_owned())?;
    if key != format!("{CLAIMS_KEY_PREFIX}{}", claims.sub) {
        return Err("wrong_key".to_owned());
    }
    serde_json::to_value(&claims).map_err(|_| "malformed".to_owned())
}

/// Deletes the link stored under `key`.
///
/// # Errors
///
/// [`ErrorKind::Nats`] if the delete fails.
pub async fn delete_link(bucket: &async_nats::jetstream::kv::Store, key: &str) -> Result<()> {
    bucket
        .delete(key)
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot delete link: {e}")))
}

/// Stores an actor's original claims JWT (`token`, already verified)
/// under `claims.{actor_id}`.
///
/// # Errors
///
/// [`ErrorKind::Nats`] if the write fails.
pub async fn put_claims(
    bucket: &async_nats::jetstream::kv::Store,
    actor_id: &str,
    token: &str,
) -> Result<()> {
    bucket
        .put(
            format!("{CLAIMS_KEY_PREFIX}{actor_id}"),
            token.to_owned().into_bytes().into(),
        )
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot store claims: {e}")))?;
    Ok(())
}

/// Watches the bucket forever, mirroring links and claims into the host's
/// lattice client, and telling the host's providers about changes of
/// their links. Each watch starts with every current value, and is
/// re-established (after a short pause) whenever it ends, for example
/// after NATS restarts. When the bucket cannot be watched, it is opened
/// again, which creates it if it was deleted, and the host writes its
/// links and its running actors' claims back into it.
pub(crate) async fn watch(host: Host) {
    let limits = DecodeLimits::default();
    let inner = &host.inner;
    let mut stop = inner.stop_tx.subscribe();
    let mut check = tokio::time::interval(BUCKET_CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match inner.bucket.watch_with_history(">").await {
            Ok(mut watch) => loop {
                let entry = tokio::select! {
                    entry = watch.next() => entry,
                    _ = check.tick() => {
                        if stream_deleted(&host).await {
                            tracing::warn!("the lattice bucket was deleted; creating it again");
                            restore(&host).await;
                            break;
                        }
                        continue;
                    }
                    _ = stop.changed() => return,
                };
                match entry {
                    Some(Ok(entry)) => {
                        let key = entry.key.clone();
                        match apply(&host, &limits, entry) {
                            Ok(Some((link, change))) => {
                                host.notify_provider(&link, change).await;
                            }
                            Ok(None) => {}
                            Err(reason) => {
                                tracing::warn!(key, reason, "ignoring a lattice bucket entry");
                                inner
                                    .events
                                    .publish(LatticeDataRejectedData { key, reason })
                                    .await;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!("lattice bucket watch failed: {e}");
                        break;
                    }
                    None => break,
                }
            },
            Err(e) => {
                tracing::warn!("cannot watch the lattice bucket: {e}; opening it again");
                restore(&host).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether the bucket's stream is gone (and not merely unreachable).
async fn stream_deleted(host: &Host) -> bool {
    let inner = &host.inner;
    let js = async_nats::jetstream::new(inner.nats.clone());
    let name = format!("KV_{}", bucket_name(inner.lattice.as_str()));
    let looked_up =
        tokio::time::timeout(inner.config.nats.request_timeout, js.get_stream(name)).await;
    matches!(
        looked_up,
        Ok(Err(e)) if matches!(
            e.kind(),
            async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
        )
    )
}

/// Opens the bucket again (creating it if it was deleted) and writes this
/// host's links and its running actors' claims back into it.
async fn restore(host: &Host) {
    let inner = &host.inner;
    let timeout = inner.config.nats.request_timeout;
    let max_bytes = inner.config.lattice_bucket_max_bytes;
    if let Err(e) = open_bucket(&inner.nats, inner.lattice.as_str(), max_bytes, timeout).await {
        tracing::warn!("cannot open the lattice bucket: {e}");
        return;
    }
    for link in inner.client.links() {
        if let Err(e) = put_link(&inner.bucket, &inner.cluster, &link).await {
            tracing::warn!("cannot write a link back: {e}");
        }
    }
    let tokens: Vec<(String, String)> = inner
        .actors
        .lock()
        .await
        .iter()
        .map(|(id, actor)| (id.clone(), actor.claims_token()))
        .collect();
    for (id, token) in tokens {
        if let Err(e) = put_claims(&inner.bucket, &id, &token).await {
            tracing::warn!("cannot write claims back: {e}");
        }
    }
    tracing::info!("lattice bucket restored");
}

/// Applies one bucket entry to the host's lattice client; a link that
/// changed is returned with the change, for its provider to be told.
///
/// # Errors
///
/// The reason code when the entry does not verify.
fn apply(
    host: &Host,
    limits: &DecodeLimits,
    entry: async_nats::jetstream::kv::Entry,
) -> std::result::Result<Option<(LinkDefinition, LinkChange)>, String> {
    let client = &host.inner.client;
    let put = matches!(entry.operation, async_nats::jetstream::kv::Operation::Put);
    if entry.value.len() > limits.max_message_bytes {
        return Err("malformed".to_owned());
    }
    if entry.key.starts_with(LINK_KEY_PREFIX) {
        if !put {
            return Ok(client
                .remove_link(&entry.key)
                .map(|link| (link, LinkChange::Delete)));
        }
        let link = verify_link(&entry.key, &entry.value, &host.inner.cluster_issuers)?;
        if client.put_link(link.clone()) {
            return Ok(Some((link, LinkChange::Put)));
        }
    } else if entry.key.starts_with(CLAIMS_KEY_PREFIX) {
        if !put {
            client.remove_claims(&entry.key);
            return Ok(None);
        }
        let claims = verify_claims(&entry.key, &entry.value, &host.inner.trust)?;
        client.put_claims(entry.key, claims);
    }
    Ok(None)
}
