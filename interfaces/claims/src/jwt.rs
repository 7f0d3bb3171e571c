//! Signing and verifying claims as JWTs (RFC 7519) with Ed25519.
//!
//! Tokens are compact JWS (RFC 7515) with the header `{"typ":"JWT","alg":"EdDSA"}`:
//! `EdDSA` is the JOSE algorithm name for Ed25519 (RFC 8037). wasmCloud
//! writes the non-standard `"alg":"Ed25519"`, which standard JOSE libraries
//! cannot read; Trellis refuses it like any other algorithm that is not
//! `EdDSA`. Signing and verification go through `jsonwebtoken` with the
//! algorithm pinned to `EdDSA`; `iss` and `sub` are required, and `exp` and
//! `nbf` are checked whenever present.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::keys::{KeyKind, KeyPair, expect_public_key, raw_public_key};

/// The only JOSE algorithm Trellis signs with or accepts.
pub const ALGORITHM: &str = "EdDSA";

/// Clock skew tolerated when checking `exp` and `nbf`, in seconds, when a
/// [`VerifyOptions`] does not say otherwise. Defaults to 30.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;

/// Longest token accepted for verification, in bytes. Claims are small;
/// this bounds work done on hostile input.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The claims of a Trellis JWT: the registered claims plus Trellis metadata
/// of type `T` under the `trellis` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims<T> {
    /// Unique id of this token (a UUID).
    pub jti: String,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: u64,
    /// Issuer's public key.
    pub iss: String,
    /// Subject's public key.
    pub sub: String,
    /// Not before, in seconds since the Unix epoch; absent means "from `iat`".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expiry, in seconds since the Unix epoch; absent means "never".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Trellis metadata.
    pub trellis: T,
}

impl<T> Claims<T> {
    /// Claims issued now for `subject`, with a fresh `jti`, no `nbf` and no
    /// expiry. The issuer is filled in by [`sign`].
    pub fn new(subject: impl Into<String>, metadata: T) -> Self {
        Self {
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now_secs(),
            iss: String::new(),
            sub: subject.into(),
            nbf: None,
            exp: None,
            trellis: metadata,
        }
    }
}

/// Seconds since the Unix epoch, by the system clock.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The JOSE header of every token Trellis signs, `{"typ":"JWT","alg":"EdDSA"}`,
/// base64url-encoded without padding (RFC 7515 §7.1).
pub const HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9";

/// Signs `claims` with `issuer`, setting `claims.iss` to the issuer's
/// public key, and returns the compact token (RFC 7515 §7.1:
/// `base64url(header).base64url(claims).base64url(signature)`, with the
/// header [`HEADER_B64`]).
///
/// The signature is made with the key pair's own Ed25519 signing key, so
/// nothing is re-derived from the seed per token; the tokens verify with
/// any JOSE library that accepts `EdDSA`, `jsonwebtoken` included.
///
/// # Errors
///
/// [`ErrorKind::WrongKeyKind`] if `issuer` is not of `issuer_kind`;
/// [`ErrorKind::InvalidKey`] if it has no seed; [`ErrorKind::Malformed`] if
/// the claims cannot be serialised.
///
/// # Examples
///
/// ```
/// use trellis_claims::jwt::{self, Claims, VerifyOptions};
/// use trellis_claims::keys::{generate, KeyKind};
///
/// let issuer = generate(KeyKind::Account);
/// let actor = generate(KeyKind::Actor).public_key();
/// let mut claims = Claims::new(actor.clone(), serde_json::json!({"name": "hello"}));
/// let token = jwt::sign(&mut claims, &issuer, KeyKind::Account).unwrap();
/// assert!(token.starts_with(jwt::HEADER_B64));
///
/// let options = VerifyOptions::trusting([issuer.public_key()]);
/// let verified: Claims<serde_json::Value> = jwt::verify(&token, &options).unwrap();
/// assert_eq!(verified.sub, actor);
/// ```
pub fn sign<T: Serialize>(
    claims: &mut Claims<T>,
    issuer: &KeyPair,
    issuer_kind: KeyKind,
) -> Result<String> {
    let issuer_public = issuer.public_key();
    expect_public_key(&issuer_public, issuer_kind)?;
    claims.iss = issuer_public;
    sign_checked(claims, issuer)
}

/// [`sign`] for callers that have already checked the issuer's kind and
/// set `claims.iss` to its public key.
pub(crate) fn sign_checked<T: Serialize>(claims: &Claims<T>, issuer: &KeyPair) -> Result<String> {
    let payload = serde_json::to_vec(claims).map_err(|e| {
        Error::new(
            ErrorKind::Malformed,
            format!("cannot serialise the claims: {e}"),
        )
    })?;
    // Header, payload and a 64-byte signature, each base64url (4/3) with dots.
    let mut token = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 96);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = issuer.sign(token.as_bytes()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("cannot sign with the issuer key: {e}"),
        )
    })?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// What [`verify`] requires of a token.
///
/// Defaults (see [`Default`]): trust nobody, expect an account issuer and
/// an actor subject, tolerate [`DEFAULT_CLOCK_SKEW_SECS`] of clock skew,
/// expiry optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Public keys of the issuers to trust. `None` accepts any issuer of
    /// [`VerifyOptions::issuer_kind`] whose signature verifies; only tools
    /// that inspect tokens should use it. Defaults to an empty set.
    pub trusted_issuers: Option<HashSet<String>>,
    /// Kind of key the issuer must be. Defaults to [`KeyKind::Account`].
    pub issuer_kind: KeyKind,
    /// Kind of key the subject must be. Defaults to [`KeyKind::Actor`].
    pub subject_kind: KeyKind,
    /// Clock skew tolerated for `exp` and `nbf`, in seconds. Defaults to
    /// [`DEFAULT_CLOCK_SKEW_SECS`].
    pub clock_skew_secs: u64,
    /// Whether `exp` must be present. Defaults to `false`.
    pub require_expiry: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            trusted_issuers: Some(HashSet::new()),
            issuer_kind: KeyKind::Account,
            subject_kind: KeyKind::Actor,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
            require_expiry: false,
        }
    }
}

impl VerifyOptions {
    /// Options that trust exactly `issuers` (public keys).
    pub fn trusting<I, S>(issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            trusted_issuers: Some(issuers.into_iter().map(Into::into).collect()),
            ..Self::default()
        }
    }

    /// The same options, expecting a subject of `kind`.
    #[must_use]
    pub fn with_subject_kind(mut self, kind: KeyKind) -> Self {
        self.subject_kind = kind;
        self
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

/// Verifies `token` and returns its claims.
///
/// The checks run in this order, and the first that fails gives the error
/// kind: well-formedness ([`ErrorKind::Malformed`]); algorithm
/// ([`ErrorKind::WrongAlgorithm`]); presence of `iss` ([`ErrorKind::MissingClaims`]);
/// issuer key kind ([`ErrorKind::WrongKeyKind`]); signature
/// ([`ErrorKind::BadSignature`]); required claims ([`ErrorKind::MissingClaims`]);
/// `exp` ([`ErrorKind::Expired`]); `nbf` ([`ErrorKind::NotYetValid`]);
/// trusted issuer ([`ErrorKind::UntrustedIssuer`]); subject key kind
/// ([`ErrorKind::WrongKeyKind`]).
///
/// # Errors
///
/// One [`Error`] whose kind names the failed check, as listed above.
pub fn verify<T: DeserializeOwned>(token: &str, options: &VerifyOptions) -> Result<Claims<T>> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::new(
            ErrorKind::Malformed,
            format!("token of {} bytes exceeds {MAX_TOKEN_BYTES}", token.len()),
        ));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::new(
            ErrorKind::Malformed,
            "a JWT has three dot-separated parts",
        ));
    };
    let header: RawHeader = decode_part(header_b64, "header")?;
    match header.alg.as_deref() {
        Some(ALGORITHM) => {}
        Some(other) => {
            return Err(Error::new(
                ErrorKind::WrongAlgorithm,
                format!("algorithm {other:?} is not accepted; only {ALGORITHM} is"),
            ));
        }
        None => {
            return Err(Error::new(
                ErrorKind::WrongAlgorithm,
                "the header names no algorithm",
            ));
        }
    }
    let unverified: Unverified = decode_part(payload_b64, "claims")?;
    let issuer = unverified
        .iss
        .ok_or_else(|| Error::new(ErrorKind::MissingClaims, "the token has no issuer (iss)"))?;
    expect_public_key(&issuer, options.issuer_kind)?;
    let key = DecodingKey::from_ed_der(&raw_public_key(&issuer)?);

    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims = ["iss", "sub"].into_iter().map(str::to_owned).collect();
    if options.require_expiry {
        validation.required_spec_claims.insert("exp".to_owned());
    }
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.leeway = options.clock_skew_secs;
    validation.iss = options.trusted_issuers.clone();

    let data = jsonwebtoken::decode::<Claims<Option<T>>>(token, &key, &validation)
        .map_err(map_jwt_error)?;
    let claims = data.claims;
    expect_public_key(&claims.sub, options.subject_kind)?;
    let Some(metadata) = claims.trellis else {
        return Err(Error::new(
            ErrorKind::MissingClaims,
            "the token has no Trellis metadata",
        ));
    };
    Ok(Claims {
        jti: claims.jti,
        iat: claims.iat,
        iss: claims.iss,
        sub: claims.sub,
        nbf: claims.nbf,
        exp: claims.exp,
        trellis: metadata,
    })
}

/// Reads a token's claims without verifying anything, for display only.
///
/// # Errors
///
/// [`ErrorKind::Malformed`] if the token is not a JWT with Trellis claims.
pub fn decode_unverified<T: DeserializeOwned>(token: &str) -> Result<Claims<T>> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| Error::new(ErrorKind::Malformed, "a JWT has three dot-separated parts"))?;
    decode_part(payload, "claims")
}

fn decode_part<T: DeserializeOwned>(part: &str, what: &str) -> Result<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| {
        Error::new(
            ErrorKind::Malformed,
            format!("the {what} is not base64url: {e}"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::Malformed,
            format!("the {what} is not valid JSON of the expected shape: {e}"),
        )
    })
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> Error {
    use jsonwebtoken::errors::ErrorKind as J;
    let kind = match e.kind() {
        J::InvalidSignature | J::InvalidEddsaKey => ErrorKind::BadSignature,
        J::ExpiredSignature => ErrorKind::Expired,
        J::ImmatureSignature => ErrorKind::NotYetValid,
        J::InvalidIssuer => ErrorKind::UntrustedIssuer,
        J::MissingRequiredClaim(_) => ErrorKind::MissingClaims,
        J::InvalidAlgorithm | J::MissingAlgorithm | J::InvalidAlgorithmName => {
            ErrorKind::WrongAlgorithm
        }
        J::Json(inner) if inner.is_data() && inner.to_string().starts_with("missing field") => {
            ErrorKind::MissingClaims
        }
        _ => ErrorKind::Malformed,
    };
    let message = match kind {
        ErrorKind::UntrustedIssuer => "the issuer is not in the list of trusted issuers".to_owned(),
        _ => e.to_string(),
    };
    Error::new(kind, message)
}
