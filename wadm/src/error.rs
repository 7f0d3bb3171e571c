//! wadm's error type: a matchable [`ErrorKind`] with a message and the
//! source it came from.

use std::fmt;

use trellis_protocol::ctl::CtlFailure;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// NATS or JetStream failed.
    Nats,
    /// No answer in time.
    Timeout,
    /// The request or manifest is invalid.
    BadRequest,
    /// No such application or version.
    NotFound,
    /// The request conflicts with what is stored (a version with other
    /// content, deleting what is deployed).
    Conflict,
    /// The request was not signed by a trusted control credential with
    /// the scope it needs.
    Denied,
    /// The configuration is invalid.
    Config,
    /// A stored value does not decode, or another internal failure.
    Internal,
}

impl ErrorKind {
    /// The failure class of a wadm API reply for this kind.
    pub fn failure(self) -> CtlFailure {
        match self {
            ErrorKind::BadRequest | ErrorKind::Config => CtlFailure::BadRequest,
            ErrorKind::NotFound => CtlFailure::NotFound,
            ErrorKind::Conflict => CtlFailure::Conflict,
            ErrorKind::Denied => CtlFailure::Denied,
            ErrorKind::Nats | ErrorKind::Timeout | ErrorKind::Internal => CtlFailure::Failed,
        }
    }
}

/// A wadm failure.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` that keeps its `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
