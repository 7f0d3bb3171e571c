//! Connecting to NATS: authentication, TLS, and reconnecting forever with
//! capped exponential backoff, logging every connection event.

use std::path::PathBuf;
use std::time::Duration;

use trellis_protocol::provider::NatsAuth;

use trellis_protocol::provider::NatsConnection;

/// First reconnect delay. Doubles per attempt up to [`MAX_RECONNECT_DELAY`].
pub const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Longest reconnect delay, so that a restarted server is found within a
/// second.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// The reconnect delay after `attempts` failed attempts.
pub fn reconnect_delay(attempts: usize) -> Duration {
    let shift = u32::try_from(attempts.min(16)).unwrap_or(16);
    MIN_RECONNECT_DELAY
        .saturating_mul(1u32 << shift)
        .min(MAX_RECONNECT_DELAY)
}

/// NATS could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// Connects to NATS as `name` (shown in the server's connection list);
/// `timeout` bounds the first connection and every request. Each
/// subscription buffers at most `config.subscription_capacity` messages;
/// further ones are dropped and logged.
///
/// # Errors
///
/// [`ConnectError`] if the first connection fails within `timeout`, or a
/// credentials file cannot be read.
pub async fn connect(
    config: &NatsConnection,
    name: &str,
    timeout: Duration,
) -> Result<async_nats::Client, ConnectError> {
    let nats_err = ConnectError;
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .subscription_capacity(config.subscription_capacity.max(1))
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("disconnected from NATS; reconnecting")
                }
                async_nats::Event::SlowConsumer(sid) => tracing::warn!(
                    "subscription {sid} is full: NATS messages for it are being dropped"
                ),
                other => tracing::info!("NATS event: {other}"),
            }
        });
    options = match &config.auth {
        NatsAuth::None => options,
        NatsAuth::Nkey { seed } => options.nkey(seed.clone()),
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Credentials { path } => options
            .credentials_file(path)
            .await
            .map_err(|e| nats_err(format!("cannot read NATS credentials {path}: {e}")))?,
    };
    if let Some(tls) = &config.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(PathBuf::from(ca));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            options = options.add_client_certificate(PathBuf::from(cert), PathBuf::from(key));
        }
    }
    let urls = config.urls.join(",");
    tokio::time::timeout(timeout, options.connect(urls.as_str()))
        .await
        .map_err(|_| nats_err(format!("timed out connecting to NATS at {urls}")))?
        .map_err(|e| nats_err(format!("cannot connect to NATS at {urls}: {e}")))
}

/// Waits until the server has processed everything this client sent so
/// far, by sending a message to a fresh inbox of this client and waiting
/// for it to come back. After it returns, subscriptions made before it are
/// visible to every other client of the server, so a request sent right
/// after finds its responder.
///
/// # Errors
///
/// [`ConnectError`] if the message does not come back within `timeout`.
pub async fn round_trip(
    client: &async_nats::Client,
    timeout: Duration,
) -> Result<(), ConnectError> {
    use futures::StreamExt as _;
    let fail = ConnectError;
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| fail(format!("cannot subscribe: {e}")))?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| fail(format!("cannot publish: {e}")))?;
    match tokio::time::timeout(timeout, sub.next()).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(fail(format!(
            "no round trip to the NATS server within {timeout:?}"
        ))),
    }
}
