//! Provider claims and provider archives (`.par.gz`).
//!
//! A provider archive is a gzip-compressed tar (POSIX ustar) holding:
//!
//! - `claims.jwt`: the provider's claims, a JWT signed by an account key with
//!   a provider key (`V…`) as subject;
//! - `{target}.bin`: one executable per target, where `{target}` is
//!   `{arch}-{os}` as Rust names them (`x86_64-linux`, `aarch64-linux`,
//!   `aarch64-macos`, ...; see [`current_target`]).
//!
//! The claims carry the SHA-256 of every binary, so that a binary swapped or
//! added after signing is refused.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::jwt::{self, Claims, VerifyOptions};
use crate::keys::{KeyKind, KeyPair, expect_public_key};
use crate::wasm::sha256_hex;

/// Name of the claims entry in an archive.
pub const CLAIMS_ENTRY: &str = "claims.jwt";
/// Suffix of binary entries in an archive.
pub const BINARY_SUFFIX: &str = ".bin";

/// The Trellis metadata of a provider's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// Human-friendly name.
    pub name: String,
    /// The contract the provider serves, e.g. `wasi:keyvalue`.
    pub contract_id: String,
    /// Who makes it.
    #[serde(default)]
    pub vendor: String,
    /// Revision. Defaults to 0.
    #[serde(default)]
    pub rev: u32,
    /// Human-friendly version.
    #[serde(default)]
    pub ver: Option<String>,
    /// Lowercase hex SHA-256 of each binary, by target.
    pub target_hashes: BTreeMap<String, String>,
}

/// The target this build runs on, in archive naming: `{arch}-{os}`.
///
/// # Examples
///
/// ```
/// let target = trellis_claims::provider::current_target();
/// assert_eq!(target, format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS));
/// ```
pub fn current_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// Limits applied when reading an archive. Defaults in [`Default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most entries accepted. Defaults to 32.
    pub max_entries: usize,
    /// Largest single entry, uncompressed, in bytes. Defaults to 256 MiB.
    pub max_entry_bytes: u64,
    /// Largest total of all entries, uncompressed, in bytes. Defaults to 512 MiB.
    pub max_total_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_entries: 32,
            max_entry_bytes: 256 * 1024 * 1024,
            max_total_bytes: 512 * 1024 * 1024,
        }
    }
}

/// The contents of a provider archive, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderArchive {
    /// The claims token.
    pub token: String,
    /// Executables, by target.
    pub binaries: BTreeMap<String, Vec<u8>>,
}

/// What to write into a provider's claims, apart from the hashes, which
/// [`ProviderArchive::create`] computes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderClaimsRequest {
    /// Human-friendly name.
    pub name: String,
    /// Contract id served.
    pub contract_id: String,
    /// Vendor. Defaults to empty.
    pub vendor: String,
    /// Revision. Defaults to 0.
    pub rev: u32,
    /// Version. Defaults to none.
    pub ver: Option<String>,
    /// Expiry, in seconds since the Unix epoch. Defaults to none (never).
    pub expires: Option<u64>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArchive, message)
}

impl ProviderArchive {
    /// Signs claims for `binaries` (by target) and assembles the archive.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WrongKeyKind`] if `issuer` is not an account key or
    /// `subject` not a provider key; [`ErrorKind::InvalidArchive`] if there
    /// are no binaries or a target name is not a plain file name.
    pub fn create(
        request: &ProviderClaimsRequest,
        binaries: BTreeMap<String, Vec<u8>>,
        issuer: &KeyPair,
        subject: &KeyPair,
    ) -> Result<(Self, Claims<ProviderMetadata>)> {
        expect_public_key(&subject.public_key(), KeyKind::Provider)?;
        if binaries.is_empty() {
            return Err(invalid("a provider archive needs at least one binary"));
        }
        for target in binaries.keys() {
            check_target_name(target)?;
        }
        let target_hashes = binaries
            .iter()
            .map(|(t, b)| (t.clone(), sha256_hex(b)))
            .collect();
        let mut claims = Claims::new(
            subject.public_key(),
            ProviderMetadata {
                name: request.name.clone(),
                contract_id: request.contract_id.clone(),
                vendor: request.vendor.clone(),
                rev: request.rev,
                ver: request.ver.clone(),
                target_hashes,
            },
        );
        claims.exp = request.expires;
        let token = jwt::sign(&mut claims, issuer, KeyKind::Account)?;
        Ok((Self { token, binaries }, claims))
    }

    /// Writes the archive as `.par.gz` bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if compression fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut builder = tar::Builder::new(gz);
        let mut append = |name: &str, data: &[u8], mode: u32| -> Result<()> {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, name, data)?;
            Ok(())
        };
        append(CLAIMS_ENTRY, self.token.as_bytes(), 0o644)?;
        for (target, binary) in &self.binaries {
            append(&format!("{target}{BINARY_SUFFIX}"), binary, 0o755)?;
        }
        let gz = builder.into_inner()?;
        Ok(gz.finish()?)
    }

    /// Reads an archive from `.par.gz` bytes within `limits`, without
    /// verifying it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArchive`] for a corrupt archive, an unexpected,
    /// duplicate or oversized entry, or a missing `claims.jwt`.
    pub fn from_bytes(bytes: &[u8], limits: &ArchiveLimits) -> Result<Self> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let (token, binaries) = Self::read_entries(&mut archive, limits)?;
        // Read the rest of the gzip stream so that its CRC and length are
        // checked: a cut or corrupted archive is refused even when the tar
        // entries happen to be complete.
        std::io::copy(
            &mut archive.into_inner().take(limits.max_total_bytes),
            &mut std::io::sink(),
        )
        .map_err(|e| invalid(format!("corrupt gzip stream: {e}")))?;
        let token = token
            .ok_or_else(|| Error::new(ErrorKind::NoClaims, "the archive has no claims.jwt"))?;
        Ok(Self { token, binaries })
    }

    #[allow(clippy::type_complexity)]
    fn read_entries<R: Read>(
        archive: &mut tar::Archive<R>,
        limits: &ArchiveLimits,
    ) -> Result<(Option<String>, BTreeMap<String, Vec<u8>>)> {
        let mut token = None;
        let mut binaries = BTreeMap::new();
        let mut total = 0u64;
        let entries = archive
            .entries()
            .map_err(|e| invalid(format!("not a tar.gz archive: {e}")))?;
        for (index, entry) in entries.enumerate() {
            if index >= limits.max_entries {
                return Err(invalid(format!("more than {} entries", limits.max_entries)));
            }
            let entry = entry.map_err(|e| invalid(format!("corrupt entry: {e}")))?;
            if !entry.header().entry_type().is_file() {
                return Err(invalid("archives hold only regular files"));
            }
            let name = entry
                .path()
                .map_err(|e| invalid(format!("bad entry name: {e}")))?
                .to_str()
                .ok_or_else(|| invalid("entry name is not UTF-8"))?
                .to_owned();
            let mut data = Vec::new();
            entry
                .take(limits.max_entry_bytes + 1)
                .read_to_end(&mut data)
                .map_err(|e| invalid(format!("corrupt entry {name}: {e}")))?;
            if data.len() as u64 > limits.max_entry_bytes {
                return Err(invalid(format!(
                    "entry {name} exceeds {} bytes",
                    limits.max_entry_bytes
                )));
            }
            total += data.len() as u64;
            if total > limits.max_total_bytes {
                return Err(invalid(format!(
                    "archive exceeds {} bytes",
                    limits.max_total_bytes
                )));
            }
            if name == CLAIMS_ENTRY {
                if token.is_some() {
                    return Err(invalid("duplicate claims.jwt"));
                }
                token =
                    Some(String::from_utf8(data).map_err(|_| invalid("claims.jwt is not UTF-8"))?);
            } else if let Some(target) = name.strip_suffix(BINARY_SUFFIX) {
                check_target_name(target)?;
                if binaries.insert(target.to_owned(), data).is_some() {
                    return Err(invalid(format!("duplicate entry {name}")));
                }
            } else {
                return Err(invalid(format!("unexpected entry {name:?}")));
            }
        }
        Ok((token, binaries))
    }

    /// Verifies the claims (see [`jwt::verify`]; the subject must be a
    /// provider key) and that every binary hashes to the value in them, with
    /// no binary missing or extra.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::HashMismatch`] if a binary differs from, or is missing
    /// from, the claims' hashes; every kind [`jwt::verify`] returns.
    pub fn verify(&self, options: &VerifyOptions) -> Result<Claims<ProviderMetadata>> {
        let options = options.clone().with_subject_kind(KeyKind::Provider);
        let claims: Claims<ProviderMetadata> = jwt::verify(&self.token, &options)?;
        let hashes = &claims.trellis.target_hashes;
        for (target, binary) in &self.binaries {
            match hashes.get(target) {
                Some(expected) if *expected == sha256_hex(binary) => {}
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::HashMismatch,
                        format!("binary for {target} was changed after signing"),
                    ));
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::HashMismatch,
                        format!("binary for {target} is not in the claims"),
                    ));
                }
            }
        }
        if let Some(missing) = hashes.keys().find(|t| !self.binaries.contains_key(*t)) {
            return Err(Error::new(
                ErrorKind::HashMismatch,
                format!("binary for {missing} is missing from the archive"),
            ));
        }
        Ok(claims)
    }
}

fn check_target_name(target: &str) -> Result<()> {
    let ok = !target.is_empty()
        && target.len() <= 64
        && target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("bad target name {target:?}")))
    }
}
