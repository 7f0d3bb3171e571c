//! Link definitions and contract ids.
//!
//! A link definition binds an actor's use of a contract, under a link name,
//! to one capability provider, with configuration for that binding. Hosts
//! keep them in the lattice's JetStream key-value bucket under the key that
//! [`LinkDefinition::bucket_key`] builds.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, DecodeLimits, EncodeError, decode_json, encode_json};
use crate::subject::{SubjectError, TokenKind, validate_token};

/// Link name used when none is given.
pub const DEFAULT_LINK_NAME: &str = "default";

/// Longest contract id accepted, in bytes.
pub const MAX_CONTRACT_ID_BYTES: usize = 128;

/// A contract id is not of the form `namespace:package`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "contract id {0:?} is not of the form `namespace:package` (lowercase letters, digits and '-')"
)]
pub struct InvalidContractId(pub String);

/// A validated contract id, `namespace:package` in WIT package syntax without
/// a version, e.g. `wasi:keyvalue` or `trellis:sqldb`.
///
/// # Examples
///
/// ```
/// use trellis_protocol::ContractId;
///
/// let id = ContractId::new("wasi:keyvalue").unwrap();
/// assert_eq!((id.namespace(), id.package()), ("wasi", "keyvalue"));
/// assert!(ContractId::new("wasi:keyvalue@0.2.0").is_err());
/// assert!(ContractId::new("Redis").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContractId(String);

impl ContractId {
    /// Validates `id` as a contract id.
    ///
    /// # Errors
    ///
    /// [`InvalidContractId`] unless `id` is two non-empty parts of lowercase
    /// ASCII letters, digits and `-` joined by one `:`, at most 128 bytes.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidContractId> {
        let id = id.into();
        let part_ok = |p: &str| {
            !p.is_empty()
                && !p.starts_with('-')
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        let valid = id.len() <= MAX_CONTRACT_ID_BYTES
            && matches!(id.split_once(':'), Some((ns, pkg)) if part_ok(ns) && part_ok(pkg));
        if valid {
            Ok(Self(id))
        } else {
            Err(InvalidContractId(id))
        }
    }

    /// The part before `:`.
    pub fn namespace(&self) -> &str {
        self.0.split_once(':').map_or("", |(ns, _)| ns)
    }

    /// The part after `:`.
    pub fn package(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, pkg)| pkg)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContractId {
    type Error = InvalidContractId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ContractId> for String {
    fn from(value: ContractId) -> Self {
        value.0
    }
}

impl fmt::Display for ContractId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link definition is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidLink {
    /// An id or the link name is not a valid subject token.
    #[error(transparent)]
    Token(#[from] SubjectError),
    /// The contract id is malformed.
    #[error(transparent)]
    Contract(#[from] InvalidContractId),
    /// A key is both a plain configuration entry and a secret.
    #[error("`{0}` is both a configuration entry and a secret")]
    SecretClash(String),
    /// A sealed secret is empty or over [`MAX_SEALED_SECRET_BYTES`].
    #[error("secret `{0}` is empty or over {MAX_SEALED_SECRET_BYTES} bytes sealed")]
    SecretSize(String),
}

/// Most bytes of one sealed secret's text accepted in a link: 21,904, what
/// a 16 KiB value seals to.
pub const MAX_SEALED_SECRET_BYTES: usize = 21_904;

/// A link value sealed to one recipient with curve25519 xkeys, so that
/// only that recipient can read it: the lattice's secrets key in the
/// control interface and the bucket, one provider process's key in the
/// messages its host sends it (`docs/protocol.md` §2.8, `docs/security.md`).
///
/// Sealing and opening are in `trellis_claims::secrets`; this is the wire
/// shape only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Public xkey (`X…`) of the sender; the recipient needs it to open
    /// the value.
    pub sender: String,
    /// The sealed box (`xkv1` + 24-byte nonce + ciphertext), Base64 with
    /// the standard alphabet and padding.
    pub sealed: String,
}

/// Binds (actor, contract, link name) to a capability provider.
///
/// Serialised as JSON in the control interface, in the lattice bucket and in
/// the link put/delete messages sent to providers.
///
/// # Examples
///
/// ```
/// use trellis_protocol::{ContractId, LinkDefinition};
///
/// let link = LinkDefinition::new("MACTOR", ContractId::new("wasi:keyvalue").unwrap(), "default", "VREDIS")
///     .with_config("prefix", "app1:");
/// assert_eq!(link.bucket_key(), "link.MACTOR.wasi.keyvalue.default");
/// link.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDefinition {
    /// Public key (`M…`) of the actor that uses the capability.
    pub actor_id: String,
    /// The contract the link serves.
    pub contract_id: ContractId,
    /// The link name; [`DEFAULT_LINK_NAME`] unless an actor uses several
    /// providers of one contract.
    pub link_name: String,
    /// Public key (`V…`) of the provider that serves the link.
    pub provider_id: String,
    /// Configuration for this binding, read by the provider (e.g. a Redis
    /// URL) and by the actor through `wasi:config/store`. Empty by default.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Configuration for the provider only, sealed ([`SealedSecret`]): a
    /// provider sees these entries among its configuration once opened;
    /// the actor never does. Keys must differ from those of `config`.
    /// Empty by default, and then left out of the JSON.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SealedSecret>,
}

impl LinkDefinition {
    /// A link with empty configuration.
    pub fn new(
        actor_id: impl Into<String>,
        contract_id: ContractId,
        link_name: impl Into<String>,
        provider_id: impl Into<String>,
    ) -> Self {
        Self {
            actor_id: actor_id.into(),
            contract_id,
            link_name: link_name.into(),
            provider_id: provider_id.into(),
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }

    /// Adds one configuration entry.
    #[must_use]
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Adds one sealed secret.
    #[must_use]
    pub fn with_secret(mut self, key: impl Into<String>, secret: SealedSecret) -> Self {
        self.secrets.insert(key.into(), secret);
        self
    }

    /// Checks that ids and the link name are valid subject tokens, that no
    /// key is both configuration and secret, and that each sealed secret
    /// has a size that a secret can have.
    ///
    /// # Errors
    ///
    /// [`InvalidLink`] naming the first invalid field.
    pub fn validate(&self) -> Result<(), InvalidLink> {
        validate_token(TokenKind::Id, &self.actor_id)?;
        validate_token(TokenKind::LinkName, &self.link_name)?;
        validate_token(TokenKind::Id, &self.provider_id)?;
        for (key, secret) in &self.secrets {
            if self.config.contains_key(key) {
                return Err(InvalidLink::SecretClash(key.clone()));
            }
            if secret.sealed.is_empty() || secret.sealed.len() > MAX_SEALED_SECRET_BYTES {
                return Err(InvalidLink::SecretSize(key.clone()));
            }
        }
        Ok(())
    }

    /// Key of this link in the lattice's key-value bucket:
    /// `link.{actor_id}.{namespace}.{package}.{link_name}`. Unique per
    /// (actor, contract, link name), which is what a link is keyed by.
    pub fn bucket_key(&self) -> String {
        link_bucket_key(&self.actor_id, &self.contract_id, &self.link_name)
    }

    /// Encodes the link as JSON.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_json(self)
    }

    /// Decodes and validates a link received from the network.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`]; an invalid id or link name is reported as
    /// [`DecodeError::Shape`].
    pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let link: Self = decode_json(bytes, limits)?;
        link.validate()
            .map_err(|e| DecodeError::Shape(e.to_string()))?;
        Ok(link)
    }
}

/// Key of the link for (actor, contract, link name) in the lattice bucket.
/// See [`LinkDefinition::bucket_key`].
pub fn link_bucket_key(actor_id: &str, contract_id: &ContractId, link_name: &str) -> String {
    format!(
        "link.{actor_id}.{}.{}.{link_name}",
        contract_id.namespace(),
        contract_id.package()
    )
}
