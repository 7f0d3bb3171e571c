//! Sealed secrets: link values encrypted to one recipient with curve25519
//! "xkeys" (the nkeys flavour of NaCl `crypto_box`: X25519 key agreement,
//! XSalsa20-Poly1305, a random 24-byte nonce, framed as `xkv1` + nonce +
//! ciphertext; see the `nkeys` crate and NATS' xkeys in `nats-io/nkeys`).
//!
//! A secret travels the lattice only in sealed form:
//!
//! 1. A client (the CLI) seals the value to the lattice's **secrets key**
//!    with a throw-away sender key. The secrets key is an xkey every host
//!    of the lattice holds; by default each host derives it from its
//!    cluster seed with [`derive_lattice_key`], so hosts that share a
//!    cluster seed share it, and its public half is in every `host.ping`
//!    reply.
//! 2. The host stores the link with the sealed value in the lattice bucket.
//! 3. When it sends the link to a provider it supervises, the host opens
//!    the value and seals it again to that provider process's own xkey,
//!    which it made for the process and handed over on stdin.
//! 4. The provider opens it just before binding the link.
//!
//! Sealed values are Base64 (standard alphabet, padded) text, so that they
//! fit JSON.
//!
//! # Examples
//!
//! ```
//! use trellis_claims::secrets::{generate_xkey, open, seal};
//! use trellis_claims::ErrorKind;
//!
//! let client = generate_xkey();
//! let lattice = generate_xkey();
//! let sealed = seal(b"postgres://app:pw@db/app", &client, &lattice.public_key()).unwrap();
//! assert!(!sealed.contains("pw@db"));
//! let opened = open(&sealed, &client.public_key(), &lattice).unwrap();
//! assert_eq!(opened, b"postgres://app:pw@db/app");
//!
//! // Anyone else's key does not open it.
//! let other = generate_xkey();
//! assert_eq!(open(&sealed, &client.public_key(), &other).unwrap_err().kind(), ErrorKind::CannotOpen);
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use sha2::Sha256;

pub use nkeys::XKey;

use crate::keys::{KeyKind, KeyPair};
use crate::{Error, ErrorKind, Result};

/// Most bytes a secret's plaintext may have: 16 KiB. Larger values are
/// refused when sealing and when opening.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// Most bytes of a sealed value's Base64 text: what a [`MAX_SECRET_BYTES`]
/// plaintext seals to (`xkv1`, a 24-byte nonce and a 16-byte tag added).
pub const MAX_SEALED_BYTES: usize = (MAX_SECRET_BYTES + 4 + 24 + 16).div_ceil(3) * 4;

/// HKDF salt of [`derive_lattice_key`].
const LATTICE_KEY_SALT: &[u8] = b"trellis lattice secrets";
/// HKDF info of [`derive_lattice_key`]: the version of the derivation.
const LATTICE_KEY_INFO: &[u8] = b"xkey v1";

/// A new random xkey (curve25519 key pair, seed `SX…`, public key `X…`).
pub fn generate_xkey() -> XKey {
    XKey::new()
}

/// Derives the lattice's secrets key from a cluster key: HKDF-SHA256
/// (RFC 5869) over the cluster seed's text, with a fixed salt and info.
/// Hosts sharing a cluster seed derive the same key; the cluster seed
/// cannot be recovered from it.
///
/// # Errors
///
/// [`ErrorKind::WrongKeyKind`] unless `cluster` is a cluster key (`SC…`)
/// with its seed; [`ErrorKind::InvalidKey`] if the seed cannot be read.
pub fn derive_lattice_key(cluster: &KeyPair) -> Result<XKey> {
    if crate::keys::public_key_kind(&cluster.public_key())? != KeyKind::Cluster {
        return Err(Error::new(
            ErrorKind::WrongKeyKind,
            "the lattice secrets key derives from a cluster key (SC…)",
        ));
    }
    let seed = cluster
        .seed()
        .map_err(|e| Error::new(ErrorKind::InvalidKey, e.to_string()))?;
    let mut raw = [0u8; 32];
    Hkdf::<Sha256>::new(Some(LATTICE_KEY_SALT), seed.as_bytes())
        .expand(LATTICE_KEY_INFO, &mut raw)
        .map_err(|e| Error::new(ErrorKind::InvalidKey, e.to_string()))?;
    Ok(XKey::new_from_raw(raw))
}

/// Reads an xkey seed (`SX…`).
///
/// # Errors
///
/// [`ErrorKind::InvalidKey`] if `seed` is not an xkey seed.
pub fn parse_xkey_seed(seed: &str) -> Result<XKey> {
    XKey::from_seed(seed.trim()).map_err(|e| Error::new(ErrorKind::InvalidKey, e.to_string()))
}

/// Reads an xkey public key (`X…`).
///
/// # Errors
///
/// [`ErrorKind::InvalidKey`] if `public_key` is not an xkey public key.
pub fn parse_xkey_public(public_key: &str) -> Result<XKey> {
    XKey::from_public_key(public_key).map_err(|e| Error::new(ErrorKind::InvalidKey, e.to_string()))
}

/// Seals `value` from `sender` to the holder of `recipient_public` (`X…`);
/// returns the Base64 text of the sealed box. Each call uses a fresh
/// random nonce, so sealing one value twice gives different texts.
///
/// # Errors
///
/// [`ErrorKind::InvalidKey`] if `recipient_public` is not an xkey public
/// key or `sender` has no private half; [`ErrorKind::Malformed`] if
/// `value` is over [`MAX_SECRET_BYTES`].
pub fn seal(value: &[u8], sender: &XKey, recipient_public: &str) -> Result<String> {
    if value.len() > MAX_SECRET_BYTES {
        return Err(Error::new(
            ErrorKind::Malformed,
            format!(
                "a secret of {} bytes is over the limit of {MAX_SECRET_BYTES}",
                value.len()
            ),
        ));
    }
    let recipient = parse_xkey_public(recipient_public)?;
    let sealed = sender
        .seal(value, &recipient)
        .map_err(|e| Error::new(ErrorKind::InvalidKey, e.to_string()))?;
    Ok(STANDARD.encode(sealed))
}

/// Opens a sealed value (Base64 text from [`seal`]) sent by
/// `sender_public` (`X…`) to `recipient`.
///
/// # Errors
///
/// [`ErrorKind::InvalidKey`] if `sender_public` is not an xkey public key;
/// [`ErrorKind::Malformed`] if `sealed` is not Base64 or is over
/// [`MAX_SEALED_BYTES`]; [`ErrorKind::CannotOpen`] if it was sealed to
/// another key or by another sender, or altered.
pub fn open(sealed: &str, sender_public: &str, recipient: &XKey) -> Result<Vec<u8>> {
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(Error::new(
            ErrorKind::Malformed,
            format!(
                "a sealed secret of {} bytes is over the limit",
                sealed.len()
            ),
        ));
    }
    let sender = parse_xkey_public(sender_public)?;
    let bytes = STANDARD
        .decode(sealed)
        .map_err(|e| Error::new(ErrorKind::Malformed, format!("sealed secret: {e}")))?;
    recipient
        .open(&bytes, &sender)
        .map_err(|e| Error::new(ErrorKind::CannotOpen, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;

    #[test]
    fn hosts_sharing_a_cluster_seed_derive_one_secrets_key() {
        let cluster = generate(KeyKind::Cluster);
        let again = crate::keys::parse_seed(&cluster.seed().unwrap(), KeyKind::Cluster).unwrap();
        let a = derive_lattice_key(&cluster).unwrap();
        let b = derive_lattice_key(&again).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(a.public_key().starts_with('X'));
        let other = derive_lattice_key(&generate(KeyKind::Cluster)).unwrap();
        assert_ne!(a.public_key(), other.public_key());
    }

    #[test]
    fn a_host_key_does_not_derive_a_secrets_key() {
        let err = derive_lattice_key(&generate(KeyKind::Host)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKeyKind);
    }

    #[test]
    fn an_altered_sealed_value_does_not_open() {
        let sender = generate_xkey();
        let recipient = generate_xkey();
        let sealed = seal(b"secret", &sender, &recipient.public_key()).unwrap();
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = STANDARD.encode(bytes);
        let err = open(&altered, &sender.public_key(), &recipient).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CannotOpen);
        // The right sender matters too.
        let err = open(&sealed, &generate_xkey().public_key(), &recipient).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CannotOpen);
    }

    #[test]
    fn oversized_and_malformed_values_are_refused() {
        let sender = generate_xkey();
        let recipient = generate_xkey();
        let big = vec![0u8; MAX_SECRET_BYTES + 1];
        assert_eq!(
            seal(&big, &sender, &recipient.public_key())
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
        let largest = seal(
            &vec![0u8; MAX_SECRET_BYTES],
            &sender,
            &recipient.public_key(),
        )
        .unwrap();
        assert!(largest.len() <= MAX_SEALED_BYTES);
        assert_eq!(
            open("not base64!", &sender.public_key(), &recipient)
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
        assert_eq!(
            open("AAAA", "XNOTAKEY", &recipient).unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
    }
}
