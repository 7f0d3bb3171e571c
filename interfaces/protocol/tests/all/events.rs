//! Golden vectors and round trips of the `data` of every event type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::json;
use trellis_protocol::event::{
    ActorFailedData, ActorScaledData, ActorStartedData, ActorStoppedData, ActorUpdatedData,
    HealthCheckFailedData, HealthCheckPassedData, HostStartedData, HostStoppedData,
    LabelsChangedData, LatticeDataRejectedData, LinkDeletedData, LinkSetData, ProviderFailedData,
    ProviderInstance, ProviderStart, ProviderStartedData, ProviderStoppedData,
};
use trellis_protocol::{
    ActorDescription, CloudEvent, ContractId, DecodeError, DecodeLimits, EventData, EventType,
    Heartbeat, HostInventory, LinkDefinition,
};

const ACTOR_JSON: &str = r#"{"id":"MACTOR","name":"hello","image_ref":"/srv/actors/hello.wasm","revision":3,"max_instances":4,"annotations":{"owner":"demo"}}"#;
const PROVIDER_JSON: &str = r#""provider_id":"VPROVIDER","link_name":"default","contract_id":"wasi:keyvalue","name":"keyvalue-redis""#;

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("hostcore.os".to_owned(), "linux".to_owned()),
        ("zone".to_owned(), "eu-1".to_owned()),
    ])
}

fn actor() -> ActorDescription {
    ActorDescription {
        id: "MACTOR".into(),
        name: "hello".into(),
        image_ref: "/srv/actors/hello.wasm".into(),
        revision: 3,
        max_instances: 4,
        annotations: BTreeMap::from([("owner".to_owned(), "demo".to_owned())]),
    }
}

fn provider() -> ProviderInstance {
    ProviderInstance {
        provider_id: "VPROVIDER".into(),
        link_name: "default".into(),
        contract_id: ContractId::new("wasi:keyvalue").unwrap(),
        name: "keyvalue-redis".into(),
    }
}

fn kv() -> ContractId {
    ContractId::new("wasi:keyvalue").unwrap()
}

/// Checks `data` against its golden JSON, alone and in an envelope, both
/// ways, and returns its event type.
fn golden<T>(data: T, expected: &str) -> EventType
where
    T: EventData + DeserializeOwned + PartialEq + Debug,
{
    assert_eq!(serde_json::to_string(&data).unwrap(), expected);
    let back: T = serde_json::from_str(expected).unwrap();
    assert_eq!(back, data);

    let at = UNIX_EPOCH + Duration::from_millis(1_763_700_000_000);
    let event = CloudEvent::from_data("ev-1", "NHOST", at, data);
    let bytes = event.encode().unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        format!(
            r#"{{"specversion":"1.0","id":"ev-1","source":"NHOST","type":"dev.trellis.lattice.{}","time":"2025-11-21T04:40:00.000Z","datacontenttype":"application/json","data":{expected}}}"#,
            T::TYPE
        )
    );
    let decoded = CloudEvent::<T>::decode_typed(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded, event);
    T::TYPE
}

#[test]
fn every_event_type_has_data_with_a_golden_vector() {
    let link = LinkDefinition::new("MACTOR", kv(), "default", "VPROVIDER")
        .with_config("url", "redis://127.0.0.1:6379");
    let heartbeat = Heartbeat {
        inventory: HostInventory {
            host_id: "NHOST".into(),
            lattice: "default".into(),
            labels: labels(),
            version: "0.1.0".into(),
            uptime_ms: 3_600_000,
            actors: vec![actor()],
            providers: vec![],
        },
        interval_ms: 5_000,
    };
    let checked = [
        golden(
            HostStartedData { labels: labels() },
            r#"{"labels":{"hostcore.os":"linux","zone":"eu-1"}}"#,
        ),
        golden(HostStoppedData {}, "{}"),
        golden(
            heartbeat,
            &format!(
                r#"{{"host_id":"NHOST","lattice":"default","labels":{{"hostcore.os":"linux","zone":"eu-1"}},"version":"0.1.0","uptime_ms":3600000,"actors":[{ACTOR_JSON}],"providers":[],"interval_ms":5000}}"#
            ),
        ),
        golden(ActorStartedData(actor()), ACTOR_JSON),
        golden(ActorStoppedData(actor()), ACTOR_JSON),
        golden(
            ActorFailedData {
                image_ref: "/srv/actors/hello.wasm".into(),
                error: "untrusted issuer: ADEV".into(),
                claims_error: Some("untrusted_issuer".into()),
            },
            r#"{"image_ref":"/srv/actors/hello.wasm","error":"untrusted issuer: ADEV","claims_error":"untrusted_issuer"}"#,
        ),
        golden(ActorScaledData(actor()), ACTOR_JSON),
        golden(ActorUpdatedData(actor()), ACTOR_JSON),
        golden(
            ProviderStartedData {
                provider: provider(),
                pid: Some(4242),
                start: ProviderStart::Restarted,
            },
            &format!(r#"{{{PROVIDER_JSON},"pid":4242,"start":"restarted"}}"#),
        ),
        golden(
            ProviderStoppedData {
                provider: provider(),
            },
            &format!("{{{PROVIDER_JSON}}}"),
        ),
        golden(
            ProviderFailedData {
                provider: provider(),
                error: "exited: exit status: 1".into(),
                restart_in_ms: Some(500),
            },
            &format!(r#"{{{PROVIDER_JSON},"error":"exited: exit status: 1","restart_in_ms":500}}"#),
        ),
        golden(
            LinkSetData(link),
            r#"{"actor_id":"MACTOR","contract_id":"wasi:keyvalue","link_name":"default","provider_id":"VPROVIDER","config":{"url":"redis://127.0.0.1:6379"}}"#,
        ),
        golden(
            LinkDeletedData {
                actor_id: "MACTOR".into(),
                contract_id: kv(),
                link_name: "default".into(),
            },
            r#"{"actor_id":"MACTOR","contract_id":"wasi:keyvalue","link_name":"default"}"#,
        ),
        golden(
            HealthCheckPassedData {
                provider: provider(),
                message: String::new(),
            },
            &format!(r#"{{{PROVIDER_JSON},"message":""}}"#),
        ),
        golden(
            HealthCheckFailedData {
                provider: provider(),
                message: "health check timed out".into(),
            },
            &format!(r#"{{{PROVIDER_JSON},"message":"health check timed out"}}"#),
        ),
        golden(
            LabelsChangedData { labels: labels() },
            r#"{"labels":{"hostcore.os":"linux","zone":"eu-1"}}"#,
        ),
        golden(
            LatticeDataRejectedData {
                key: "link.MACTOR.wasi.keyvalue.default".into(),
                reason: "untrusted_issuer".into(),
            },
            r#"{"key":"link.MACTOR.wasi.keyvalue.default","reason":"untrusted_issuer"}"#,
        ),
    ];
    let checked: BTreeSet<&str> = checked.iter().map(|t| t.as_str()).collect();
    let all: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(checked, all);
}

#[test]
fn optional_members_are_written_as_documented() {
    // `claims_error` is always written, as null when absent.
    let failed = ActorFailedData {
        image_ref: "a.wasm".into(),
        error: "cannot read a.wasm: No such file or directory (os error 2)".into(),
        claims_error: None,
    };
    assert_eq!(
        serde_json::to_string(&failed).unwrap(),
        r#"{"image_ref":"a.wasm","error":"cannot read a.wasm: No such file or directory (os error 2)","claims_error":null}"#
    );
    let missing: ActorFailedData =
        serde_json::from_str(r#"{"image_ref":"a.wasm","error":"x"}"#).unwrap();
    assert_eq!(missing.claims_error, None);

    // `restart_in_ms` is left out when absent.
    let spawn_failed = ProviderFailedData {
        provider: provider(),
        error: "No such file or directory (os error 2)".into(),
        restart_in_ms: None,
    };
    let text = serde_json::to_string(&spawn_failed).unwrap();
    assert_eq!(
        text,
        format!(r#"{{{PROVIDER_JSON},"error":"No such file or directory (os error 2)"}}"#)
    );
    assert_eq!(
        serde_json::from_str::<ProviderFailedData>(&text).unwrap(),
        spawn_failed
    );

    // `pid` is always written, as null when absent.
    let started = ProviderStartedData {
        provider: provider(),
        pid: None,
        start: ProviderStart::Started,
    };
    assert_eq!(
        serde_json::to_string(&started).unwrap(),
        format!(r#"{{{PROVIDER_JSON},"pid":null,"start":"started"}}"#)
    );
}

fn value<T: serde::Serialize>(data: &T) -> serde_json::Value {
    serde_json::to_value(data).unwrap()
}

/// The host used to build these with `serde_json::json!`; the typed data
/// must carry the same members with the same values (member order aside).
#[test]
fn typed_data_has_the_members_the_host_built_by_hand() {
    assert_eq!(
        value(&HostStartedData { labels: labels() }),
        json!({ "labels": labels() })
    );
    assert_eq!(value(&HostStoppedData {}), json!({}));
    assert_eq!(
        value(&ActorFailedData {
            image_ref: "a.wasm".into(),
            error: "e".into(),
            claims_error: Some("hash_mismatch".into()),
        }),
        json!({ "image_ref": "a.wasm", "error": "e", "claims_error": "hash_mismatch" })
    );
    assert_eq!(
        value(&LinkDeletedData {
            actor_id: "MACTOR".into(),
            contract_id: kv(),
            link_name: "default".into(),
        }),
        json!({"actor_id": "MACTOR", "contract_id": "wasi:keyvalue", "link_name": "default"})
    );
    let base = json!({ "provider_id": "VPROVIDER", "link_name": "default", "contract_id": "wasi:keyvalue", "name": "keyvalue-redis" });
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        if let (Some(map), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
            map.extend(more);
        }
        v
    };
    assert_eq!(
        value(&ProviderStartedData {
            provider: provider(),
            pid: Some(7),
            start: ProviderStart::Started,
        }),
        with(json!({"pid": 7, "start": "started"}))
    );
    assert_eq!(
        value(&ProviderFailedData {
            provider: provider(),
            error: "exited: exit status: 1".into(),
            restart_in_ms: Some(250),
        }),
        with(json!({"error": "exited: exit status: 1", "restart_in_ms": 250}))
    );
    assert_eq!(
        value(&ProviderFailedData {
            provider: provider(),
            error: "spawn".into(),
            restart_in_ms: None,
        }),
        with(json!({"error": "spawn"}))
    );
    assert_eq!(
        value(&ProviderStoppedData {
            provider: provider()
        }),
        with(json!({}))
    );
    assert_eq!(
        value(&HealthCheckFailedData {
            provider: provider(),
            message: "m".into(),
        }),
        with(json!({"message": "m"}))
    );
    assert_eq!(
        value(&HealthCheckPassedData {
            provider: provider(),
            message: "m".into(),
        }),
        with(json!({"message": "m"}))
    );
    assert_eq!(
        value(&LabelsChangedData { labels: labels() }),
        json!({ "labels": labels() })
    );
}

#[test]
fn a_typed_decode_refuses_an_event_of_another_type() {
    let event = CloudEvent::from_data(
        "ev-1",
        "NHOST",
        UNIX_EPOCH,
        LabelsChangedData { labels: labels() },
    );
    let bytes = event.encode().unwrap();
    let err =
        CloudEvent::<HostStartedData>::decode_typed(&bytes, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, DecodeError::Shape(_)), "{err:?}");
    // The untyped decode still reads it.
    let any: CloudEvent = CloudEvent::decode(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(any.event_type(), Some(EventType::LabelsChanged));
}

#[test]
fn an_unknown_provider_start_kind_is_a_shape_error() {
    let text = format!(r#"{{{PROVIDER_JSON},"pid":1,"start":"resumed"}}"#);
    assert!(serde_json::from_str::<ProviderStartedData>(&text).is_err());
}
