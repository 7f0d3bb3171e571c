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

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use sha2::{Digest as _, Sha256};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::jwt::{self, Claims, VerifyOptions};
use crate::keys::{KeyKind, KeyPair, expect_public_key};
use crate::wasm::{lower_hex, sha256_hex};

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
        let mut binaries = BTreeMap::new();
        let token = read_archive(bytes, limits, |target, entry| {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| invalid(format!("corrupt entry for {target}: {e}")))?;
            let len = data.len() as u64;
            binaries.insert(target.to_owned(), data);
            Ok(len)
        })?;
        Ok(Self { token, binaries })
    }

    /// Streams a `.par.gz` archive from `reader` and writes the binary for
    /// `target` to `out`, reading the others only to check the archive.
    /// Memory use is one copy buffer (8 KiB), whatever the binaries' size.
    /// Nothing is verified: pass the result to
    /// [`ExtractedBinary::verify`] before running what was written.
    ///
    /// # Errors
    ///
    /// As [`ProviderArchive::from_bytes`]; [`ErrorKind::Io`] if writing to
    /// `out` fails.
    pub fn extract<R: Read, W: Write>(
        reader: R,
        target: &str,
        mut out: W,
        limits: &ArchiveLimits,
    ) -> Result<ExtractedBinary> {
        let mut hash = None;
        let token = read_archive(reader, limits, |name, entry| {
            if name != target {
                return std::io::copy(entry, &mut std::io::sink())
                    .map_err(|e| invalid(format!("corrupt entry for {name}: {e}")));
            }
            let mut hasher = Sha256::new();
            let mut buffer = [0u8; COPY_BUFFER_BYTES];
            let mut len = 0u64;
            loop {
                let n = entry
                    .read(&mut buffer)
                    .map_err(|e| invalid(format!("corrupt entry for {name}: {e}")))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                out.write_all(&buffer[..n])?;
                len += n as u64;
            }
            hash = Some(lower_hex(&hasher.finalize()));
            Ok(len)
        })?;
        out.flush()?;
        Ok(ExtractedBinary {
            token,
            target: target.to_owned(),
            hash,
        })
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

/// Bytes copied at a time by [`ProviderArchive::extract`]: 8 KiB.
const COPY_BUFFER_BYTES: usize = 8 * 1024;

/// What [`ProviderArchive::extract`] read: the claims and the hash of the
/// binary it wrote, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedBinary {
    /// The claims token.
    pub token: String,
    /// The target that was asked for.
    pub target: String,
    /// Lowercase hex SHA-256 of what was written, or `None` when the
    /// archive has no binary for the target (nothing was written).
    pub hash: Option<String>,
}

impl ExtractedBinary {
    /// Verifies the claims (see [`jwt::verify`]; the subject must be a
    /// provider key) and that the binary written hashes to the claims'
    /// value for its target.
    ///
    /// # Errors
    ///
    /// Every kind [`jwt::verify`] returns; [`ErrorKind::HashMismatch`] if
    /// the binary differs from the claims or the claims do not list the
    /// target; [`ErrorKind::InvalidArchive`] if the archive has no binary
    /// for the target.
    pub fn verify(&self, options: &VerifyOptions) -> Result<Claims<ProviderMetadata>> {
        let options = options.clone().with_subject_kind(KeyKind::Provider);
        let claims: Claims<ProviderMetadata> = jwt::verify(&self.token, &options)?;
        let Some(hash) = &self.hash else {
            return Err(invalid(format!(
                "the archive has no binary for {}",
                self.target
            )));
        };
        match claims.trellis.target_hashes.get(&self.target) {
            Some(expected) if expected == hash => Ok(claims),
            Some(_) => Err(Error::new(
                ErrorKind::HashMismatch,
                format!("binary for {} was changed after signing", self.target),
            )),
            None => Err(Error::new(
                ErrorKind::HashMismatch,
                format!("binary for {} is not in the claims", self.target),
            )),
        }
    }
}

/// Reads every entry of a `.par.gz` stream within `limits`: checks entry
/// kinds, names, counts and sizes, hands each binary's contents to `binary`
/// (with its target; it returns the bytes it read), checks the gzip
/// trailer, and returns the claims token.
fn read_archive<R: Read>(
    reader: R,
    limits: &ArchiveLimits,
    mut binary: impl FnMut(&str, &mut dyn Read) -> Result<u64>,
) -> Result<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut token = None;
    let mut seen = BTreeSet::new();
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
        if !seen.insert(name.clone()) {
            return Err(invalid(format!("duplicate entry {name}")));
        }
        let mut limited = entry.take(limits.max_entry_bytes + 1);
        let len = if name == CLAIMS_ENTRY {
            let mut data = String::new();
            limited
                .read_to_string(&mut data)
                .map_err(|_| invalid("claims.jwt is not UTF-8"))?;
            let len = data.len() as u64;
            token = Some(data);
            len
        } else if let Some(target) = name.strip_suffix(BINARY_SUFFIX) {
            check_target_name(target)?;
            binary(target, &mut limited)?
        } else {
            return Err(invalid(format!("unexpected entry {name:?}")));
        };
        if len > limits.max_entry_bytes {
            return Err(invalid(format!(
                "entry {name} exceeds {} bytes",
                limits.max_entry_bytes
            )));
        }
        total += len;
        if total > limits.max_total_bytes {
            return Err(invalid(format!(
                "archive exceeds {} bytes",
                limits.max_total_bytes
            )));
        }
    }
    // Read the rest of the gzip stream so that its CRC and length are
    // checked: a cut or corrupted archive is refused even when the tar
    // entries happen to be complete.
    std::io::copy(
        &mut archive.into_inner().take(limits.max_total_bytes),
        &mut std::io::sink(),
    )
    .map_err(|e| invalid(format!("corrupt gzip stream: {e}")))?;
    token.ok_or_else(|| Error::new(ErrorKind::NoClaims, "the archive has no claims.jwt"))
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
