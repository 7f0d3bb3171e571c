//! Actor claims: what an actor is and which capabilities it may use.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::jwt::{self, Claims, VerifyOptions};
use crate::keys::{KeyKind, KeyPair, expect_public_key};
use crate::wasm;

/// The Trellis metadata of an actor's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorMetadata {
    /// Human-friendly name.
    pub name: String,
    /// Lowercase hex SHA-256 of the module without its claims section
    /// (see [`wasm::module_hash`]).
    pub module_hash: String,
    /// Contract ids of the capabilities the actor may use, e.g.
    /// `wasi:keyvalue`. Empty by default: deny by default.
    #[serde(default)]
    pub caps: Vec<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Revision, a number that increases with each release. Defaults to 0.
    #[serde(default)]
    pub rev: u32,
    /// Human-friendly version, e.g. `0.1.0`.
    #[serde(default)]
    pub ver: Option<String>,
    /// An alias other actors may call this actor by.
    #[serde(default)]
    pub call_alias: Option<String>,
}

impl ActorMetadata {
    /// Whether the claims grant the capability `contract_id`.
    pub fn has_capability(&self, contract_id: &str) -> bool {
        self.caps.iter().any(|c| c == contract_id)
    }
}

/// What to write into an actor's claims, apart from the module hash, which
/// [`sign_actor`] computes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActorClaimsRequest {
    /// Human-friendly name.
    pub name: String,
    /// Capability contract ids. Empty by default.
    pub caps: Vec<String>,
    /// Tags. Empty by default.
    pub tags: Vec<String>,
    /// Revision. Defaults to 0.
    pub rev: u32,
    /// Version. Defaults to none.
    pub ver: Option<String>,
    /// Call alias. Defaults to none.
    pub call_alias: Option<String>,
    /// Not before, in seconds since the Unix epoch. Defaults to none.
    pub not_before: Option<u64>,
    /// Expiry, in seconds since the Unix epoch. Defaults to none (never).
    pub expires: Option<u64>,
}

/// Signs `wasm` (a core module or component): computes its hash, signs the
/// claims with `issuer` (an account key) for `subject` (an actor key) and
/// returns the binary with the token embedded, together with the claims.
///
/// # Errors
///
/// [`ErrorKind::InvalidWasm`] for bytes that are not WebAssembly;
/// [`ErrorKind::WrongKeyKind`] if `issuer` is not an account key or
/// `subject` not an actor key.
///
/// # Examples
///
/// ```
/// use trellis_claims::{actor::{sign_actor, verify_actor, ActorClaimsRequest}, keys::{generate, KeyKind}, VerifyOptions};
///
/// let issuer = generate(KeyKind::Account);
/// let actor = generate(KeyKind::Actor);
/// let module = b"\0asm\x01\0\0\0";
/// let request = ActorClaimsRequest { name: "hello".into(), caps: vec!["wasi:keyvalue".into()], ..Default::default() };
/// let (signed, _) = sign_actor(module, &request, &issuer, &actor).unwrap();
/// let claims = verify_actor(&signed, &VerifyOptions::trusting([issuer.public_key()])).unwrap();
/// assert_eq!(claims.sub, actor.public_key());
/// assert!(claims.trellis.has_capability("wasi:keyvalue"));
/// ```
pub fn sign_actor(
    wasm: &[u8],
    request: &ActorClaimsRequest,
    issuer: &KeyPair,
    subject: &KeyPair,
) -> Result<(Vec<u8>, Claims<ActorMetadata>)> {
    expect_public_key(&subject.public_key(), KeyKind::Actor)?;
    let module_hash = wasm::module_hash(wasm)?;
    let mut claims = Claims::new(
        subject.public_key(),
        ActorMetadata {
            name: request.name.clone(),
            module_hash,
            caps: request.caps.clone(),
            tags: request.tags.clone(),
            rev: request.rev,
            ver: request.ver.clone(),
            call_alias: request.call_alias.clone(),
        },
    );
    claims.nbf = request.not_before;
    claims.exp = request.expires;
    let token = jwt::sign(&mut claims, issuer, KeyKind::Account)?;
    Ok((wasm::embed_token(wasm, &token)?, claims))
}

/// Verifies the claims embedded in `wasm`: the token (see [`jwt::verify`])
/// and then that the module hashes to the value in the claims.
///
/// `options.subject_kind` is forced to [`KeyKind::Actor`].
///
/// # Errors
///
/// [`ErrorKind::NoClaims`] when the binary carries no claims,
/// [`ErrorKind::HashMismatch`] when it was changed after signing, and every
/// kind [`jwt::verify`] returns.
pub fn verify_actor(wasm: &[u8], options: &VerifyOptions) -> Result<Claims<ActorMetadata>> {
    let token = wasm::extract_token(wasm)?
        .ok_or_else(|| Error::new(ErrorKind::NoClaims, "the module carries no signed claims"))?;
    let options = options.clone().with_subject_kind(KeyKind::Actor);
    let claims: Claims<ActorMetadata> = jwt::verify(&token, &options)?;
    let actual = wasm::module_hash(wasm)?;
    if actual != claims.trellis.module_hash {
        return Err(Error::new(
            ErrorKind::HashMismatch,
            format!(
                "the module hashes to {actual} but its claims say {}",
                claims.trellis.module_hash
            ),
        ));
    }
    Ok(claims)
}
