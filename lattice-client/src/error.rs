//! [`Error<Kind>`]: a matchable kind plus the error that caused it, in the
//! style of async-nats' `Error<Kind>`. The RPC layer, the host and the
//! provider SDK all use it with kinds of their own.

use std::fmt;

/// An error of kind `K`, keeping the error that caused it (if any) as its
/// [`std::error::Error::source`]. Programs match on [`Error::kind`]; people
/// read the [`fmt::Display`] form, `{kind}: {source}`.
///
/// # Examples
///
/// ```
/// use trellis_lattice_client::Error;
///
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum Kind { Io }
/// impl std::fmt::Display for Kind {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("I/O") }
/// }
///
/// let err = Error::with_source(Kind::Io, std::io::Error::other("disk full"));
/// assert_eq!(err.kind(), Kind::Io);
/// assert_eq!(err.to_string(), "I/O: disk full");
/// assert!(std::error::Error::source(&err).is_some());
/// ```
pub struct Error<K> {
    kind: K,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl<K: Copy> Error<K> {
    /// An error of `kind` with no source.
    pub fn new(kind: K) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source` (anything that converts into a
    /// boxed error, including a `String`).
    pub fn with_source(
        kind: K,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong, for programs.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// The cause's message alone (empty without a source), for replies that
    /// carry the kind separately.
    pub fn detail(&self) -> String {
        self.source
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}

impl<K: fmt::Debug> fmt::Debug for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl<K: fmt::Display> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl<K: fmt::Debug + fmt::Display> std::error::Error for Error<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl<K: Copy> From<K> for Error<K> {
    fn from(kind: K) -> Self {
        Self::new(kind)
    }
}
