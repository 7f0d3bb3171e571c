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
    /// The policy service denied the action, or could not be asked.
    Denied,
    /// An artifact could not be pulled: over its size limit, not matching
    /// its digest, or its store failed; [`Error::artifact_kind`] says which.
    Artifact,
}

/// An error from the host: a kind to match on and the error that caused it
/// (its [`std::error::Error::source`]), in the style of async-nats'
/// `Error<Kind>`. Its [`fmt::Display`] form is the cause's message.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl Error {
    /// An error of `kind` described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            source: message.into().into(),
        }
    }

    /// An error of `kind` caused by `source`, which is kept.
    pub fn with_source(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            source: Box::new(source),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Which claims check failed, for [`ErrorKind::Claims`] (and an
    /// invalid or unreadable module found while checking claims).
    pub fn claims_kind(&self) -> Option<trellis_claims::ErrorKind> {
        self.source
            .downcast_ref::<trellis_claims::Error>()
            .map(trellis_claims::Error::kind)
    }

    /// Why an artifact could not be pulled, for [`ErrorKind::Artifact`]
    /// (and the not-found and timeout errors of a pull).
    pub fn artifact_kind(&self) -> Option<trellis_lattice_client::artifacts::ArtifactErrorKind> {
        self.source
            .downcast_ref::<trellis_lattice_client::artifacts::ArtifactError>()
            .map(trellis_lattice_client::Error::kind)
    }

    /// The message, for people.
    pub fn message(&self) -> String {
        self.source.to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl From<trellis_claims::Error> for Error {
    fn from(e: trellis_claims::Error) -> Self {
        let kind = match e.kind() {
            trellis_claims::ErrorKind::InvalidWasm => ErrorKind::InvalidComponent,
            trellis_claims::ErrorKind::Io => ErrorKind::Io,
            _ => ErrorKind::Claims,
        };
        Self::with_source(kind, e)
    }
}

/// A result whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
