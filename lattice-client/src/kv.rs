//! Opening JetStream key-value buckets, creating them when missing.

use std::time::Duration;

use crate::ConnectError;

/// How a bucket is created when it does not exist yet; an existing bucket
/// keeps its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSettings {
    /// Revisions kept per key. Defaults to 1.
    pub history: i64,
    /// Most bytes the bucket holds, every revision counted; once full,
    /// further puts are refused (JetStream `discard: new`) until entries
    /// are deleted. `-1` for no limit. Defaults to 64 MiB.
    pub max_bytes: i64,
}

impl Default for BucketSettings {
    fn default() -> Self {
        Self {
            history: 1,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Opens the key-value bucket `name`, creating it with `settings` when it
/// does not exist, within `timeout`.
///
/// The stream is created through the JetStream API (`$JS.API.STREAM.CREATE`)
/// with the settings of the key-value specification (ADR-8 of the NATS
/// architecture decisions): one subject space `$KV.{name}.>`, `history`
/// messages per subject, at most `max_bytes` in all, rollups allowed,
/// deletes denied, direct gets on.
/// async-nats 0.51's own `create_key_value` cannot read the account-info
/// reply of the nats-server 2.9 that Debian ships (see
/// `docs/adr/0005-lattice-bucket-on-nats-2-9.md`).
///
/// # Errors
///
/// [`ConnectError`] if JetStream is unavailable or refuses the bucket.
pub async fn open_or_create(
    nats: &async_nats::Client,
    name: &str,
    settings: BucketSettings,
    timeout: Duration,
) -> Result<async_nats::jetstream::kv::Store, ConnectError> {
    let js = async_nats::jetstream::new(nats.clone());
    let open = async {
        if let Ok(store) = js.get_key_value(name).await {
            return Ok(store);
        }
        create_stream(nats, name, settings).await?;
        js.get_key_value(name)
            .await
            .map_err(|e| ConnectError(format!("cannot open bucket {name}: {e}")))
    };
    tokio::time::timeout(timeout, open).await.map_err(|_| {
        ConnectError(format!(
            "timed out opening bucket {name}; is JetStream enabled?"
        ))
    })?
}

async fn create_stream(
    nats: &async_nats::Client,
    name: &str,
    settings: BucketSettings,
) -> Result<(), ConnectError> {
    let config = serde_json::json!({
        "name": format!("KV_{name}"),
        "subjects": [format!("$KV.{name}.>")],
        "retention": "limits",
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": settings.max_bytes,
        "max_age": 0,
        "max_msgs_per_subject": settings.history,
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
    let body = serde_json::to_vec(&config).map_err(|e| ConnectError(e.to_string()))?;
    let reply = nats
        .request(format!("$JS.API.STREAM.CREATE.KV_{name}"), body.into())
        .await
        .map_err(|e| ConnectError(format!("cannot create bucket {name}: {e}")))?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| ConnectError(format!("unreadable JetStream reply: {e}")))?;
    match answer.get("error") {
        // Created by someone else meanwhile.
        Some(err) if err.get("err_code").and_then(serde_json::Value::as_u64) == Some(10058) => {
            Ok(())
        }
        Some(err) => Err(ConnectError(format!("cannot create bucket {name}: {err}"))),
        None => Ok(()),
    }
}
