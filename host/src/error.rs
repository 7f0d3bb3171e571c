//! The host's error type: a matchable kind and a message.

use std::fmt;

/// What went wrong, for programs to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid.
    Config,
    /// NATS could not be reached or a NATS operation failed.
    Nats,
    /// Claims did not verify; [`Error::claims_kind`] says which check failed.
    Claims,
    /// The bytes are not a valid component, or exceed a limit.
    InvalidComponent,
    /// The actor, provider or link does not exist here.
    NotFound,
    /// The actor is already running with another module.
    Conflict,
    /// The request is malformed.
    BadRequest,
    /// An I/O error (reading a module).
    Io,
    /// The guest trapped, ran out of time or failed.
    Guest,
    /// The operation did not finish in time.
    Timeout,
    /// The host is shutting down.
    ShuttingDown,
}

/// An error from the host.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    claims: Option<trellis_claims::ErrorKind>,
    message: String,
}

impl Error {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            claims: None,
            message: message.into(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For [`ErrorKind::Claims`], which check failed.
    pub fn claims_kind(&self) -> Option<trellis_claims::ErrorKind> {
        self.claims
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<trellis_claims::Error> for Error {
    fn from(e: trellis_claims::Error) -> Self {
        let kind = match e.kind() {
            trellis_claims::ErrorKind::InvalidWasm => ErrorKind::InvalidComponent,
            trellis_claims::ErrorKind::Io => ErrorKind::Io,
            _ => ErrorKind::Claims,
        };
        Self {
            kind,
            claims: Some(e.kind()),
            message: e.to_string(),
        }
    }
}

/// Result alias of the host.
pub type Result<T, E = Error> = std::result::Result<T, E>;
