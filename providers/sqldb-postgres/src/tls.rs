//! The TLS connector for `tls = require`.

use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

/// A rustls connector that trusts the Mozilla root certificates
/// (webpki-roots) and checks the server's name against the host it dials.
///
/// # Errors
///
/// A message if rustls cannot be set up with the ring crypto provider.
pub(crate) fn connector() -> Result<MakeRustlsConnect, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("cannot set up TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
