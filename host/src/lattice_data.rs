//! Lattice data: link definitions and claims in a JetStream key-value
//! bucket per lattice, `TRELLIS_LATTICE_{lattice}`, so that every host sees
//! the same links. Each host keeps a local copy, updated by a watcher.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_protocol::{DecodeLimits, Lattice, LinkDefinition};

use crate::error::{Error, ErrorKind, Result};
use crate::providers::{LinkChange, notify_link};
use crate::rpc::LatticeClient;

/// Prefix of link keys in the bucket.
pub const LINK_KEY_PREFIX: &str = "link.";
/// Prefix of claims keys in the bucket.
pub const CLAIMS_KEY_PREFIX: &str = "claims.";
/// Revisions kept per key. Defaults to 1: only the current link matters.
pub const BUCKET_HISTORY: i64 = 1;

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
    timeout: Duration,
) -> Result<async_nats::jetstream::kv::Store> {
    trellis_lattice_client::kv::open_or_create(nats, &bucket_name(lattice), BUCKET_HISTORY, timeout)
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, e.to_string()))
}

/// Puts a link into the bucket.
///
/// # Errors
///
/// [`ErrorKind::BadRequest`] for an invalid link, [`ErrorKind::Nats`] if
/// the write fails.
pub async fn put_link(
    bucket: &async_nats::jetstream::kv::Store,
    link: &LinkDefinition,
) -> Result<()> {
    link.validate()
        .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?;
    let bytes = link
        .encode()
        .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?;
    bucket
        .put(link.bucket_key(), bytes.into())
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot store link: {e}")))?;
    Ok(())
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

/// Stores an actor's verified claims under `claims.{actor_id}`.
///
/// # Errors
///
/// [`ErrorKind::Nats`] if the write fails.
pub async fn put_claims<T: serde::Serialize>(
    bucket: &async_nats::jetstream::kv::Store,
    subject: &str,
    claims: &T,
) -> Result<()> {
    let bytes =
        serde_json::to_vec(claims).map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?;
    bucket
        .put(format!("{CLAIMS_KEY_PREFIX}{subject}"), bytes.into())
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot store claims: {e}")))?;
    Ok(())
}

/// Watches the bucket forever, mirroring links and claims into `client`,
/// and telling the providers of host `host_id` about changes of their
/// links. Each watch starts with every current value, and is re-established
/// (after a short pause) whenever it ends, for example after NATS restarts.
pub async fn watch(
    bucket: async_nats::jetstream::kv::Store,
    client: Arc<LatticeClient>,
    lattice: Lattice,
    host_id: String,
) {
    let limits = DecodeLimits::default();
    loop {
        match bucket.watch_with_history(">").await {
            Ok(mut watch) => {
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(entry) => {
                            if let Some((link, change)) = apply(&client, &limits, entry) {
                                notify_link(&client, &lattice, &host_id, &link, change).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("lattice bucket watch failed: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot watch the lattice bucket: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Applies one bucket entry to `client`; a link that changed is returned
/// with the change, for its provider to be told.
fn apply(
    client: &LatticeClient,
    limits: &DecodeLimits,
    entry: async_nats::jetstream::kv::Entry,
) -> Option<(LinkDefinition, LinkChange)> {
    let put = matches!(entry.operation, async_nats::jetstream::kv::Operation::Put);
    if entry.key.starts_with(LINK_KEY_PREFIX) {
        if !put {
            return client
                .remove_link(&entry.key)
                .map(|link| (link, LinkChange::Delete));
        }
        match LinkDefinition::decode(&entry.value, limits) {
            Ok(link) if link.bucket_key() == entry.key => {
                if client.put_link(link.clone()) {
                    return Some((link, LinkChange::Put));
                }
            }
            Ok(_) => tracing::warn!(
                key = entry.key,
                "ignoring a link stored under the wrong key"
            ),
            Err(e) => tracing::warn!(key = entry.key, "ignoring an invalid link: {e}"),
        }
    } else if entry.key.starts_with(CLAIMS_KEY_PREFIX) {
        if !put {
            client.remove_claims(&entry.key);
            return None;
        }
        match trellis_protocol::decode_json::<serde_json::Value>(&entry.value, limits) {
            Ok(claims) => client.put_claims(entry.key, claims),
            Err(e) => tracing::warn!(key = entry.key, "ignoring invalid claims: {e}"),
        }
    }
    None
}
