//! Link secrets on the host: the lattice's secrets key, and the sealing of
//! a link's secrets again for the one provider process that may read them.
//!
//! Secrets arrive sealed to the lattice's secrets key (an xkey; see
//! `trellis_claims::secrets` for the scheme). The host checks on
//! `link.put` that each opens, stores the link as it came, and opens the
//! values only to seal them again to a provider process's own xkey when it
//! sends that process the link. Plaintext is never published, stored or
//! logged.

use trellis_claims::keys::KeyPair;
use trellis_claims::secrets::{XKey, derive_lattice_key, open, parse_xkey_seed, seal};
use trellis_protocol::{LinkDefinition, SealedSecret};

use crate::config::HostConfig;
use crate::error::{Error, ErrorKind, Result};

/// The lattice's secrets key as this host holds it.
pub(crate) struct LatticeSecrets {
    key: XKey,
}

impl LatticeSecrets {
    /// The key of [`HostConfig::secrets_seed`], or else the one derived
    /// from the cluster key.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a seed that is not an xkey seed.
    pub(crate) fn new(config: &HostConfig, cluster: &KeyPair) -> Result<Self> {
        let key = match &config.secrets_seed {
            Some(seed) => parse_xkey_seed(seed)
                .map_err(|e| Error::new(ErrorKind::Config, format!("secrets seed: {e}")))?,
            None => derive_lattice_key(cluster)
                .map_err(|e| Error::new(ErrorKind::Config, format!("secrets key: {e}")))?,
        };
        Ok(Self { key })
    }

    /// The public half (`X…`), published in `host.ping` replies.
    pub(crate) fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// Checks that every secret of `link` opens with the lattice key, so
    /// that a link that no host could use is refused when it is put.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadRequest`] naming the first secret that does not
    /// open, with the claims error (kind `CannotOpen`, `InvalidKey` or
    /// `Malformed`) as its source.
    pub(crate) fn check(&self, link: &LinkDefinition) -> Result<()> {
        for (name, secret) in &link.secrets {
            self.open_one(name, secret)?;
        }
        Ok(())
    }

    /// `link` as its provider process may see it: each secret opened and
    /// sealed again, by the lattice key, to `recipient` (the process's
    /// public xkey, `X…`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadRequest`] if a secret does not open with the
    /// lattice key (it was sealed to another lattice's key);
    /// [`ErrorKind::Config`] if `recipient` is not an xkey.
    pub(crate) fn seal_for(
        &self,
        link: &LinkDefinition,
        recipient: &str,
    ) -> Result<LinkDefinition> {
        let mut sealed = link.clone();
        for (name, secret) in &link.secrets {
            let value = self.open_one(name, secret)?;
            let again = seal(&value, &self.key, recipient)
                .map_err(|e| Error::with_source(ErrorKind::Config, e))?;
            sealed.secrets.insert(
                name.clone(),
                SealedSecret {
                    sender: self.key.public_key(),
                    sealed: again,
                },
            );
        }
        Ok(sealed)
    }

    fn open_one(&self, name: &str, secret: &SealedSecret) -> Result<Vec<u8>> {
        open(&secret.sealed, &secret.sender, &self.key).map_err(|e| {
            Error::with_source(
                ErrorKind::BadRequest,
                SecretError {
                    name: name.to_owned(),
                    source: e,
                },
            )
        })
    }
}

/// A named secret that does not open.
#[derive(Debug, thiserror::Error)]
#[error("secret `{name}` is not sealed to this lattice's secrets key: {source}")]
struct SecretError {
    name: String,
    #[source]
    source: trellis_claims::Error,
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_claims::keys::{KeyKind, generate};
    use trellis_claims::secrets::{MAX_SEALED_BYTES, generate_xkey};
    use trellis_protocol::ContractId;

    fn secrets() -> LatticeSecrets {
        LatticeSecrets::new(&HostConfig::default(), &generate(KeyKind::Cluster)).unwrap()
    }

    fn link_with(secret: SealedSecret) -> LinkDefinition {
        LinkDefinition::new(
            "MACTOR",
            ContractId::new("trellis:sqldb").unwrap(),
            "default",
            "VPROVIDER",
        )
        .with_secret("url", secret)
    }

    #[test]
    fn the_wire_limit_is_what_the_largest_secret_seals_to() {
        assert_eq!(
            MAX_SEALED_BYTES,
            trellis_protocol::link::MAX_SEALED_SECRET_BYTES
        );
    }

    #[test]
    fn a_secret_is_sealed_again_for_the_provider_process_only() {
        let lattice = secrets();
        let client = generate_xkey();
        let link = link_with(SealedSecret {
            sender: client.public_key(),
            sealed: seal(b"postgres://u:pw@db/x", &client, &lattice.public_key()).unwrap(),
        });
        lattice.check(&link).unwrap();
        let process = generate_xkey();
        let for_process = lattice.seal_for(&link, &process.public_key()).unwrap();
        let secret = &for_process.secrets["url"];
        assert_eq!(secret.sender, lattice.public_key());
        assert_eq!(
            open(&secret.sealed, &secret.sender, &process).unwrap(),
            b"postgres://u:pw@db/x"
        );
        // Another process cannot open it.
        let other = generate_xkey();
        assert!(open(&secret.sealed, &secret.sender, &other).is_err());
    }

    #[test]
    fn a_secret_sealed_to_another_lattice_is_a_bad_request() {
        let lattice = secrets();
        let client = generate_xkey();
        let elsewhere = generate_xkey();
        let link = link_with(SealedSecret {
            sender: client.public_key(),
            sealed: seal(b"value", &client, &elsewhere.public_key()).unwrap(),
        });
        let err = lattice.check(&link).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<SecretError>())
            .unwrap();
        assert_eq!(source.source.kind(), trellis_claims::ErrorKind::CannotOpen);
    }
}
