//! Lattice data: link definitions and claims in a JetStream key-value
//! bucket per lattice, `TRELLIS_LATTICE_{lattice}`, so that every host sees
//! the same links. Each host keeps a local copy, updated by a watcher.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_protocol::{DecodeLimits, LinkDefinition};

use crate::error::{Error, ErrorKind, Result};
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
    let js = async_nats::jetstream::new(nats.clone());
    let name = bucket_name(lattice);
    let open = async {
        if let Ok(store) = js.get_key_value(&name).await {
            return Ok(store);
        }
        create_bucket_stream(nats, &name).await?;
        js.get_key_value(&name)
            .await
            .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot open bucket {name}: {e}")))
    };
    tokio::time::timeout(timeout, open).await.map_err(|_| {
        Error::new(
            ErrorKind::Nats,
            format!("timed out opening bucket {name}; is JetStream enabled?"),
        )
    })?
}

/// Creates the stream behind a key-value bucket through the JetStream API
/// (`$JS.API.STREAM.CREATE`), with the settings of the KV specification
/// (ADR-8 of the NATS architecture decisions): one subject space
/// `$KV.{bucket}.>`, [`BUCKET_HISTORY`] messages per subject, rollups
/// allowed, deletes denied, direct gets on.
///
/// async-nats 0.51's own `create_key_value` cannot parse the reply of the
/// nats-server 2.9 that Debian ships, so the stream is created here and the
/// bucket then opened with async-nats.
async fn create_bucket_stream(nats: &async_nats::Client, name: &str) -> Result<()> {
    let config = serde_json::json!({
        "name": format!("KV_{name}"),
        "subjects": [format!("$KV.{name}.>")],
        "retention": "limits",
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": BUCKET_HISTORY,
        "max_msg_size": -1,
        "discard": "new",
        "storage": "file",
        "num_replicas": 1,
        "duplicate_window": 120_000_000_000u64,
        "allow_direct": true,
        "deny_delete": true,
        "deny_purge": false,
        "allow_rollup_hdrs": true,
    });
    let body =
        serde_json::to_vec(&config).map_err(|e| Error::new(ErrorKind::Nats, e.to_string()))?;
    let reply = nats
        .request(format!("$JS.API.STREAM.CREATE.KV_{name}"), body.into())
        .await
        .map_err(|e| Error::new(ErrorKind::Nats, format!("cannot create bucket {name}: {e}")))?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| Error::new(ErrorKind::Nats, format!("unreadable JetStream reply: {e}")))?;
    match answer.get("error") {
        // Another host created it at the same time.
        Some(err) if err.get("err_code").and_then(serde_json::Value::as_u64) == Some(10058) => {
            Ok(())
        }
        Some(err) => Err(Error::new(
            ErrorKind::Nats,
            format!("cannot create bucket {name}: {err}"),
        )),
        None => Ok(()),
    }
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

/// Watches the bucket forever, mirroring links and claims into `client`.
/// Each watch starts with every current value, and is re-established (after
/// a short pause) whenever it ends, for example after NATS restarts.
pub async fn watch(bucket: async_nats::jetstream::kv::Store, client: Arc<LatticeClient>) {
    let limits = DecodeLimits::default();
    loop {
        match bucket.watch_with_history(">").await {
            Ok(mut watch) => {
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(entry) => apply(&client, &limits, entry),
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

fn apply(client: &LatticeClient, limits: &DecodeLimits, entry: async_nats::jetstream::kv::Entry) {
    let put = matches!(entry.operation, async_nats::jetstream::kv::Operation::Put);
    if entry.key.starts_with(LINK_KEY_PREFIX) {
        if !put {
            client.remove_link(&entry.key);
            return;
        }
        match LinkDefinition::decode(&entry.value, limits) {
            Ok(link) if link.bucket_key() == entry.key => client.put_link(link),
            Ok(_) => tracing::warn!(
                key = entry.key,
                "ignoring a link stored under the wrong key"
            ),
            Err(e) => tracing::warn!(key = entry.key, "ignoring an invalid link: {e}"),
        }
    } else if entry.key.starts_with(CLAIMS_KEY_PREFIX) {
        if !put {
            client.remove_claims(&entry.key);
            return;
        }
        match trellis_protocol::decode_json::<serde_json::Value>(&entry.value, limits) {
            Ok(claims) => client.put_claims(entry.key, claims),
            Err(e) => tracing::warn!(key = entry.key, "ignoring invalid claims: {e}"),
        }
    }
}
