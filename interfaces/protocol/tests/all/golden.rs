//! Golden vectors: the exact bytes of each wire message. A change here is a
//! change of the wire format and needs a new protocol version.

use std::time::{Duration, UNIX_EPOCH};

use trellis_protocol::{
    CloudEvent, ContractId, CtlReply, DecodeLimits, Entity, EntityKind, EventType, Invocation,
    InvocationResponse, LinkDefinition, RpcErrorKind,
};

fn sample_invocation() -> Invocation {
    let mut inv = Invocation::new(
        "0190c0de-0000-7000-8000-000000000001",
        Entity {
            kind: EntityKind::Actor,
            id: "MACTOR".into(),
            contract_id: Some("wasi:keyvalue".into()),
            link_name: Some("default".into()),
        },
        Entity {
            kind: EntityKind::Provider,
            id: "VPROVIDER".into(),
            contract_id: None,
            link_name: None,
        },
        "wasi:keyvalue/store.get",
        vec![0x01, 0x02, 0xff],
    );
    inv.token = "tok".into();
    inv.trace.insert(
        "traceparent".into(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
    );
    inv
}

const INVOCATION_HEX: &str = concat!(
    "88a776657273696f6e01a26964d92430313930633064652d303030302d373030302d383030302d303030303030303030",
    "303031a66f726967696e84a46b696e64a56163746f72a26964a64d4143544f52ab636f6e74726163745f6964ad776173",
    "693a6b657976616c7565a96c696e6b5f6e616d65a764656661756c74a674617267657482a46b696e64a870726f766964",
    "6572a26964a95650524f5649444552a96f7065726174696f6eb7776173693a6b657976616c75652f73746f72652e6765",
    "74a77061796c6f6164c4030102ffa5746f6b656ea3746f6ba5747261636581ab7472616365706172656e74d93730302d",
    "30616637363531393136636434336464383434386562323131633830333139632d623761643662373136393230333333",
    "312d3031",
);

#[test]
fn invocation_matches_its_golden_vector() {
    let bytes = sample_invocation().encode().unwrap();
    assert_eq!(hex::encode(&bytes), INVOCATION_HEX);
    let decoded = Invocation::decode(
        &hex::decode(INVOCATION_HEX).unwrap(),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(decoded, sample_invocation());
}

const RESPONSE_HEX: &str = concat!(
    "85a776657273696f6e01ad696e766f636174696f6e5f6964a469642d31a77061796c6f6164c40176a56572726f72c0a5",
    "74726163658085a776657273696f6e01ad696e766f636174696f6e5f6964a469642d32a77061796c6f6164c400a56572",
    "726f7282a46b696e64a664656e696564a76d657373616765d92964656e6965643a206e6f206c696e6b20666f72207761",
    "73693a6b657976616c75652f64656661756c74a5747261636580",
);

#[test]
fn invocation_response_matches_its_golden_vector() {
    let ok = InvocationResponse::ok("id-1", b"v".to_vec());
    let err = InvocationResponse::error(
        "id-2",
        RpcErrorKind::Denied,
        "denied: no link for wasi:keyvalue/default",
    );
    let bytes = [ok.encode().unwrap(), err.encode().unwrap()].concat();
    assert_eq!(hex::encode(&bytes), RESPONSE_HEX);
}

#[test]
fn unknown_error_kinds_from_newer_peers_decode_as_unknown() {
    let mut resp = InvocationResponse::error("id", RpcErrorKind::Failed, "x");
    let bytes = resp.encode().unwrap();
    // Replace the kind's text "failed" with "future" (same length).
    let at = bytes.windows(6).position(|w| w == b"failed").unwrap();
    let mut patched = bytes.clone();
    patched[at..at + 6].copy_from_slice(b"future");
    resp = InvocationResponse::decode(&patched, &DecodeLimits::default()).unwrap();
    assert_eq!(resp.error.unwrap().kind, RpcErrorKind::Unknown);
}

const LINK_JSON: &str = r#"{"actor_id":"MACTOR","contract_id":"wasi:keyvalue","link_name":"default","provider_id":"VPROVIDER","config":{"prefix":"app1:","url":"redis://127.0.0.1:6379"}}"#;

#[test]
fn link_definition_matches_its_golden_vector() {
    let link = LinkDefinition::new(
        "MACTOR",
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        "VPROVIDER",
    )
    .with_config("url", "redis://127.0.0.1:6379")
    .with_config("prefix", "app1:");
    let bytes = link.encode().unwrap();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), LINK_JSON);
    assert_eq!(
        LinkDefinition::decode(LINK_JSON.as_bytes(), &DecodeLimits::default()).unwrap(),
        link
    );
}

#[test]
fn links_with_hostile_ids_do_not_decode() {
    let bad = LINK_JSON.replace("\"MACTOR\"", "\"M.>\"");
    assert!(LinkDefinition::decode(bad.as_bytes(), &DecodeLimits::default()).is_err());
    let bad_contract = LINK_JSON.replace("wasi:keyvalue", "WASI KV");
    assert!(LinkDefinition::decode(bad_contract.as_bytes(), &DecodeLimits::default()).is_err());
}

const EVENT_JSON: &str = r#"{"specversion":"1.0","id":"ev-1","source":"NHOST","type":"dev.trellis.lattice.link_set","time":"2025-11-21T04:40:00.000Z","datacontenttype":"application/json","data":{"actor_id":"MACTOR","contract_id":"wasi:keyvalue"}}"#;

#[test]
fn cloud_event_matches_its_golden_vector() {
    let at = UNIX_EPOCH + Duration::from_millis(1_763_700_000_000);
    let event = CloudEvent::new(
        "ev-1",
        "NHOST",
        EventType::LinkSet,
        at,
        serde_json::json!({"actor_id": "MACTOR", "contract_id": "wasi:keyvalue"}),
    );
    assert_eq!(
        String::from_utf8(event.encode().unwrap()).unwrap(),
        EVENT_JSON
    );
}

#[test]
fn ctl_reply_matches_its_golden_vector() {
    let reply: CtlReply<()> = CtlReply::refused(
        trellis_protocol::ctl::CtlFailure::NotFound,
        "actor MX is not running",
    );
    let golden = r#"{"success":false,"message":"actor MX is not running","response":null,"kind":"not_found"}"#;
    assert_eq!(String::from_utf8(reply.encode().unwrap()).unwrap(), golden);
    // A reply of an older host, without `kind`, still decodes.
    let old: CtlReply<()> = CtlReply::decode(
        br#"{"success":false,"message":"no","response":null}"#,
        &trellis_protocol::DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(old.kind, None);
}
