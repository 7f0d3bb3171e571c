//! Invocation tokens: how every RPC message proves who sent it, that it
//! was not changed and that it is not a replay.
//!
//! Two JWTs (EdDSA, see [`crate::jwt`]) are involved:
//!
//! 1. A **credential**, issued by a *cluster issuer* (`C…`) of the lattice
//!    to one member key: a host (`N…`) or a provider (`V…`). A host that
//!    holds a cluster seed issues its own credential and those of the
//!    providers it starts, so providers never see the cluster seed.
//! 2. An **invocation token**, signed by the sender's own key, carrying the
//!    invocation id (`jti`), a short expiry, the target, the operation, the
//!    SHA-256 of the payload and the sender's credential.
//!
//! A receiver ([`InvocationVerifier`]) checks the credential against the
//! lattice's cluster issuers (caching good credentials until they expire),
//! the token's signature against the key the credential names, the expiry,
//! the payload hash and target, and that the id was not seen before within
//! the expiry window.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::jwt::{self, Claims, VerifyOptions, now_secs};
use crate::keys::{KeyKind, KeyPair, public_key_kind};
use crate::wasm::sha256_hex;

/// How long an invocation token is valid, when not configured. Defaults to
/// 30 s: long enough for clock skew and queueing, short enough to bound the
/// replay cache.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30);

/// How long a credential is valid, when not configured. Defaults to 24 h;
/// hosts renew theirs long before.
pub const DEFAULT_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// Most invocation ids remembered for replay detection. Defaults to
/// 1,000,000 (about 100 MB at worst). Expired ids are forgotten first; when
/// the cache is full of unexpired ids, the oldest are forgotten early, so
/// size it above the peak number of invocations per token lifetime.
pub const DEFAULT_REPLAY_CACHE_CAPACITY: usize = 1_000_000;

/// Most credentials cached as verified. Defaults to 4,096.
pub const DEFAULT_CREDENTIAL_CACHE_CAPACITY: usize = 4_096;

/// Metadata of a credential: which member kind it vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialMetadata {
    /// The lattice the credential is valid in.
    pub lattice: String,
}

/// Metadata of an invocation token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationMetadata {
    /// Id of the member on whose behalf the call is made: the calling actor
    /// (`M…`) for a host's capability call, or the sender itself.
    pub origin: String,
    /// Id of the target (`M…`, `V…` or `N…`).
    pub target: String,
    /// The operation invoked.
    pub operation: String,
    /// Lowercase hex SHA-256 of the payload.
    pub payload_hash: String,
    /// The sender's credential, a JWT issued by a cluster issuer.
    pub credential: String,
}

/// Issues a credential for `member` (a host or provider public key) in
/// `lattice`, signed by `cluster` (a cluster key), valid for `ttl`.
///
/// # Errors
///
/// [`ErrorKind::WrongKeyKind`] if `cluster` is not a cluster key or
/// `member` is neither a host nor a provider key.
pub fn issue_credential(
    cluster: &KeyPair,
    member: &str,
    lattice: &str,
    ttl: Duration,
) -> Result<String> {
    let kind = public_key_kind(member)?;
    if !matches!(kind, KeyKind::Host | KeyKind::Provider) {
        return Err(Error::new(
            ErrorKind::WrongKeyKind,
            format!("credentials are for host or provider keys, not {kind} keys"),
        ));
    }
    let mut claims = Claims::new(
        member,
        CredentialMetadata {
            lattice: lattice.to_owned(),
        },
    );
    claims.exp = Some(now_secs() + ttl.as_secs().max(1));
    jwt::sign(&mut claims, cluster, KeyKind::Cluster)
}

/// Signs invocations on behalf of one host or provider.
#[derive(Debug)]
pub struct InvocationSigner {
    key: KeyPair,
    /// The key's public key, encoded once: it is every token's `iss`.
    public_key: String,
    credential: std::sync::RwLock<String>,
    ttl: Duration,
}

impl InvocationSigner {
    /// A signer for `key` (a host or provider key pair) presenting
    /// `credential`, issuing tokens valid for `ttl`
    /// ([`DEFAULT_TOKEN_TTL`] is a good choice).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WrongKeyKind`] if `key` is neither a host nor a
    /// provider key.
    pub fn new(key: KeyPair, credential: String, ttl: Duration) -> Result<Self> {
        let kind = public_key_kind(&key.public_key())?;
        if !matches!(kind, KeyKind::Host | KeyKind::Provider) {
            return Err(Error::new(
                ErrorKind::WrongKeyKind,
                "invocations are signed by host or provider keys",
            ));
        }
        Ok(Self {
            public_key: key.public_key(),
            key,
            credential: std::sync::RwLock::new(credential),
            ttl,
        })
    }

    /// Replaces the credential, e.g. with a renewed one before the old
    /// one expires.
    pub fn set_credential(&self, credential: String) {
        if let Ok(mut c) = self.credential.write() {
            *c = credential;
        }
    }

    /// The signer's public key.
    pub fn public_key(&self) -> String {
        self.public_key.clone()
    }

    /// A token for invocation `id` of `operation` on `target` with
    /// `payload`, made on behalf of `origin`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Malformed`] if signing fails, which it does not for
    /// valid keys.
    pub fn sign(
        &self,
        id: &str,
        origin: &str,
        target: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<String> {
        let now = now_secs();
        let claims = Claims {
            jti: id.to_owned(),
            iat: now,
            iss: self.public_key.clone(),
            sub: target.to_owned(),
            nbf: None,
            exp: Some(now + self.ttl.as_secs().max(1)),
            trellis: InvocationMetadata {
                origin: origin.to_owned(),
                target: target.to_owned(),
                operation: operation.to_owned(),
                payload_hash: sha256_hex(payload),
                credential: self
                    .credential
                    .read()
                    .map(|c| c.clone())
                    .unwrap_or_default(),
            },
        };
        jwt::sign_checked(&claims, &self.key)
    }
}

/// Who sent a verified invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSender {
    /// The sender's public key (`N…` or `V…`).
    pub sender: String,
    /// The cluster issuer that vouched for it.
    pub cluster_issuer: String,
}

/// Settings of an [`InvocationVerifier`]. Defaults in [`Default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierSettings {
    /// Clock skew tolerated, in seconds. Defaults to
    /// [`jwt::DEFAULT_CLOCK_SKEW_SECS`].
    pub clock_skew_secs: u64,
    /// Most ids remembered. Defaults to [`DEFAULT_REPLAY_CACHE_CAPACITY`].
    pub replay_cache_capacity: usize,
    /// Most credentials cached. Defaults to [`DEFAULT_CREDENTIAL_CACHE_CAPACITY`].
    pub credential_cache_capacity: usize,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            clock_skew_secs: jwt::DEFAULT_CLOCK_SKEW_SECS,
            replay_cache_capacity: DEFAULT_REPLAY_CACHE_CAPACITY,
            credential_cache_capacity: DEFAULT_CREDENTIAL_CACHE_CAPACITY,
        }
    }
}

/// Verifies invocation tokens and refuses replays. Shared by all the
/// subscriptions of a host or provider (it is `Sync`).
#[derive(Debug)]
pub struct InvocationVerifier {
    lattice: String,
    cluster_issuers: HashSet<String>,
    settings: VerifierSettings,
    seen: Mutex<SeenIds>,
    credentials: Mutex<HashMap<String, (VerifiedSender, u64)>>,
}

#[derive(Debug, Default)]
struct SeenIds {
    /// Id → expiry (seconds since the epoch).
    ids: HashMap<String, u64>,
    /// Ids in insertion order, for eviction.
    order: VecDeque<(String, u64)>,
}

impl SeenIds {
    /// Records `id`; false if it was already recorded and not yet expired.
    fn insert(&mut self, id: &str, exp: u64, now: u64, capacity: usize) -> bool {
        while let Some((old, old_exp)) = self.order.front() {
            if *old_exp < now || self.order.len() >= capacity {
                if self.ids.get(old) == Some(old_exp) {
                    self.ids.remove(old);
                }
                self.order.pop_front();
            } else {
                break;
            }
        }
        if let Some(existing) = self.ids.get(id)
            && *existing >= now
        {
            return false;
        }
        self.ids.insert(id.to_owned(), exp);
        self.order.push_back((id.to_owned(), exp));
        true
    }
}

impl InvocationVerifier {
    /// A verifier for `lattice` that accepts senders vouched for by any of
    /// `cluster_issuers` (cluster public keys).
    pub fn new(
        lattice: impl Into<String>,
        cluster_issuers: impl IntoIterator<Item = String>,
        settings: VerifierSettings,
    ) -> Self {
        Self {
            lattice: lattice.into(),
            cluster_issuers: cluster_issuers.into_iter().collect(),
            settings,
            seen: Mutex::new(SeenIds::default()),
            credentials: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies the token of invocation `id` for `target` with `payload`
    /// and records the id.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::UntrustedIssuer`]: the credential was not issued by a
    ///   cluster issuer of this lattice, or is for another lattice;
    /// - [`ErrorKind::BadSignature`]: the token was not signed by the key
    ///   the credential names, or either signature is wrong;
    /// - [`ErrorKind::Expired`] / [`ErrorKind::NotYetValid`];
    /// - [`ErrorKind::HashMismatch`]: the payload, id or target differ from
    ///   what was signed;
    /// - [`ErrorKind::Replayed`]: the id was seen before;
    /// - [`ErrorKind::WrongKeyKind`], [`ErrorKind::WrongAlgorithm`],
    ///   [`ErrorKind::MissingClaims`], [`ErrorKind::Malformed`].
    pub fn verify(
        &self,
        token: &str,
        id: &str,
        target: &str,
        payload: &[u8],
    ) -> Result<VerifiedSender> {
        self.check(token, id, target, None, payload)
    }

    /// As [`InvocationVerifier::verify`], and also checks that the token
    /// was issued for `operation` on behalf of `origin`, and that a
    /// provider does not claim to speak for an actor. Receivers of
    /// invocations use this one.
    ///
    /// # Errors
    ///
    /// As [`InvocationVerifier::verify`]; [`ErrorKind::HashMismatch`] when
    /// the operation or origin differs from the signed one;
    /// [`ErrorKind::WrongKeyKind`] when a provider claims an actor origin.
    pub fn verify_call(
        &self,
        token: &str,
        id: &str,
        origin: &str,
        target: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<VerifiedSender> {
        self.check(token, id, target, Some((origin, operation)), payload)
    }

    fn check(
        &self,
        token: &str,
        id: &str,
        target: &str,
        call: Option<(&str, &str)>,
        payload: &[u8],
    ) -> Result<VerifiedSender> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(Error::new(ErrorKind::Malformed, "the token is too long"));
        }

        // Who claims to have signed it, and is that key vouched for?
        let unverified: Claims<InvocationMetadata> = jwt::decode_unverified(token)?;
        let sender = self.check_credential(&unverified.trellis.credential)?;
        if sender.sender != unverified.iss {
            return Err(Error::new(
                ErrorKind::BadSignature,
                "the token is not signed by the key its credential names",
            ));
        }
        let sender_kind = public_key_kind(&sender.sender)?;
        let options = VerifyOptions {
            trusted_issuers: Some(HashSet::from([sender.sender.clone()])),
            issuer_kind: sender_kind,
            subject_kind: public_key_kind(target)?,
            clock_skew_secs: self.settings.clock_skew_secs,
            require_expiry: true,
        };
        let claims: Claims<InvocationMetadata> = jwt::verify(token, &options)?;
        if claims.jti != id || claims.trellis.target != target || claims.sub != target {
            return Err(Error::new(
                ErrorKind::HashMismatch,
                "the token was issued for another invocation",
            ));
        }
        if let Some((origin, operation)) = call {
            if operation != claims.trellis.operation || origin != claims.trellis.origin {
                return Err(Error::new(
                    ErrorKind::HashMismatch,
                    "the token was issued for another operation or origin",
                ));
            }
            // A provider speaks only for itself: only hosts carry actors' calls.
            if sender_kind == KeyKind::Provider && origin.starts_with(KeyKind::Actor.prefix()) {
                return Err(Error::new(
                    ErrorKind::WrongKeyKind,
                    "a provider cannot make calls on behalf of an actor",
                ));
            }
        }
        if claims.trellis.payload_hash != sha256_hex(payload) {
            return Err(Error::new(
                ErrorKind::HashMismatch,
                "the payload was changed after signing",
            ));
        }
        let exp = claims.exp.unwrap_or(0) + self.settings.clock_skew_secs;
        let fresh = self
            .seen
            .lock()
            .map_err(|_| Error::new(ErrorKind::Malformed, "replay cache poisoned"))?
            .insert(
                id,
                exp,
                now_secs(),
                self.settings.replay_cache_capacity.max(1),
            );
        if !fresh {
            return Err(Error::new(
                ErrorKind::Replayed,
                format!("invocation {id} was already received"),
            ));
        }
        Ok(sender)
    }

    fn check_credential(&self, credential: &str) -> Result<VerifiedSender> {
        let now = now_secs();
        if let Ok(cache) = self.credentials.lock()
            && let Some((sender, exp)) = cache.get(credential)
            && *exp + self.settings.clock_skew_secs >= now
        {
            return Ok(sender.clone());
        }
        let unverified: Claims<CredentialMetadata> = jwt::decode_unverified(credential)?;
        let kind = public_key_kind(&unverified.sub)?;
        if !matches!(kind, KeyKind::Host | KeyKind::Provider) {
            return Err(Error::new(
                ErrorKind::WrongKeyKind,
                "credentials vouch for host or provider keys only",
            ));
        }
        let options = VerifyOptions {
            trusted_issuers: Some(self.cluster_issuers.clone()),
            issuer_kind: KeyKind::Cluster,
            subject_kind: kind,
            clock_skew_secs: self.settings.clock_skew_secs,
            require_expiry: true,
        };
        let claims: Claims<CredentialMetadata> = jwt::verify(credential, &options)?;
        if claims.trellis.lattice != self.lattice {
            return Err(Error::new(
                ErrorKind::UntrustedIssuer,
                format!("the credential is for lattice {:?}", claims.trellis.lattice),
            ));
        }
        let sender = VerifiedSender {
            sender: claims.sub,
            cluster_issuer: claims.iss,
        };
        if let Ok(mut cache) = self.credentials.lock() {
            if cache.len() >= self.settings.credential_cache_capacity {
                cache.clear();
            }
            cache.insert(
                credential.to_owned(),
                (sender.clone(), claims.exp.unwrap_or(now)),
            );
        }
        Ok(sender)
    }
}
