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
//!
//! The control plane uses the same tokens and the same checks:
//!
//! - A **control credential** is issued by an *operator* (`O…`, the control
//!   issuer a host is told to trust with `--ctl-issuer`) to a control client
//!   (`U…`: the CLI, wadm), and carries a [`CtlScope`].
//! - A **control token** is signed by the client's key like an invocation
//!   token, but is bound to the NATS subject of the request instead of a
//!   target key ([`InvocationSigner::sign_control`],
//!   [`InvocationVerifier::verify_control`]).
//! - A host's own control messages to the providers it started (link
//!   changes, health checks, shutdown) are invocation tokens of the host,
//!   checked with [`InvocationVerifier::verify_message`].

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

/// Longest lifetime (`exp` − `iat`) of a token accepted, in seconds.
/// Defaults to 120 s: four times [`DEFAULT_TOKEN_TTL`], and the bound on
/// how long a captured token can be replayed at a receiver that has not
/// seen it.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u64 = 120;

/// What an invocation token binds besides its payload: who calls whom for
/// what, on which NATS subject, over which link. A receiver checks each
/// field against the invocation it received and the subject it arrived on,
/// so a copied token cannot be sent to another link instance, contract or
/// subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// The invocation id (the token's `jti`).
    pub id: &'a str,
    /// On whose behalf the call is made (the origin entity's id).
    pub origin: &'a str,
    /// The target's key (`M…`, `V…` or `N…`), the token's `sub`.
    pub target: &'a str,
    /// The operation invoked.
    pub operation: &'a str,
    /// The NATS subject the invocation is published on.
    pub subject: &'a str,
    /// The contract id the call travels over, if any.
    pub contract_id: Option<&'a str>,
    /// The link name the call travels over, if any.
    pub link_name: Option<&'a str>,
}

/// Metadata of a credential: which member kind it vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialMetadata {
    /// The lattice the credential is valid in.
    pub lattice: String,
    /// What a control credential allows; absent on the cluster-issued
    /// credentials of hosts and providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<CtlScope>,
}

/// What a control credential allows its holder to do.
///
/// # Examples
///
/// ```
/// use trellis_claims::invocation::CtlScope;
///
/// assert!(CtlScope::Full.allows(CtlScope::Read));
/// assert!(!CtlScope::Read.allows(CtlScope::Full));
/// assert_eq!("read".parse::<CtlScope>().unwrap(), CtlScope::Read);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtlScope {
    /// Read-only: ping hosts, read inventories, list links and claims.
    Read,
    /// Everything: start, scale and stop, put and delete links, stop hosts.
    Full,
}

impl CtlScope {
    /// Whether a credential of this scope may perform an operation that
    /// needs `required`.
    pub fn allows(self, required: CtlScope) -> bool {
        self >= required
    }

    /// The lowercase name: `read` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            CtlScope::Read => "read",
            CtlScope::Full => "full",
        }
    }
}

impl std::fmt::Display for CtlScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CtlScope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(CtlScope::Read),
            "full" => Ok(CtlScope::Full),
            _ => Err(Error::new(
                ErrorKind::Malformed,
                format!("unknown control scope {s:?}; use read or full"),
            )),
        }
    }
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
    /// The NATS subject of an invocation ([`Call::subject`]); empty in
    /// control tokens and host-to-provider messages, which bind theirs in
    /// `target`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The contract id of an invocation ([`Call::contract_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    /// The link name of an invocation ([`Call::link_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_name: Option<String>,
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
            scope: None,
        },
    );
    claims.exp = Some(now_secs() + ttl.as_secs().max(1));
    jwt::sign(&mut claims, cluster, KeyKind::Cluster)
}

/// Issues a control credential for `client` (a user key, `U…`) in
/// `lattice` with `scope`, signed by `operator` (an operator key, the
/// control issuer), valid for `ttl`.
///
/// # Errors
///
/// [`ErrorKind::WrongKeyKind`] if `operator` is not an operator key or
/// `client` is not a user key.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trellis_claims::invocation::{issue_control_credential, CtlScope, InvocationSigner,
///     InvocationVerifier, VerifierSettings};
/// use trellis_claims::keys::{generate, KeyKind};
/// use trellis_claims::ErrorKind;
///
/// let operator = generate(KeyKind::Operator);
/// let cli = generate(KeyKind::User);
/// let credential = issue_control_credential(&operator, &cli.public_key(), "default",
///     CtlScope::Read, Duration::from_secs(60)).unwrap();
/// let signer = InvocationSigner::new(cli, credential, Duration::from_secs(30)).unwrap();
/// let subject = "trellis.ctl.v1.default.link.list";
/// let token = signer.sign_control(subject, "link.list", b"").unwrap();
///
/// let verifier = InvocationVerifier::control("default", [operator.public_key()],
///     VerifierSettings::default());
/// let sender = verifier.verify_control(&token, subject, "link.list", b"").unwrap();
/// assert_eq!(sender.scope, Some(CtlScope::Read));
/// // The same token again is a replay; on another subject it is refused.
/// assert_eq!(verifier.verify_control(&token, subject, "link.list", b"").unwrap_err().kind(),
///     ErrorKind::Replayed);
/// let token = signer.sign_control(subject, "link.list", b"").unwrap();
/// assert_eq!(verifier.verify_control(&token, "trellis.ctl.v1.default.link.put", "link.list", b"")
///     .unwrap_err().kind(), ErrorKind::HashMismatch);
/// ```
pub fn issue_control_credential(
    operator: &KeyPair,
    client: &str,
    lattice: &str,
    scope: CtlScope,
    ttl: Duration,
) -> Result<String> {
    crate::keys::expect_public_key(client, KeyKind::User)?;
    let mut claims = Claims::new(
        client,
        CredentialMetadata {
            lattice: lattice.to_owned(),
            scope: Some(scope),
        },
    );
    claims.exp = Some(now_secs() + ttl.as_secs().max(1));
    jwt::sign(&mut claims, operator, KeyKind::Operator)
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
    /// A signer for `key` (a host or provider key pair, or a control
    /// client's user key) presenting `credential`, issuing tokens valid for
    /// `ttl` ([`DEFAULT_TOKEN_TTL`] is a good choice).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WrongKeyKind`] if `key` is not a host, provider or user
    /// key.
    pub fn new(key: KeyPair, credential: String, ttl: Duration) -> Result<Self> {
        let kind = public_key_kind(&key.public_key())?;
        if !matches!(kind, KeyKind::Host | KeyKind::Provider | KeyKind::User) {
            return Err(Error::new(
                ErrorKind::WrongKeyKind,
                "tokens are signed by host, provider or user keys",
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

    /// A token for the invocation `call` with `payload`: bound to its id,
    /// origin, target, operation, subject, contract and link name.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Malformed`] if signing fails, which it does not for
    /// valid keys.
    pub fn sign(&self, call: &Call<'_>, payload: &[u8]) -> Result<String> {
        let binding = Binding {
            subject: call.subject,
            contract_id: call.contract_id,
            link_name: call.link_name,
        };
        self.sign_bound(
            call.id,
            call.origin,
            call.target,
            call.target,
            call.operation,
            payload,
            binding,
        )
    }

    /// A control token for a request on NATS `subject` performing
    /// `operation` (e.g. `actor.start`) with `payload`. The token carries a
    /// fresh id, is signed on the signer's own behalf, and is bound to the
    /// subject rather than to a target key.
    ///
    /// # Errors
    ///
    /// As [`InvocationSigner::sign`].
    pub fn sign_control(&self, subject: &str, operation: &str, payload: &[u8]) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let me = self.public_key.as_str();
        self.sign_bound(&id, me, me, subject, operation, payload, Binding::NONE)
    }

    /// A token for a message from this signer to `target` (e.g. a host's
    /// link change for a provider it started), with a fresh id, on its own
    /// behalf.
    ///
    /// # Errors
    ///
    /// As [`InvocationSigner::sign`].
    pub fn sign_message(&self, target: &str, operation: &str, payload: &[u8]) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let me = self.public_key.as_str();
        self.sign_bound(&id, me, target, target, operation, payload, Binding::NONE)
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_bound(
        &self,
        id: &str,
        origin: &str,
        sub: &str,
        target: &str,
        operation: &str,
        payload: &[u8],
        binding: Binding<'_>,
    ) -> Result<String> {
        let now = now_secs();
        let claims = Claims {
            jti: id.to_owned(),
            iat: now,
            iss: self.public_key.clone(),
            sub: sub.to_owned(),
            nbf: None,
            exp: Some(now + self.ttl.as_secs().max(1)),
            trellis: InvocationMetadata {
                origin: origin.to_owned(),
                target: target.to_owned(),
                operation: operation.to_owned(),
                payload_hash: sha256_hex(payload),
                subject: binding.subject.to_owned(),
                contract_id: binding.contract_id.map(str::to_owned),
                link_name: binding.link_name.map(str::to_owned),
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

/// Who sent a verified invocation or control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSender {
    /// The sender's public key (`N…` or `V…`; `U…` for control).
    pub sender: String,
    /// The issuer that vouched for it: a cluster issuer (`C…`), or an
    /// operator (`O…`) for control.
    pub issuer: String,
    /// The control scope of its credential; `None` for hosts and
    /// providers.
    pub scope: Option<CtlScope>,
}

/// Which credentials a verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Invocations: hosts and providers vouched for by cluster issuers.
    Rpc,
    /// Control requests: users vouched for by operators, with a scope.
    Control,
}

/// What a token must be bound to.
#[derive(Debug, Clone, Copy)]
struct Expected<'a> {
    /// The invocation id; `None` takes the token's own `jti`.
    id: Option<&'a str>,
    /// The target key (invocations), or the NATS subject (control).
    target: Bound<'a>,
    /// The origin and operation, when checked.
    call: Option<(&'a str, &'a str)>,
    /// The subject and link an invocation is bound to, when checked.
    binding: Option<Binding<'a>>,
}

/// The subject and link a token binds ([`Call`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding<'a> {
    subject: &'a str,
    contract_id: Option<&'a str>,
    link_name: Option<&'a str>,
}

impl Binding<'_> {
    /// No binding: control tokens and host-to-provider messages.
    const NONE: Binding<'static> = Binding {
        subject: "",
        contract_id: None,
        link_name: None,
    };
}

#[derive(Debug, Clone, Copy)]
enum Bound<'a> {
    Member(&'a str),
    Subject(&'a str),
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
    /// Longest token lifetime (`exp` − `iat`) accepted, in seconds.
    /// Defaults to [`DEFAULT_MAX_TOKEN_LIFETIME_SECS`].
    pub max_token_lifetime_secs: u64,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            clock_skew_secs: jwt::DEFAULT_CLOCK_SKEW_SECS,
            replay_cache_capacity: DEFAULT_REPLAY_CACHE_CAPACITY,
            credential_cache_capacity: DEFAULT_CREDENTIAL_CACHE_CAPACITY,
            max_token_lifetime_secs: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
        }
    }
}

/// Verifies invocation tokens and refuses replays. Shared by all the
/// subscriptions of a host or provider (it is `Sync`). A verifier made with
/// [`InvocationVerifier::control`] checks control tokens instead.
#[derive(Debug)]
pub struct InvocationVerifier {
    lattice: String,
    role: Role,
    issuers: HashSet<String>,
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
        Self::with_role(Role::Rpc, lattice, cluster_issuers, settings)
    }

    /// A verifier of control tokens for `lattice` that accepts control
    /// clients (`U…`) vouched for by any of `operators` (operator public
    /// keys, the control issuers).
    pub fn control(
        lattice: impl Into<String>,
        operators: impl IntoIterator<Item = String>,
        settings: VerifierSettings,
    ) -> Self {
        Self::with_role(Role::Control, lattice, operators, settings)
    }

    fn with_role(
        role: Role,
        lattice: impl Into<String>,
        issuers: impl IntoIterator<Item = String>,
        settings: VerifierSettings,
    ) -> Self {
        Self {
            lattice: lattice.into(),
            role,
            issuers: issuers.into_iter().collect(),
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
    /// - [`ErrorKind::Expired`] / [`ErrorKind::NotYetValid`] (also for an
    ///   `iat` in the future, beyond the clock skew);
    /// - [`ErrorKind::LifetimeTooLong`]: `exp` − `iat` is over
    ///   [`VerifierSettings::max_token_lifetime_secs`];
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
        let expected = Expected {
            id: Some(id),
            target: Bound::Member(target),
            call: None,
            binding: None,
        };
        self.check(token, expected, payload)
    }

    /// As [`InvocationVerifier::verify`], and also checks every field of
    /// `call`: that the token was issued for its operation on behalf of its
    /// origin, on its NATS subject, over its contract and link name; and
    /// that a provider does not claim to speak for an actor. Receivers of
    /// invocations use this one.
    ///
    /// # Errors
    ///
    /// As [`InvocationVerifier::verify`]; [`ErrorKind::HashMismatch`] when
    /// the operation, origin, subject, contract or link name differs from
    /// the signed one; [`ErrorKind::WrongKeyKind`] when a provider claims
    /// an actor origin.
    pub fn verify_call(
        &self,
        token: &str,
        call: &Call<'_>,
        payload: &[u8],
    ) -> Result<VerifiedSender> {
        let expected = Expected {
            id: Some(call.id),
            target: Bound::Member(call.target),
            call: Some((call.origin, call.operation)),
            binding: Some(Binding {
                subject: call.subject,
                contract_id: call.contract_id,
                link_name: call.link_name,
            }),
        };
        self.check(token, expected, payload)
    }

    /// Verifies a token bound to NATS `subject` for `operation` with
    /// `payload` ([`InvocationSigner::sign_control`]), and records its id:
    /// with a verifier made with [`InvocationVerifier::control`], a control
    /// request, whose caller then checks [`VerifiedSender::scope`]; with
    /// one made with [`InvocationVerifier::new`], a host's event.
    ///
    /// # Errors
    ///
    /// As [`InvocationVerifier::verify_call`]; [`ErrorKind::HashMismatch`]
    /// when the token was issued for another subject or operation;
    /// [`ErrorKind::UntrustedIssuer`] for a credential of a host or
    /// provider, or of an operator this verifier does not trust.
    pub fn verify_control(
        &self,
        token: &str,
        subject: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<VerifiedSender> {
        self.check_own(token, Bound::Subject(subject), operation, payload)
    }

    /// Verifies a message that a host or provider sent on its own behalf
    /// to `target` (e.g. a link change from a provider's host), and
    /// records its id. The caller checks that the returned sender is the
    /// one it expects.
    ///
    /// # Errors
    ///
    /// As [`InvocationVerifier::verify_call`].
    pub fn verify_message(
        &self,
        token: &str,
        target: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<VerifiedSender> {
        self.check_own(token, Bound::Member(target), operation, payload)
    }

    /// Checks a token that its signer sent on its own behalf (its origin
    /// is its `iss`), with the id the token carries.
    fn check_own(
        &self,
        token: &str,
        target: Bound<'_>,
        operation: &str,
        payload: &[u8],
    ) -> Result<VerifiedSender> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(Error::new(ErrorKind::Malformed, "the token is too long"));
        }
        let claimed: Claims<InvocationMetadata> = jwt::decode_unverified(token)?;
        let expected = Expected {
            id: None,
            target,
            call: Some((&claimed.iss, operation)),
            binding: Some(Binding::NONE),
        };
        self.check(token, expected, payload)
    }

    fn check(&self, token: &str, expected: Expected<'_>, payload: &[u8]) -> Result<VerifiedSender> {
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
        // An invocation names its target key as the subject; a control
        // token names its sender, and carries the NATS subject instead.
        let (sub, target) = match expected.target {
            Bound::Member(key) => (key, key),
            Bound::Subject(subject) => (sender.sender.as_str(), subject),
        };
        let options = VerifyOptions {
            trusted_issuers: Some(HashSet::from([sender.sender.clone()])),
            issuer_kind: sender_kind,
            subject_kind: public_key_kind(sub)?,
            clock_skew_secs: self.settings.clock_skew_secs,
            require_expiry: true,
        };
        let claims: Claims<InvocationMetadata> = jwt::verify(token, &options)?;
        let id = expected.id.unwrap_or(claims.jti.as_str());
        if claims.jti != id || claims.trellis.target != target || claims.sub != sub {
            return Err(Error::new(
                ErrorKind::HashMismatch,
                "the token was issued for another invocation",
            ));
        }
        if let Some((origin, operation)) = expected.call {
            if operation != claims.trellis.operation || origin != claims.trellis.origin {
                return Err(Error::new(
                    ErrorKind::HashMismatch,
                    "the token was issued for another operation or origin",
                ));
            }
            // A provider speaks only for itself: only hosts carry actors' calls.
            if sender_kind == KeyKind::Provider
                && public_key_kind(origin).ok() == Some(KeyKind::Actor)
            {
                return Err(Error::new(
                    ErrorKind::WrongKeyKind,
                    "a provider cannot make calls on behalf of an actor",
                ));
            }
        }
        if let Some(binding) = expected.binding {
            let signed = Binding {
                subject: &claims.trellis.subject,
                contract_id: claims.trellis.contract_id.as_deref(),
                link_name: claims.trellis.link_name.as_deref(),
            };
            if signed != binding {
                return Err(Error::new(
                    ErrorKind::HashMismatch,
                    "the token was issued for another subject, contract or link",
                ));
            }
        }
        let now = now_secs();
        let skew = self.settings.clock_skew_secs;
        if claims.iat > now.saturating_add(skew) {
            return Err(Error::new(
                ErrorKind::NotYetValid,
                "the token was issued in the future",
            ));
        }
        let exp = claims.exp.unwrap_or(0);
        if exp.saturating_sub(claims.iat) > self.settings.max_token_lifetime_secs {
            return Err(Error::new(
                ErrorKind::LifetimeTooLong,
                format!(
                    "the token is valid for {} s; at most {} s is accepted",
                    exp.saturating_sub(claims.iat),
                    self.settings.max_token_lifetime_secs
                ),
            ));
        }
        if claims.trellis.payload_hash != sha256_hex(payload) {
            return Err(Error::new(
                ErrorKind::HashMismatch,
                "the payload was changed after signing",
            ));
        }
        let exp = exp.saturating_add(skew);
        let fresh = self
            .seen
            .lock()
            .map_err(|_| Error::new(ErrorKind::Malformed, "replay cache poisoned"))?
            .insert(
                &claims.jti,
                exp,
                now,
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
            && exp.saturating_add(self.settings.clock_skew_secs) >= now
        {
            return Ok(sender.clone());
        }
        let unverified: Claims<CredentialMetadata> = jwt::decode_unverified(credential)?;
        let kind = public_key_kind(&unverified.sub)?;
        let (issuer_kind, members): (KeyKind, &[KeyKind]) = match self.role {
            Role::Rpc => (KeyKind::Cluster, &[KeyKind::Host, KeyKind::Provider]),
            Role::Control => (KeyKind::Operator, &[KeyKind::User]),
        };
        if !members.contains(&kind) {
            return Err(Error::new(
                ErrorKind::WrongKeyKind,
                format!("these credentials vouch for {members:?} keys only, not {kind} keys"),
            ));
        }
        let options = VerifyOptions {
            trusted_issuers: Some(self.issuers.clone()),
            issuer_kind,
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
        let scope = claims.trellis.scope;
        if (self.role == Role::Control) != scope.is_some() {
            return Err(Error::new(
                ErrorKind::MissingClaims,
                "a control credential carries a scope, and only a control credential does",
            ));
        }
        let sender = VerifiedSender {
            sender: claims.sub,
            issuer: claims.iss,
            scope,
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
