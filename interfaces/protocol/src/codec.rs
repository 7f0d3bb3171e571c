//! Bounded decoding of untrusted messages.
//!
//! Every byte that reaches a host, provider or wadm from NATS is untrusted. The
//! functions here check a message's size and shape *before* serde sees it, so
//! a hostile peer cannot make a decoder allocate gigabytes (a declared length
//! of 4 GiB in a 10-byte message) or recurse until the stack overflows
//! (arrays nested 10,000 deep). The msgpack walk is iterative and its memory is
//! bounded by [`DecodeLimits::max_depth`].
//!
//! Formats: msgpack as specified at <https://github.com/msgpack/msgpack/blob/master/spec.md>,
//! JSON as specified by RFC 8259.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Limits applied to every decoded message.
///
/// All defaults sit in the one [`Default`] implementation.
///
/// # Examples
///
/// ```
/// use trellis_protocol::DecodeLimits;
///
/// let limits = DecodeLimits::default();
/// assert_eq!(limits.max_message_bytes, 8 * 1024 * 1024);
/// assert_eq!(limits.max_depth, 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest message accepted, in bytes. Defaults to 8 MiB, which is above
    /// NATS' default `max_payload` of 1 MiB so that a server configured for
    /// larger payloads still works, yet small enough to bound memory.
    pub max_message_bytes: usize,
    /// Deepest nesting of arrays and maps (msgpack) or arrays and objects
    /// (JSON) accepted, counted from 1 for the outermost container.
    /// Defaults to 32; no Trellis message nests deeper than 6.
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 8 * 1024 * 1024,
            max_depth: 32,
        }
    }
}

/// Why a message could not be decoded.
///
/// Each variant is a distinct kind that callers can match on; the text is for
/// people.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is larger than [`DecodeLimits::max_message_bytes`].
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the message, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// Containers nest deeper than [`DecodeLimits::max_depth`].
    #[error("message nests deeper than the limit of {max}")]
    TooDeep {
        /// The limit on nesting depth.
        max: usize,
    },
    /// The message ends in the middle of a value.
    #[error("message is truncated")]
    Truncated,
    /// A string, binary, extension or container declares more content than
    /// the message holds.
    #[error("a value declares {declared} bytes or items but only {available} bytes remain")]
    LengthExceedsInput {
        /// The declared length (bytes, or items for containers).
        declared: u64,
        /// Bytes left in the message at that point.
        available: usize,
    },
    /// Bytes follow the single top-level value.
    #[error("{count} bytes follow the message")]
    TrailingBytes {
        /// Number of extra bytes.
        count: usize,
    },
    /// A msgpack marker that the specification reserves (0xc1).
    #[error("reserved msgpack marker at byte {offset}")]
    ReservedMarker {
        /// Offset of the marker in the message, in bytes.
        offset: usize,
    },
    /// The message is well formed but does not match the expected shape
    /// (missing field, wrong type, invalid UTF-8, bad JSON syntax, ...).
    #[error("message does not match the expected shape: {0}")]
    Shape(String),
    /// The message carries a protocol version this build does not speak.
    #[error("unsupported protocol version {found} (this build speaks {supported})")]
    UnsupportedVersion {
        /// Version found in the message.
        found: u16,
        /// Highest version this build speaks.
        supported: u16,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The serializer refused the value.
    #[error("could not encode message: {0}")]
    Serialize(String),
}

/// Encodes `value` as msgpack with named fields (maps keyed by field name),
/// the form every Trellis msgpack message uses.
///
/// # Errors
///
/// [`EncodeError::Serialize`] if the value cannot be represented in msgpack
/// (for example a map with non-string keys inside a struct that forbids it).
pub fn encode_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    rmp_serde::to_vec_named(value).map_err(|e| EncodeError::Serialize(e.to_string()))
}

/// Encodes `value` as JSON (RFC 8259), the form of control-interface
/// payloads, link definitions in the lattice bucket and events.
///
/// # Errors
///
/// [`EncodeError::Serialize`] if the value cannot be represented in JSON.
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(value).map_err(|e| EncodeError::Serialize(e.to_string()))
}

/// Decodes one msgpack value of type `T`, after checking the message against
/// `limits` with [`check_msgpack`].
///
/// # Errors
///
/// Any [`DecodeError`]: size, depth and declared lengths are checked first,
/// then the shape ([`DecodeError::Shape`]).
///
/// # Examples
///
/// ```
/// use trellis_protocol::{decode_msgpack, DecodeError, DecodeLimits};
///
/// // A bin32 that claims 4 GiB of content but carries two bytes.
/// let hostile = [0xc6, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00];
/// let err = decode_msgpack::<Vec<u8>>(&hostile, &DecodeLimits::default()).unwrap_err();
/// assert!(matches!(err, DecodeError::LengthExceedsInput { declared: 0xffff_ffff, .. }));
/// ```
pub fn decode_msgpack<T: DeserializeOwned>(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<T, DecodeError> {
    check_msgpack(bytes, limits)?;
    rmp_serde::from_slice(bytes).map_err(|e| match e {
        rmp_serde::decode::Error::InvalidMarkerRead(_)
        | rmp_serde::decode::Error::InvalidDataRead(_) => DecodeError::Truncated,
        rmp_serde::decode::Error::DepthLimitExceeded => DecodeError::TooDeep {
            max: limits.max_depth,
        },
        other => DecodeError::Shape(other.to_string()),
    })
}

/// Decodes one JSON value of type `T`, after checking its size and nesting
/// depth against `limits`.
///
/// # Errors
///
/// [`DecodeError::TooLarge`], [`DecodeError::TooDeep`], [`DecodeError::Truncated`]
/// for JSON that ends early, or [`DecodeError::Shape`].
pub fn decode_json<T: DeserializeOwned>(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<T, DecodeError> {
    check_size(bytes, limits)?;
    check_json_depth(bytes, limits.max_depth)?;
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            DecodeError::Truncated
        } else {
            DecodeError::Shape(e.to_string())
        }
    })
}

fn check_size(bytes: &[u8], limits: &DecodeLimits) -> Result<(), DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: limits.max_message_bytes,
        });
    }
    Ok(())
}

/// Counts JSON nesting without building anything: brackets outside strings.
fn check_json_depth(bytes: &[u8], max_depth: usize) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(DecodeError::TooDeep { max: max_depth });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Walks one msgpack value without allocating per element and checks it
/// against `limits`: total size, nesting depth, that every declared length
/// fits in the bytes that remain, and that nothing follows the value.
///
/// Memory use is bounded by `limits.max_depth` (one counter per open
/// container); the walk is iterative, so hostile nesting cannot overflow the
/// stack.
///
/// # Errors
///
/// [`DecodeError::TooLarge`], [`DecodeError::TooDeep`], [`DecodeError::Truncated`],
/// [`DecodeError::LengthExceedsInput`], [`DecodeError::TrailingBytes`] or
/// [`DecodeError::ReservedMarker`].
pub fn check_msgpack(bytes: &[u8], limits: &DecodeLimits) -> Result<(), DecodeError> {
    use rmp::Marker;

    check_size(bytes, limits)?;
    let mut rest: &[u8] = bytes;
    // Items still to read in each open container; the bottom entry is the
    // single top-level value.
    let mut open: Vec<u64> = Vec::with_capacity(limits.max_depth.min(64) + 1);
    open.push(1);
    while let Some(top) = open.last_mut() {
        if *top == 0 {
            open.pop();
            continue;
        }
        *top -= 1;
        let offset = bytes.len() - rest.len();
        let marker = rmp::decode::read_marker(&mut rest).map_err(|_| DecodeError::Truncated)?;
        // (bytes of content to skip, items to open as a container, bytes each item needs at least)
        let (skip, items): (u64, Option<u64>) = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, None)
            }
            Marker::U8 | Marker::I8 => (1, None),
            Marker::U16 | Marker::I16 => (2, None),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, None),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, None),
            Marker::FixStr(n) => (u64::from(n), None),
            Marker::Str8 | Marker::Bin8 => (u64::from(take::<1>(&mut rest)?[0]), None),
            Marker::Str16 | Marker::Bin16 => {
                (u64::from(u16::from_be_bytes(take::<2>(&mut rest)?)), None)
            }
            Marker::Str32 | Marker::Bin32 => {
                (u64::from(u32::from_be_bytes(take::<4>(&mut rest)?)), None)
            }
            Marker::FixExt1 => (2, None),
            Marker::FixExt2 => (3, None),
            Marker::FixExt4 => (5, None),
            Marker::FixExt8 => (9, None),
            Marker::FixExt16 => (17, None),
            Marker::Ext8 => (u64::from(take::<1>(&mut rest)?[0]) + 1, None),
            Marker::Ext16 => (
                u64::from(u16::from_be_bytes(take::<2>(&mut rest)?)) + 1,
                None,
            ),
            Marker::Ext32 => (
                u64::from(u32::from_be_bytes(take::<4>(&mut rest)?)) + 1,
                None,
            ),
            Marker::FixArray(n) => (0, Some(u64::from(n))),
            Marker::Array16 => (
                0,
                Some(u64::from(u16::from_be_bytes(take::<2>(&mut rest)?))),
            ),
            Marker::Array32 => (
                0,
                Some(u64::from(u32::from_be_bytes(take::<4>(&mut rest)?))),
            ),
            Marker::FixMap(n) => (0, Some(2 * u64::from(n))),
            Marker::Map16 => (
                0,
                Some(2 * u64::from(u16::from_be_bytes(take::<2>(&mut rest)?))),
            ),
            Marker::Map32 => (
                0,
                Some(2 * u64::from(u32::from_be_bytes(take::<4>(&mut rest)?))),
            ),
            Marker::Reserved => return Err(DecodeError::ReservedMarker { offset }),
        };
        if skip > rest.len() as u64 {
            return Err(DecodeError::LengthExceedsInput {
                declared: skip,
                available: rest.len(),
            });
        }
        // `skip` fits in usize: it is at most `rest.len()`.
        rest = &rest[skip as usize..];
        if let Some(items) = items.filter(|n| *n > 0) {
            // Every item takes at least one byte.
            if items > rest.len() as u64 {
                return Err(DecodeError::LengthExceedsInput {
                    declared: items,
                    available: rest.len(),
                });
            }
            // `open` holds the top-level slot plus one entry per container.
            if open.len() > limits.max_depth {
                return Err(DecodeError::TooDeep {
                    max: limits.max_depth,
                });
            }
            open.push(items);
        }
    }
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    Ok(())
}

fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or(DecodeError::Truncated)?;
    *rest = tail;
    Ok(*head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    #[test]
    fn well_formed_values_pass_the_walk() {
        let value = (
            1u8,
            "two",
            vec![3u32; 4],
            std::collections::BTreeMap::from([("k", -5i64)]),
        );
        let bytes = encode_msgpack(&value).unwrap();
        check_msgpack(&bytes, &limits()).unwrap();
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_too_deep() {
        // 10,000 nested single-element arrays around a nil.
        let mut bytes = vec![0x91u8; 10_000];
        bytes.push(0xc0);
        let err = check_msgpack(&bytes, &limits()).unwrap_err();
        assert_eq!(err, DecodeError::TooDeep { max: 32 });
    }

    #[test]
    fn nesting_at_the_limit_is_accepted() {
        let mut bytes = vec![0x91u8; 32];
        bytes.push(0xc0);
        check_msgpack(&bytes, &limits()).unwrap();
        let mut deeper = vec![0x91u8; 33];
        deeper.push(0xc0);
        assert!(matches!(
            check_msgpack(&deeper, &limits()),
            Err(DecodeError::TooDeep { .. })
        ));
    }

    #[test]
    fn an_array_declaring_four_billion_items_is_refused() {
        let bytes = [0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0];
        assert!(matches!(
            check_msgpack(&bytes, &limits()),
            Err(DecodeError::LengthExceedsInput {
                declared: 0xffff_ffff,
                available: 1
            })
        ));
    }

    #[test]
    fn a_map_declaring_more_pairs_than_bytes_is_refused() {
        let bytes = [0xdf, 0x80, 0x00, 0x00, 0x00, 0xc0, 0xc0];
        assert!(matches!(
            check_msgpack(&bytes, &limits()),
            Err(DecodeError::LengthExceedsInput { .. })
        ));
    }

    #[test]
    fn an_oversized_message_is_too_large() {
        let small = DecodeLimits {
            max_message_bytes: 4,
            ..DecodeLimits::default()
        };
        let bytes = encode_msgpack("hello").unwrap();
        assert!(matches!(
            check_msgpack(&bytes, &small),
            Err(DecodeError::TooLarge { size: 6, max: 4 })
        ));
        assert!(matches!(
            decode_json::<String>(b"\"hello\"", &small),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let bytes = [0xc0, 0xc0];
        assert_eq!(
            check_msgpack(&bytes, &limits()),
            Err(DecodeError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn empty_and_cut_messages_are_truncated() {
        assert_eq!(check_msgpack(&[], &limits()), Err(DecodeError::Truncated));
        assert_eq!(
            check_msgpack(&[0xcd, 0x01], &limits()),
            Err(DecodeError::LengthExceedsInput {
                declared: 2,
                available: 1
            })
        );
        assert_eq!(
            check_msgpack(&[0xda, 0x01], &limits()),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            check_msgpack(&[0x92, 0x01], &limits()),
            Err(DecodeError::LengthExceedsInput {
                declared: 2,
                available: 1
            })
        );
    }

    #[test]
    fn the_reserved_marker_is_refused() {
        assert_eq!(
            check_msgpack(&[0x91, 0xc1], &limits()),
            Err(DecodeError::ReservedMarker { offset: 1 })
        );
    }

    #[test]
    fn deep_json_is_too_deep_and_strings_do_not_count() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            decode_json::<serde_json::Value>(deep.as_bytes(), &limits()),
            Err(DecodeError::TooDeep { max: 32 })
        );
        let brackets_in_string = format!("\"{}\"", "[".repeat(100));
        let s: String = decode_json(brackets_in_string.as_bytes(), &limits()).unwrap();
        assert_eq!(s.len(), 100);
    }

    #[test]
    fn cut_json_is_truncated() {
        assert_eq!(
            decode_json::<serde_json::Value>(b"{\"a\": [1, 2", &limits()),
            Err(DecodeError::Truncated)
        );
        assert!(matches!(
            decode_json::<serde_json::Value>(b"{]", &limits()),
            Err(DecodeError::Shape(_))
        ));
    }
}
