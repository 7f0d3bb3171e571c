//! nkeys key pairs and their kinds.
//!
//! Keys are Ed25519 key pairs in the NATS nkeys encoding
//! (<https://docs.nats.io/running-a-nats-service/configuration/securing_nats/auth_intro/nkey_auth>):
//! a public key is 56 base32 characters whose first letter gives its kind, and
//! a seed (the private half) starts with `S` followed by that letter.

use std::fmt;
use std::str::FromStr;

pub use nkeys::KeyPair;
use nkeys::KeyPairType;

use crate::error::{Error, ErrorKind, Result};

/// The kinds of key Trellis uses, each with its nkeys prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An issuer (account) that signs actor and provider claims: `A…`.
    Account,
    /// An actor's identity: `M…` (nkeys "module").
    Actor,
    /// A capability provider's identity: `V…` (nkeys "service").
    Provider,
    /// A host's identity: `N…` (nkeys "server").
    Host,
    /// A cluster issuer that vouches for hosts in a lattice: `C…`.
    Cluster,
    /// An operator: the control issuer that vouches for control clients
    /// (`--ctl-issuer`): `O…`.
    Operator,
    /// A control client (the CLI, wadm, a dashboard): `U…` (nkeys "user").
    User,
}

impl KeyKind {
    /// Every kind, in declaration order.
    pub const ALL: [KeyKind; 7] = [
        KeyKind::Account,
        KeyKind::Actor,
        KeyKind::Provider,
        KeyKind::Host,
        KeyKind::Cluster,
        KeyKind::Operator,
        KeyKind::User,
    ];

    /// The first character of a public key of this kind.
    pub fn prefix(self) -> char {
        match self {
            KeyKind::Account => 'A',
            KeyKind::Actor => 'M',
            KeyKind::Provider => 'V',
            KeyKind::Host => 'N',
            KeyKind::Cluster => 'C',
            KeyKind::Operator => 'O',
            KeyKind::User => 'U',
        }
    }

    /// The lowercase name used on the command line and in key file names.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Account => "account",
            KeyKind::Actor => "actor",
            KeyKind::Provider => "provider",
            KeyKind::Host => "host",
            KeyKind::Cluster => "cluster",
            KeyKind::Operator => "operator",
            KeyKind::User => "user",
        }
    }

    fn nkeys_type(self) -> KeyPairType {
        match self {
            KeyKind::Account => KeyPairType::Account,
            KeyKind::Actor => KeyPairType::Module,
            KeyKind::Provider => KeyPairType::Service,
            KeyKind::Host => KeyPairType::Server,
            KeyKind::Cluster => KeyPairType::Cluster,
            KeyKind::Operator => KeyPairType::Operator,
            KeyKind::User => KeyPairType::User,
        }
    }

    fn from_nkeys_type(t: &KeyPairType) -> Option<Self> {
        match t {
            KeyPairType::Account => Some(KeyKind::Account),
            KeyPairType::Module => Some(KeyKind::Actor),
            KeyPairType::Service => Some(KeyKind::Provider),
            KeyPairType::Server => Some(KeyKind::Host),
            KeyPairType::Cluster => Some(KeyKind::Cluster),
            KeyPairType::Operator => Some(KeyKind::Operator),
            KeyPairType::User => Some(KeyKind::User),
            _ => None,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KeyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::new(ErrorKind::InvalidKey, format!("unknown key kind {s:?}")))
    }
}

/// Generates a new random key pair of `kind`.
///
/// # Examples
///
/// ```
/// use trellis_claims::keys::{generate, KeyKind};
///
/// let account = generate(KeyKind::Account);
/// assert!(account.public_key().starts_with('A'));
/// assert!(account.seed().unwrap().starts_with("SA"));
/// ```
pub fn generate(kind: KeyKind) -> KeyPair {
    KeyPair::new(kind.nkeys_type())
}

/// The kind of a public key.
///
/// # Errors
///
/// [`ErrorKind::InvalidKey`] if `public_key` is not a valid nkey public key,
/// [`ErrorKind::WrongKeyKind`] if it is a valid nkey of a kind Trellis does
/// not use (curve).
pub fn public_key_kind(public_key: &str) -> Result<KeyKind> {
    let pair = KeyPair::from_public_key(public_key).map_err(|e| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("{public_key:?} is not an nkey public key: {e}"),
        )
    })?;
    KeyKind::from_nkeys_type(&pair.key_pair_type()).ok_or_else(|| {
        Error::new(
            ErrorKind::WrongKeyKind,
            format!("{public_key} is not a Trellis key kind"),
        )
    })
}

/// Checks that `public_key` is a valid public key of `expected` kind.
///
/// # Errors
///
/// [`ErrorKind::InvalidKey`] or [`ErrorKind::WrongKeyKind`].
///
/// # Examples
///
/// ```
/// use trellis_claims::{keys::{expect_public_key, generate, KeyKind}, ErrorKind};
///
/// let actor = generate(KeyKind::Actor).public_key();
/// assert!(expect_public_key(&actor, KeyKind::Actor).is_ok());
/// assert_eq!(expect_public_key(&actor, KeyKind::Account).unwrap_err().kind(), ErrorKind::WrongKeyKind);
/// ```
pub fn expect_public_key(public_key: &str, expected: KeyKind) -> Result<()> {
    let kind = public_key_kind(public_key)?;
    if kind != expected {
        return Err(Error::new(
            ErrorKind::WrongKeyKind,
            format!(
                "{public_key} is a {kind} key; a{} {expected} key is required",
                article(expected)
            ),
        ));
    }
    Ok(())
}

/// Parses a seed and checks that it is of `expected` kind.
///
/// # Errors
///
/// [`ErrorKind::InvalidKey`] if `seed` is not an nkey seed,
/// [`ErrorKind::WrongKeyKind`] if it is of another kind.
pub fn parse_seed(seed: &str, expected: KeyKind) -> Result<KeyPair> {
    let pair = KeyPair::from_seed(seed.trim())
        .map_err(|e| Error::new(ErrorKind::InvalidKey, format!("not an nkey seed: {e}")))?;
    let found = KeyKind::from_nkeys_type(&pair.key_pair_type());
    if found != Some(expected) {
        let found = found.map_or("non-Trellis", KeyKind::as_str);
        return Err(Error::new(
            ErrorKind::WrongKeyKind,
            format!(
                "the seed is a {found} key; a{} {expected} key is required",
                article(expected)
            ),
        ));
    }
    Ok(pair)
}

fn article(kind: KeyKind) -> &'static str {
    if matches!(kind, KeyKind::Account | KeyKind::Actor | KeyKind::Operator) {
        "n"
    } else {
        ""
    }
}

/// The raw 32-byte Ed25519 public key inside an nkey public key.
pub(crate) fn raw_public_key(public_key: &str) -> Result<[u8; 32]> {
    nkeys::from_public_key(public_key)
        .map(|(_, raw)| raw)
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidKey,
                format!("{public_key:?} is not an nkey public key: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_standard_prefix() {
        for kind in KeyKind::ALL {
            let pair = generate(kind);
            let public = pair.public_key();
            assert!(public.starts_with(kind.prefix()), "{kind}: {public}");
            assert_eq!(public.len(), 56);
            assert_eq!(public_key_kind(&public).unwrap(), kind);
            let seed = pair.seed().unwrap();
            assert_eq!(seed.chars().nth(1), Some(kind.prefix()));
            assert_eq!(parse_seed(&seed, kind).unwrap().public_key(), public);
            assert_eq!(kind.as_str().parse::<KeyKind>().unwrap(), kind);
        }
    }

    #[test]
    fn a_seed_of_another_kind_is_the_wrong_key_kind() {
        let seed = generate(KeyKind::Actor).seed().unwrap();
        assert_eq!(
            parse_seed(&seed, KeyKind::Account).unwrap_err().kind(),
            ErrorKind::WrongKeyKind
        );
        let operator = generate(KeyKind::Operator).seed().unwrap();
        assert_eq!(
            parse_seed(&operator, KeyKind::User).unwrap_err().kind(),
            ErrorKind::WrongKeyKind
        );
    }

    #[test]
    fn garbage_is_an_invalid_key() {
        assert_eq!(
            parse_seed("SAnotaseed", KeyKind::Account)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidKey
        );
        assert_eq!(
            public_key_kind("Aabc").unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
    }
}
