//! Embedding claims in WebAssembly binaries.
//!
//! The token is stored in a custom section named [`CLAIMS_SECTION`] at the
//! top level of a core module or a component (custom sections have id 0 in
//! both; see the WebAssembly core specification, section 5.5.3, and the
//! component-model binary format). The module hash is the SHA-256 of the
//! binary with every such section removed, so signing does not change what
//! it signs and tampering with any other byte changes the hash.

use sha2::{Digest, Sha256};
use wasmparser::BinaryReader;

use crate::error::{Error, ErrorKind, Result};

/// Name of the custom section holding the claims token.
pub const CLAIMS_SECTION: &str = "trellis.claims";

/// The kinds of WebAssembly binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A core module (version 1).
    Module,
    /// A component (component-model layer 1).
    Component,
}

const MAGIC: [u8; 4] = *b"\0asm";
const MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// One top-level section: its byte range in the binary and, for custom
/// sections, whether it is the claims section.
struct Section {
    start: usize,
    end: usize,
    is_claims: Option<String>,
}

/// Reads the 8-byte preamble.
///
/// # Errors
///
/// [`ErrorKind::InvalidWasm`] if `wasm` is not a core module or component.
pub fn binary_kind(wasm: &[u8]) -> Result<BinaryKind> {
    let invalid = || {
        Error::new(
            ErrorKind::InvalidWasm,
            "not a WebAssembly module or component (bad preamble)",
        )
    };
    let (magic, rest) = wasm.split_first_chunk::<4>().ok_or_else(invalid)?;
    let (version, _) = rest.split_first_chunk::<4>().ok_or_else(invalid)?;
    if *magic != MAGIC {
        return Err(invalid());
    }
    match *version {
        MODULE_VERSION => Ok(BinaryKind::Module),
        COMPONENT_VERSION => Ok(BinaryKind::Component),
        _ => Err(invalid()),
    }
}

/// Splits the binary into its top-level sections without looking inside
/// them (nested modules and code stay opaque).
fn sections(wasm: &[u8]) -> Result<Vec<Section>> {
    binary_kind(wasm)?;
    let mut reader = BinaryReader::new(&wasm[8..], 8);
    let mut out = Vec::new();
    while !reader.eof() {
        let start = reader.original_position();
        let bad = |e: wasmparser::BinaryReaderError| {
            Error::new(
                ErrorKind::InvalidWasm,
                format!("malformed section at byte {start}: {e}"),
            )
        };
        let id = reader.read_u8().map_err(bad)?;
        let size = reader.read_var_u32().map_err(bad)? as usize;
        let body_start = reader.original_position();
        let body = reader.read_bytes(size).map_err(bad)?;
        let is_claims = if id == 0 {
            let mut name_reader = BinaryReader::new(body, body_start);
            let name = name_reader.read_string().map_err(bad)?;
            (name == CLAIMS_SECTION).then(|| {
                let data_at = name_reader.original_position() - body_start;
                String::from_utf8_lossy(&body[data_at..]).into_owned()
            })
        } else {
            None
        };
        out.push(Section {
            start,
            end: reader.original_position(),
            is_claims,
        });
    }
    Ok(out)
}

/// The binary with every claims section removed.
///
/// # Errors
///
/// [`ErrorKind::InvalidWasm`] if the top-level section framing is malformed.
pub fn strip_claims(wasm: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(wasm.len());
    out.extend_from_slice(&wasm[..8.min(wasm.len())]);
    for section in sections(wasm)? {
        if section.is_claims.is_none() {
            out.extend_from_slice(&wasm[section.start..section.end]);
        }
    }
    Ok(out)
}

/// Lowercase hex SHA-256 of the binary without its claims section.
///
/// # Errors
///
/// [`ErrorKind::InvalidWasm`] if the top-level section framing is malformed.
pub fn module_hash(wasm: &[u8]) -> Result<String> {
    Ok(sha256_hex(&strip_claims(wasm)?))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    lower_hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex, two digits a byte.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The claims token embedded in `wasm`, if any.
///
/// # Errors
///
/// [`ErrorKind::InvalidWasm`] if the framing is malformed or the binary has
/// more than one claims section (an attacker could otherwise hope that two
/// readers pick different ones).
pub fn extract_token(wasm: &[u8]) -> Result<Option<String>> {
    let mut tokens = sections(wasm)?.into_iter().filter_map(|s| s.is_claims);
    let first = tokens.next();
    if tokens.next().is_some() {
        return Err(Error::new(
            ErrorKind::InvalidWasm,
            "the binary has more than one claims section",
        ));
    }
    Ok(first)
}

/// `wasm` with any claims section replaced by one holding `token`, appended
/// at the end.
///
/// # Errors
///
/// [`ErrorKind::InvalidWasm`] if the framing is malformed.
pub fn embed_token(wasm: &[u8], token: &str) -> Result<Vec<u8>> {
    let mut out = strip_claims(wasm)?;
    append_custom_section(&mut out, CLAIMS_SECTION, token.as_bytes());
    Ok(out)
}

/// Appends a custom section (id 0, then the size-prefixed name and data).
fn append_custom_section(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    use wasm_encoder::{Encode as _, Section as _};
    let section = wasm_encoder::CustomSection {
        name: name.into(),
        data: data.into(),
    };
    out.push(section.id());
    section.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_round_trips_and_keeps_the_hash_for_modules_and_components() {
        for (kind, wasm) in [
            (
                BinaryKind::Module,
                wat::parse_str("(module (func (export \"f\") (result i32) i32.const 7))").unwrap(),
            ),
            (
                BinaryKind::Component,
                wat::parse_str("(component (core module (func (export \"f\"))))").unwrap(),
            ),
        ] {
            assert_eq!(binary_kind(&wasm).unwrap(), kind);
            let hash = module_hash(&wasm).unwrap();
            let signed = embed_token(&wasm, "a.b.c").unwrap();
            assert_eq!(binary_kind(&signed).unwrap(), kind);
            assert_eq!(extract_token(&signed).unwrap().as_deref(), Some("a.b.c"));
            assert_eq!(module_hash(&signed).unwrap(), hash);
            assert_eq!(strip_claims(&signed).unwrap(), wasm);
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                .validate_all(&signed)
                .unwrap();
            let resigned = embed_token(&signed, "d.e.f").unwrap();
            assert_eq!(extract_token(&resigned).unwrap().as_deref(), Some("d.e.f"));
        }
    }

    #[test]
    fn garbage_is_invalid_wasm() {
        for bad in [&b""[..], b"\0asm", b"hello world!", b"\0asm\x02\0\0\0"] {
            assert_eq!(module_hash(bad).unwrap_err().kind(), ErrorKind::InvalidWasm);
        }
        // A section that claims more bytes than the file has.
        let mut cut = wat::parse_str("(module (func))").unwrap();
        cut.truncate(cut.len() - 1);
        assert_eq!(
            extract_token(&cut).unwrap_err().kind(),
            ErrorKind::InvalidWasm
        );
    }

    #[test]
    fn two_claims_sections_are_refused() {
        let mut wasm = embed_token(&wat::parse_str("(module)").unwrap(), "one").unwrap();
        append_custom_section(&mut wasm, CLAIMS_SECTION, b"two");
        assert_eq!(
            extract_token(&wasm).unwrap_err().kind(),
            ErrorKind::InvalidWasm
        );
    }
}
