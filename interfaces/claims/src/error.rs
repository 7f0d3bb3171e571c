//! The error type of this crate: one matchable kind per failed check.

use std::fmt;

/// What went wrong, for programs to match on.
///
/// Each verification check has its own kind, so that a caller (or a test)
/// can tell an expired token from a forged one without reading text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The signature does not verify against the issuer's public key.
    BadSignature,
    /// The module or binary does not hash to the value in the claims.
    HashMismatch,
    /// `exp` is in the past (beyond the allowed clock skew).
    Expired,
    /// `nbf` is in the future (beyond the allowed clock skew).
    NotYetValid,
    /// The issuer is not in the caller's list of trusted issuers.
    UntrustedIssuer,
    /// A key of one kind was given where another is required (an actor key
    /// as issuer, a host seed as actor subject, ...).
    WrongKeyKind,
    /// The token's header names an algorithm other than `EdDSA`
    /// (including `none`, `HS256` and wasmCloud's non-standard `Ed25519`).
    WrongAlgorithm,
    /// A required claim (`iss`, `sub`, `iat`, the Trellis metadata, ...) is absent.
    MissingClaims,
    /// The module or archive carries no claims at all.
    NoClaims,
    /// The token is not a well-formed JWT, or its claims have the wrong shape.
    Malformed,
    /// A key or seed is not a valid nkey.
    InvalidKey,
    /// The bytes are not a WebAssembly module or component.
    InvalidWasm,
    /// A provider archive is malformed, incomplete or over its limits.
    InvalidArchive,
    /// An I/O error while reading or writing an archive.
    Io,
    /// An invocation id that was already received: a replay.
    Replayed,
    /// The sender is verified but not allowed this: a control credential
    /// whose scope is too narrow, or a member other than the one expected.
    Unauthorized,
    /// A sealed secret does not open with the key it was given: it was
    /// sealed to another key or by another sender, or it was altered.
    CannotOpen,
    /// A token's lifetime (`exp` − `iat`) is longer than the receiver
    /// accepts.
    LifetimeTooLong,
}

impl ErrorKind {
    /// A stable snake_case code for machine-readable output, e.g.
    /// `hash_mismatch`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadSignature => "bad_signature",
            ErrorKind::HashMismatch => "hash_mismatch",
            ErrorKind::Expired => "expired",
            ErrorKind::NotYetValid => "not_yet_valid",
            ErrorKind::UntrustedIssuer => "untrusted_issuer",
            ErrorKind::WrongKeyKind => "wrong_key_kind",
            ErrorKind::WrongAlgorithm => "wrong_algorithm",
            ErrorKind::MissingClaims => "missing_claims",
            ErrorKind::NoClaims => "no_claims",
            ErrorKind::Malformed => "malformed",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::InvalidWasm => "invalid_wasm",
            ErrorKind::InvalidArchive => "invalid_archive",
            ErrorKind::Io => "io",
            ErrorKind::Replayed => "replayed",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::CannotOpen => "cannot_open",
            ErrorKind::LifetimeTooLong => "lifetime_too_long",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::BadSignature => "bad signature",
            ErrorKind::HashMismatch => "hash mismatch",
            ErrorKind::Expired => "expired",
            ErrorKind::NotYetValid => "not yet valid",
            ErrorKind::UntrustedIssuer => "untrusted issuer",
            ErrorKind::WrongKeyKind => "wrong key kind",
            ErrorKind::WrongAlgorithm => "wrong algorithm",
            ErrorKind::MissingClaims => "missing claims",
            ErrorKind::NoClaims => "no claims",
            ErrorKind::Malformed => "malformed token",
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::InvalidWasm => "invalid wasm",
            ErrorKind::InvalidArchive => "invalid provider archive",
            ErrorKind::Io => "i/o error",
            ErrorKind::Replayed => "replayed",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::CannotOpen => "cannot open sealed secret",
            ErrorKind::LifetimeTooLong => "lifetime too long",
        })
    }
}

/// An error from this crate: a [`ErrorKind`] and a message for people.
///
/// # Examples
///
/// ```
/// use trellis_claims::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::Expired, "expired at 2026-01-01T00:00:00Z");
/// assert_eq!(err.kind(), ErrorKind::Expired);
/// assert_eq!(err.to_string(), "expired: expired at 2026-01-01T00:00:00Z");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind, for matching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, for people.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
