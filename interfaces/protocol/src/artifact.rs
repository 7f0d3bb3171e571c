//! Artifact references: where an actor module or a provider archive comes
//! from (`docs/protocol.md` §5.5, "Artifact references").
//!
//! A reference is one of three kinds:
//!
//! | form | kind |
//! |---|---|
//! | `oci://registry[:port]/repository[:tag][@sha256:…]` | an OCI registry |
//! | `registry[:port]/repository[:tag][@sha256:…]`, whose first segment holds a `.` or a `:`, or is `localhost` (what `wash` and `docker` users type) | an OCI registry |
//! | `lattice://name[:version][@sha256:…]`, or `name[:version][@sha256:…]` with no `/` | the lattice's own object store |
//! | `file:///absolute/path`, a path starting with `/`, `./` or `../`, or ending in `.wasm`, `.par` or `.par.gz` | a file on the host |
//!
//! A missing tag or version is `latest`. Parsing is pure: nothing is
//! fetched or checked for existence here.
//!
//! # Examples
//!
//! ```
//! use trellis_protocol::artifact::ArtifactRef;
//!
//! let oci: ArtifactRef = "localhost:5000/actors/hello:0.1.0".parse().unwrap();
//! assert_eq!(oci.to_string(), "oci://localhost:5000/actors/hello:0.1.0");
//!
//! let lattice: ArtifactRef = "hello:0.1.0".parse().unwrap();
//! assert_eq!(lattice.to_string(), "lattice://hello:0.1.0");
//!
//! let file: ArtifactRef = "build/hello.signed.wasm".parse().unwrap();
//! assert_eq!(file, ArtifactRef::File("build/hello.signed.wasm".into()));
//!
//! assert!("oci://localhost:5000/Hello".parse::<ArtifactRef>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

/// The tag or version a reference without one names.
pub const DEFAULT_TAG: &str = "latest";

/// Longest reference accepted, in bytes. Defaults to 1,024.
pub const MAX_REFERENCE_BYTES: usize = 1024;

/// Where an artifact comes from. See the [module](self) for the forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArtifactRef {
    /// A file on the host: a path, allowed only under the host's artifact
    /// directories.
    File(String),
    /// An artifact in the lattice's object store.
    Lattice(LatticeRef),
    /// An artifact in an OCI registry.
    Oci(OciRef),
}

/// An artifact in the lattice's object store, by name and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LatticeRef {
    /// Its name: lowercase letters, digits, `.`, `_` and `-`, 1 to 128
    /// bytes.
    pub name: String,
    /// Its version. Defaults to [`DEFAULT_TAG`].
    pub version: String,
    /// The SHA-256 digest it must have (`sha256:` and 64 lowercase hex
    /// digits), if the reference pins one.
    pub digest: Option<String>,
}

impl LatticeRef {
    /// The object's name in the lattice's object store: `{name}:{version}`.
    pub fn object_name(&self) -> String {
        format!("{}:{}", self.name, self.version)
    }
}

/// An artifact in an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciRef {
    /// The registry's host, with its port if any (`localhost:5000`).
    pub registry: String,
    /// The repository: lowercase path components separated by `/`.
    pub repository: String,
    /// The tag. Defaults to [`DEFAULT_TAG`] when neither tag nor digest is
    /// given; `None` when only a digest is.
    pub tag: Option<String>,
    /// The manifest's digest (`sha256:…`), if the reference pins one.
    pub digest: Option<String>,
}

impl OciRef {
    /// The reference in the form registries and `docker` understand,
    /// without a scheme: `registry/repository[:tag][@digest]`.
    pub fn whole(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }
}

/// A reference that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidReference {
    /// The reference is empty or longer than [`MAX_REFERENCE_BYTES`].
    #[error("an artifact reference must be 1 to 1024 bytes")]
    Length,
    /// A `file://` reference is not an absolute path.
    #[error("a file:// reference must hold an absolute path")]
    RelativeFileUrl,
    /// An OCI reference has no registry or no repository.
    #[error("an OCI reference needs a registry and a repository: {0:?}")]
    MissingPart(String),
    /// The registry is not a host name with an optional port.
    #[error("invalid registry {0:?}")]
    Registry(String),
    /// A repository or lattice name has characters outside the grammar.
    #[error("invalid repository or name {0:?}: lowercase letters, digits and separators only")]
    Name(String),
    /// The tag or version is outside `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    #[error("invalid tag or version {0:?}")]
    Tag(String),
    /// The digest is not `sha256:` and 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected sha256: and 64 lowercase hex digits")]
    Digest(String),
}

impl FromStr for ArtifactRef {
    type Err = InvalidReference;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_REFERENCE_BYTES {
            return Err(InvalidReference::Length);
        }
        if let Some(path) = s.strip_prefix("file://") {
            return if path.starts_with('/') {
                Ok(Self::File(path.to_owned()))
            } else {
                Err(InvalidReference::RelativeFileUrl)
            };
        }
        if let Some(rest) = s.strip_prefix("oci://") {
            return parse_oci(rest).map(Self::Oci);
        }
        if let Some(rest) = s.strip_prefix("lattice://") {
            return parse_lattice(rest).map(Self::Lattice);
        }
        let looks_like_path = s.starts_with('/')
            || s.starts_with("./")
            || s.starts_with("../")
            || [".wasm", ".par", ".par.gz"]
                .iter()
                .any(|ext| s.ends_with(ext));
        if looks_like_path {
            return Ok(Self::File(s.to_owned()));
        }
        if let Some((first, _)) = s.split_once('/') {
            if first.contains(['.', ':']) || first == "localhost" {
                return parse_oci(s).map(Self::Oci);
            }
            return Ok(Self::File(s.to_owned()));
        }
        parse_lattice(s).map(Self::Lattice)
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) if path.starts_with('/') => write!(f, "file://{path}"),
            Self::File(path) => f.write_str(path),
            Self::Lattice(r) => {
                write!(f, "lattice://{}:{}", r.name, r.version)?;
                match &r.digest {
                    Some(d) => write!(f, "@{d}"),
                    None => Ok(()),
                }
            }
            Self::Oci(r) => write!(f, "oci://{}", r.whole()),
        }
    }
}

/// Splits `rest` into (before, digest) at an `@`, checking the digest.
fn split_digest(rest: &str) -> Result<(&str, Option<String>), InvalidReference> {
    match rest.rsplit_once('@') {
        Some((before, digest)) => {
            check_digest(digest)?;
            Ok((before, Some(digest.to_owned())))
        }
        None => Ok((rest, None)),
    }
}

/// Checks a `sha256:` digest.
///
/// # Errors
///
/// [`InvalidReference::Digest`] unless it is `sha256:` and 64 lowercase hex
/// digits.
pub fn check_digest(digest: &str) -> Result<(), InvalidReference> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(())
    } else {
        Err(InvalidReference::Digest(digest.to_owned()))
    }
}

fn check_tag(tag: &str) -> Result<(), InvalidReference> {
    let mut bytes = tag.bytes();
    let ok = tag.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidReference::Tag(tag.to_owned()))
    }
}

/// One path component of a repository or a lattice name: lowercase
/// letters and digits, separated by single `.`, `_` or `-` (two `_` too,
/// as the OCI distribution grammar allows).
fn check_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && !component.contains("..")
        && !component.contains("--.")
        && bytes
            .iter()
            .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
}

fn parse_oci(rest: &str) -> Result<OciRef, InvalidReference> {
    let (before, digest) = split_digest(rest)?;
    let (registry, path) = before
        .split_once('/')
        .ok_or_else(|| InvalidReference::MissingPart(rest.to_owned()))?;
    if registry.is_empty() || path.is_empty() {
        return Err(InvalidReference::MissingPart(rest.to_owned()));
    }
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !host_ok || !port_ok {
        return Err(InvalidReference::Registry(registry.to_owned()));
    }
    // A tag follows the last `:` after the last `/`.
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
        _ => (path, None),
    };
    if !repository.split('/').all(check_component) || repository.len() > 255 {
        return Err(InvalidReference::Name(repository.to_owned()));
    }
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    let tag = match (tag, &digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_TAG.to_owned()),
    };
    Ok(OciRef {
        registry: registry.to_owned(),
        repository: repository.to_owned(),
        tag,
        digest,
    })
}

fn parse_lattice(rest: &str) -> Result<LatticeRef, InvalidReference> {
    let (before, digest) = split_digest(rest)?;
    let (name, version) = match before.split_once(':') {
        Some((name, version)) => (name, version),
        None => (before, DEFAULT_TAG),
    };
    if name.len() > 128 || !check_component(name) {
        return Err(InvalidReference::Name(name.to_owned()));
    }
    check_tag(version)?;
    Ok(LatticeRef {
        name: name.to_owned(),
        version: version.to_owned(),
        digest,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(s: &str) -> ArtifactRef {
        s.parse().unwrap()
    }

    #[test]
    fn each_form_parses_to_its_kind() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse("oci://ghcr.io/org/hello:1.0"),
            ArtifactRef::Oci(OciRef {
                registry: "ghcr.io".into(),
                repository: "org/hello".into(),
                tag: Some("1.0".into()),
                digest: None,
            })
        );
        assert_eq!(
            parse(&format!("localhost:5000/hello@{digest}")),
            ArtifactRef::Oci(OciRef {
                registry: "localhost:5000".into(),
                repository: "hello".into(),
                tag: None,
                digest: Some(digest.clone()),
            })
        );
        assert_eq!(
            parse("registry.local/a/b"),
            ArtifactRef::Oci(OciRef {
                registry: "registry.local".into(),
                repository: "a/b".into(),
                tag: Some(DEFAULT_TAG.into()),
                digest: None,
            })
        );
        assert_eq!(
            parse("hello"),
            ArtifactRef::Lattice(LatticeRef {
                name: "hello".into(),
                version: DEFAULT_TAG.into(),
                digest: None,
            })
        );
        assert_eq!(
            parse(&format!("lattice://kv-counter:0.2.0@{digest}")),
            ArtifactRef::Lattice(LatticeRef {
                name: "kv-counter".into(),
                version: "0.2.0".into(),
                digest: Some(digest),
            })
        );
        assert_eq!(
            parse("file:///srv/a.wasm"),
            ArtifactRef::File("/srv/a.wasm".into())
        );
        assert_eq!(parse("/srv/a"), ArtifactRef::File("/srv/a".into()));
        assert_eq!(
            parse("build/x.par.gz"),
            ArtifactRef::File("build/x.par.gz".into())
        );
        assert_eq!(parse("build/x"), ArtifactRef::File("build/x".into()));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "oci://ghcr.io/org/hello:1.0",
            "oci://localhost:5000/hello:latest",
            "lattice://hello:0.1.0",
            "file:///srv/actors/hello.wasm",
            "build/hello.wasm",
        ] {
            assert_eq!(parse(s).to_string(), s);
            assert_eq!(parse(&parse(s).to_string()), parse(s));
        }
    }

    #[test]
    fn bad_references_are_refused_by_kind() {
        let err = |s: &str| s.parse::<ArtifactRef>().unwrap_err();
        assert_eq!(err(""), InvalidReference::Length);
        assert_eq!(err(&"a".repeat(2000)), InvalidReference::Length);
        assert_eq!(err("file://relative/x"), InvalidReference::RelativeFileUrl);
        assert!(matches!(
            err("oci://hello"),
            InvalidReference::MissingPart(_)
        ));
        assert!(matches!(
            err("oci://bad_host/x"),
            InvalidReference::Registry(_)
        ));
        assert!(matches!(
            err("oci://r.io:0/x"),
            InvalidReference::Registry(_)
        ));
        assert!(matches!(err("oci://r.io/Upper"), InvalidReference::Name(_)));
        assert!(matches!(err("oci://r.io/x:-bad"), InvalidReference::Tag(_)));
        assert!(matches!(
            err("oci://r.io/x@sha256:12"),
            InvalidReference::Digest(_)
        ));
        assert!(matches!(err("Hello:1"), InvalidReference::Name(_)));
        assert!(matches!(err("hello:a b"), InvalidReference::Tag(_)));
    }
}
