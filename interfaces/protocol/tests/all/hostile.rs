//! Hostile input: truncated, random, oversized and deeply nested messages
//! give a typed error and never panic or allocate without bound.

use proptest::prelude::*;
use trellis_protocol::{
    CloudEvent, DecodeError, DecodeLimits, Entity, EntityKind, Invocation, InvocationResponse,
    LinkDefinition, PROTOCOL_VERSION,
};

fn invocation(payload: Vec<u8>) -> Invocation {
    Invocation::new(
        "id",
        Entity {
            kind: EntityKind::Host,
            id: "NHOST".into(),
            contract_id: None,
            link_name: None,
        },
        Entity {
            kind: EntityKind::Actor,
            id: "MACTOR".into(),
            contract_id: None,
            link_name: None,
        },
        "wasi:http/incoming-handler.handle",
        payload,
    )
}

#[test]
fn every_truncation_of_an_invocation_is_a_typed_error() {
    let bytes = invocation(vec![7; 300]).encode().unwrap();
    for cut in 0..bytes.len() {
        let err = Invocation::decode(&bytes[..cut], &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Truncated | DecodeError::LengthExceedsInput { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn a_declared_length_of_four_gib_is_refused_without_allocating() {
    // A map with one entry whose value is a bin32 declaring 4 GiB.
    let mut bytes = vec![0x81, 0xa7];
    bytes.extend_from_slice(b"payload");
    bytes.extend_from_slice(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]);
    let err = Invocation::decode(&bytes, &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::LengthExceedsInput {
            declared: 0xffff_ffff,
            available: 1
        }
    );
}

#[test]
fn nesting_ten_thousand_deep_is_refused() {
    let mut bytes = vec![0x81, 0xa5];
    bytes.extend_from_slice(b"trace");
    bytes.extend(std::iter::repeat_n(0x91u8, 10_000));
    bytes.push(0xc0);
    assert!(matches!(
        Invocation::decode(&bytes, &DecodeLimits::default()),
        Err(DecodeError::TooDeep { max: 32 })
    ));

    let json = format!("{{\"data\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        CloudEvent::<serde_json::Value>::decode(json.as_bytes(), &DecodeLimits::default()),
        Err(DecodeError::TooDeep { .. })
    ));
}

#[test]
fn messages_over_the_size_limit_are_refused_before_parsing() {
    let limits = DecodeLimits {
        max_message_bytes: 1024,
        ..DecodeLimits::default()
    };
    let bytes = invocation(vec![0; 2048]).encode().unwrap();
    assert!(matches!(
        Invocation::decode(&bytes, &limits),
        Err(DecodeError::TooLarge { max: 1024, .. })
    ));
}

#[test]
fn a_newer_protocol_version_is_refused() {
    let mut inv = invocation(vec![]);
    inv.version = PROTOCOL_VERSION + 1;
    let bytes = inv.encode().unwrap();
    assert!(matches!(
        Invocation::decode(&bytes, &DecodeLimits::default()),
        Err(DecodeError::UnsupportedVersion { found, .. }) if found == PROTOCOL_VERSION + 1
    ));
}

#[test]
fn a_response_is_not_an_invocation() {
    let bytes = InvocationResponse::ok("x", vec![]).encode().unwrap();
    assert!(matches!(
        Invocation::decode(&bytes, &DecodeLimits::default()),
        Err(DecodeError::Shape(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let limits = DecodeLimits::default();
        let _ = Invocation::decode(&bytes, &limits);
        let _ = InvocationResponse::decode(&bytes, &limits);
        let _ = LinkDefinition::decode(&bytes, &limits);
        let _ = CloudEvent::<serde_json::Value>::decode(&bytes, &limits);
    }

    #[test]
    fn corrupted_invocations_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = invocation(payload).encode().unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = Invocation::decode(&bytes, &DecodeLimits::default());
    }

    #[test]
    fn invocations_round_trip(
        id in "[a-z0-9-]{1,40}",
        op in "[a-z:/.-]{1,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut inv = invocation(payload);
        inv.id = id;
        inv.operation = op;
        let back = Invocation::decode(&inv.encode().unwrap(), &DecodeLimits::default()).unwrap();
        prop_assert_eq!(back, inv);
    }
}
