//! What the msgpack decoders accept beyond what writers write
//! (`docs/protocol.md` §3.1): byte fields as str or as arrays of integers,
//! text fields as bin holding UTF-8.

use serde::Serialize;
use trellis_protocol::{DecodeError, DecodeLimits, Entity, EntityKind, Invocation};

/// An invocation whose `operation` and `payload` are written as `O` and `P`.
#[derive(Serialize)]
struct Loose<O, P> {
    version: u16,
    id: &'static str,
    origin: Entity,
    target: Entity,
    operation: O,
    payload: P,
    token: &'static str,
}

fn entity(kind: EntityKind, id: &str) -> Entity {
    Entity {
        kind,
        id: id.into(),
        contract_id: None,
        link_name: None,
    }
}

fn encode<O: Serialize, P: Serialize>(operation: O, payload: P) -> Vec<u8> {
    rmp_serde::to_vec_named(&Loose {
        version: 1,
        id: "id-1",
        origin: entity(EntityKind::Host, "NHOST"),
        target: entity(EntityKind::Actor, "MACTOR"),
        operation,
        payload,
        token: "tok",
    })
    .unwrap()
}

fn decode(bytes: &[u8]) -> Result<Invocation, DecodeError> {
    Invocation::decode(bytes, &DecodeLimits::default())
}

#[test]
fn a_byte_field_accepts_str_and_arrays_of_integers() {
    let as_str = encode("op", "hi");
    assert!(as_str.windows(3).any(|w| w == [0xa2, b'h', b'i']));
    assert_eq!(decode(&as_str).unwrap().payload, b"hi");

    let as_array = encode("op", vec![1u8, 2, 255]);
    assert!(
        as_array
            .windows(5)
            .any(|w| w == [0x93, 0x01, 0x02, 0xcc, 0xff])
    );
    assert_eq!(decode(&as_array).unwrap().payload, [1, 2, 255]);

    // An integer above 255 is not a byte.
    assert!(matches!(
        decode(&encode("op", vec![1u16, 256])),
        Err(DecodeError::Shape(_))
    ));
}

#[test]
fn a_byte_field_given_as_str_keeps_invalid_utf8() {
    let mut bytes = encode("op", "h\u{7f}");
    let at = bytes
        .windows(3)
        .position(|w| w == [0xa2, b'h', 0x7f])
        .unwrap();
    bytes[at + 2] = 0xff;
    assert_eq!(decode(&bytes).unwrap().payload, [b'h', 0xff]);
}

#[test]
fn a_text_field_accepts_bin_holding_utf8_only() {
    let bytes = encode(
        serde_bytes::Bytes::new(b"wasi:http"),
        serde_bytes::Bytes::new(b""),
    );
    assert!(bytes.windows(2).any(|w| w == [0xc4, 9]));
    assert_eq!(decode(&bytes).unwrap().operation, "wasi:http");

    let invalid = encode(
        serde_bytes::Bytes::new(b"\xff"),
        serde_bytes::Bytes::new(b""),
    );
    assert!(matches!(decode(&invalid), Err(DecodeError::Shape(_))));

    // A str holding invalid UTF-8 in a text field is refused too.
    let mut bytes = encode("o\u{7f}", serde_bytes::Bytes::new(b""));
    let at = bytes
        .windows(3)
        .position(|w| w == [0xa2, b'o', 0x7f])
        .unwrap();
    bytes[at + 2] = 0xff;
    assert!(matches!(decode(&bytes), Err(DecodeError::Shape(_))));
}
