//! Every operation of the contract, called on the provider in-process
//! (bypassing NATS) against the machine's Redis, each test under a prefix
//! of its own.

use serde_bytes::ByteBuf;
use trellis_protocol::RpcErrorKind;
use trellis_protocol::contracts::keyvalue::{KvRequest, KvResponse};
use trellis_provider_keyvalue_redis::{KeyvalueRedis, LIST_PAGE_SIZE};
use trellis_provider_sdk::{Provider as _, ProviderInvocation};

use crate::{Fixture, error_message, invoke, link, redis_url, unique_prefix};

fn bucket() -> String {
    "default".to_owned()
}

fn get(key: &str) -> KvRequest {
    KvRequest::Get {
        bucket: bucket(),
        key: key.to_owned(),
    }
}

fn set(key: &str, value: &[u8]) -> KvRequest {
    KvRequest::Set {
        bucket: bucket(),
        key: key.to_owned(),
        value: ByteBuf::from(value),
    }
}

fn exists(key: &str) -> KvRequest {
    KvRequest::Exists {
        bucket: bucket(),
        key: key.to_owned(),
    }
}

fn value(v: &[u8]) -> KvResponse {
    KvResponse::Value {
        value: Some(ByteBuf::from(v)),
    }
}

#[tokio::test]
async fn set_get_exists_and_delete_round_trip() {
    let f = Fixture::new().await;
    assert_eq!(f.call(get("a")).await, KvResponse::Value { value: None });
    assert_eq!(
        f.call(exists("a")).await,
        KvResponse::Exists { exists: false }
    );
    assert_eq!(f.call(set("a", b"one")).await, KvResponse::Done);
    assert_eq!(f.call(get("a")).await, value(b"one"));
    assert_eq!(
        f.call(exists("a")).await,
        KvResponse::Exists { exists: true }
    );
    assert_eq!(f.call(set("a", b"two")).await, KvResponse::Done);
    assert_eq!(f.call(get("a")).await, value(b"two"));
    let delete = KvRequest::Delete {
        bucket: bucket(),
        key: "a".into(),
    };
    assert_eq!(f.call(delete.clone()).await, KvResponse::Done);
    assert_eq!(f.call(get("a")).await, KvResponse::Value { value: None });
    assert_eq!(
        f.call(exists("a")).await,
        KvResponse::Exists { exists: false }
    );
    // Deleting a missing key is not an error.
    assert_eq!(f.call(delete).await, KvResponse::Done);
}

#[tokio::test]
async fn keys_are_stored_in_redis_under_the_link_prefix() {
    let f = Fixture::new().await;
    f.call(set("counter:x", b"42")).await;
    let mut r = f.redis().await;
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{}counter:x", f.prefix))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(&b"42"[..]));
    let bare: Option<Vec<u8>> = redis::cmd("GET")
        .arg("counter:x")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(bare, None);
}

#[tokio::test]
async fn unicode_keys_and_binary_values_are_stored_exactly() {
    let f = Fixture::new().await;
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 255, b'\r', b'\n']).collect();
    let keys = [
        "ünïcödé",
        "🔑 emoji key",
        "键/with spaces:and*glob?[chars]\\",
        "",
    ];
    for key in keys {
        assert_eq!(f.call(set(key, &binary)).await, KvResponse::Done, "{key}");
    }
    for key in keys {
        assert_eq!(f.call(get(key)).await, value(&binary), "{key}");
    }
    // An empty value is a value, not an absence.
    f.call(set("empty", b"")).await;
    assert_eq!(f.call(get("empty")).await, value(b""));
    assert_eq!(
        f.call(exists("empty")).await,
        KvResponse::Exists { exists: true }
    );
    // Glob characters in keys do not confuse listing.
    let KvResponse::Keys { mut keys, cursor } = f
        .call(KvRequest::ListKeys {
            bucket: bucket(),
            cursor: None,
        })
        .await
    else {
        panic!("not keys")
    };
    keys.sort();
    let mut expected: Vec<String> = ["empty"]
        .into_iter()
        .chain([
            "ünïcödé",
            "🔑 emoji key",
            "键/with spaces:and*glob?[chars]\\",
            "",
        ])
        .map(str::to_owned)
        .collect();
    expected.sort();
    assert_eq!((keys, cursor), (expected, None));
}

#[tokio::test]
async fn a_one_mebibyte_value_round_trips() {
    let f = Fixture::new().await;
    let big: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    assert_eq!(f.call(set("big", &big)).await, KvResponse::Done);
    assert_eq!(f.call(get("big")).await, value(&big));
}

#[tokio::test]
async fn list_keys_pages_through_every_key_in_sorted_order_with_an_index_cursor() {
    let f = Fixture::new().await;
    let total = 2 * LIST_PAGE_SIZE + 345;
    let mut expected: Vec<String> = (0..total).map(|i| format!("key-{i}")).collect();
    let set_many = KvRequest::SetMany {
        bucket: bucket(),
        entries: expected
            .iter()
            .map(|k| (k.clone(), ByteBuf::from(k.as_bytes())))
            .collect(),
    };
    assert_eq!(f.call(set_many).await, KvResponse::Done);
    expected.sort();

    // A key of another prefix is never listed.
    let other = Fixture::new().await;
    other.call(set("intruder", b"x")).await;

    let mut listed = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let KvResponse::Keys { keys, cursor: next } = f
            .call(KvRequest::ListKeys {
                bucket: bucket(),
                cursor,
            })
            .await
        else {
            panic!("not keys")
        };
        pages += 1;
        // The cursor is the index of the page's first key.
        assert_eq!(cursor.unwrap_or(0), listed.len() as u64);
        assert!(keys.len() <= LIST_PAGE_SIZE);
        listed.extend(keys);
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(listed, expected);

    // A page can be asked for again, and a cursor past the end is empty.
    let KvResponse::Keys { keys, cursor } = f
        .call(KvRequest::ListKeys {
            bucket: bucket(),
            cursor: Some(LIST_PAGE_SIZE as u64),
        })
        .await
    else {
        panic!("not keys")
    };
    assert_eq!(keys, expected[LIST_PAGE_SIZE..2 * LIST_PAGE_SIZE]);
    assert_eq!(cursor, Some(2 * LIST_PAGE_SIZE as u64));
    assert_eq!(
        f.call(KvRequest::ListKeys {
            bucket: bucket(),
            cursor: Some(u64::MAX),
        })
        .await,
        KvResponse::Keys {
            keys: vec![],
            cursor: None
        }
    );
}

#[tokio::test]
async fn list_keys_of_an_empty_prefix_is_one_empty_page() {
    let f = Fixture::new().await;
    assert_eq!(
        f.call(KvRequest::ListKeys {
            bucket: bucket(),
            cursor: None,
        })
        .await,
        KvResponse::Keys {
            keys: vec![],
            cursor: None
        }
    );
}

#[tokio::test]
async fn increment_creates_a_missing_key_then_adds_to_it() {
    let f = Fixture::new().await;
    let increment = |delta| KvRequest::Increment {
        bucket: bucket(),
        key: "hits".into(),
        delta,
    };
    assert_eq!(f.call(increment(5)).await, KvResponse::Number { value: 5 });
    assert_eq!(f.call(increment(1)).await, KvResponse::Number { value: 6 });
    assert_eq!(f.call(increment(0)).await, KvResponse::Number { value: 6 });
    // The number is decimal text, readable with get.
    assert_eq!(f.call(get("hits")).await, value(b"6"));

    // Concurrent increments are atomic.
    let results = futures::future::join_all((0..50).map(|_| f.call(increment(2)))).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, KvResponse::Number { .. }))
    );
    assert_eq!(f.call(get("hits")).await, value(b"106"));

    let message = error_message(f.call(increment(u64::MAX)).await);
    assert!(
        message.starts_with("keyvalue-redis: increment by"),
        "{message}"
    );

    f.call(set("text", b"not a number")).await;
    let message = error_message(
        f.call(KvRequest::Increment {
            bucket: bucket(),
            key: "text".into(),
            delta: 1,
        })
        .await,
    );
    assert!(
        message.starts_with("keyvalue-redis: redis error:") && message.contains("not an integer"),
        "{message}"
    );
}

#[tokio::test]
async fn get_set_and_delete_many_work_in_one_call_each() {
    let f = Fixture::new().await;
    let entries = vec![
        ("a".to_owned(), ByteBuf::from(&b"1"[..])),
        ("b".to_owned(), ByteBuf::from(&b"2"[..])),
        ("ü".to_owned(), ByteBuf::from(&[0u8, 255][..])),
    ];
    assert_eq!(
        f.call(KvRequest::SetMany {
            bucket: bucket(),
            entries,
        })
        .await,
        KvResponse::Done
    );
    let get_many = |keys: &[&str]| KvRequest::GetMany {
        bucket: bucket(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    };
    let v = |b: &[u8]| Some(ByteBuf::from(b));
    assert_eq!(
        f.call(get_many(&["b", "missing", "ü", "a"])).await,
        KvResponse::Values {
            values: vec![
                ("b".into(), v(b"2")),
                ("missing".into(), None),
                ("ü".into(), v(&[0, 255])),
                ("a".into(), v(b"1")),
            ]
        }
    );
    // A single key still comes back as a list of one.
    assert_eq!(
        f.call(get_many(&["a"])).await,
        KvResponse::Values {
            values: vec![("a".into(), v(b"1"))]
        }
    );
    assert_eq!(
        f.call(KvRequest::DeleteMany {
            bucket: bucket(),
            keys: vec!["a".into(), "ü".into(), "missing".into()],
        })
        .await,
        KvResponse::Done
    );
    assert_eq!(
        f.call(get_many(&["a", "b", "ü"])).await,
        KvResponse::Values {
            values: vec![
                ("a".into(), None),
                ("b".into(), v(b"2")),
                ("ü".into(), None)
            ]
        }
    );
    // Empty batches are no-ops.
    assert_eq!(
        f.call(get_many(&[])).await,
        KvResponse::Values { values: vec![] }
    );
    assert_eq!(
        f.call(KvRequest::SetMany {
            bucket: bucket(),
            entries: vec![]
        })
        .await,
        KvResponse::Done
    );
    assert_eq!(
        f.call(KvRequest::DeleteMany {
            bucket: bucket(),
            keys: vec![]
        })
        .await,
        KvResponse::Done
    );
}

#[tokio::test]
async fn an_actor_without_a_link_is_denied_and_so_is_one_whose_link_was_deleted() {
    let f = Fixture::new().await;
    let err = invoke(&f.provider, "MSTRANGER", "default", &get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.0, RpcErrorKind::Denied);
    assert!(err.1.starts_with("no link"), "{}", err.1);
    // The right actor under another link name has no link either.
    let err = invoke(&f.provider, &f.actor, "other", &get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.0, RpcErrorKind::Denied);

    // A deletion naming another provider leaves the link alone.
    let mut foreign = link(&f.actor, "default", &[]);
    foreign.provider_id = "VSOMEONEELSE".into();
    f.provider.delete_link(&foreign).await;
    assert_eq!(f.call(get("a")).await, KvResponse::Value { value: None });

    f.provider
        .delete_link(&link(&f.actor, "default", &[]))
        .await;
    let err = invoke(&f.provider, &f.actor, "default", &get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.0, RpcErrorKind::Denied);
    assert_eq!(f.provider.connection_count(), 0);
}

#[tokio::test]
async fn a_link_with_an_invalid_configuration_answers_every_call_with_a_clear_error() {
    let provider = KeyvalueRedis::new();
    let bad = link("MACTOR", "default", &[("timeout_ms", "soon")]);
    let refused = provider.put_link(&bad).await.unwrap_err();
    assert!(refused.contains("timeout_ms"), "{refused}");
    let message = error_message(
        invoke(&provider, "MACTOR", "default", &get("a"))
            .await
            .unwrap(),
    );
    assert!(
        message.starts_with("keyvalue-redis: invalid link configuration: timeout_ms"),
        "{message}"
    );

    // A password in a bad URL is not repeated.
    let bad = link(
        "MACTOR",
        "default",
        &[("url", "redis://:hunter2@host:notaport")],
    );
    let refused = provider.put_link(&bad).await.unwrap_err();
    assert!(!refused.contains("hunter2"), "{refused}");

    // Fixing the link fixes the calls.
    let prefix = unique_prefix();
    provider
        .put_link(&link(
            "MACTOR",
            "default",
            &[("url", &redis_url()), ("prefix", &prefix)],
        ))
        .await
        .unwrap();
    assert_eq!(
        invoke(&provider, "MACTOR", "default", &get("a"))
            .await
            .unwrap(),
        KvResponse::Value { value: None }
    );
}

#[tokio::test]
async fn another_operation_or_an_undecodable_payload_is_refused() {
    let f = Fixture::new().await;
    let origin = trellis_protocol::Entity {
        kind: trellis_protocol::EntityKind::Actor,
        id: f.actor.clone(),
        contract_id: Some("wasi:keyvalue".into()),
        link_name: Some("default".into()),
    };
    let err = f
        .provider
        .handle(ProviderInvocation {
            origin: origin.clone(),
            operation: "wasi:keyvalue/store.other".into(),
            payload: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.0, RpcErrorKind::NotFound);
    let err = f
        .provider
        .handle(ProviderInvocation {
            origin,
            operation: trellis_protocol::contracts::keyvalue::OPERATION.into(),
            payload: b"\xc1 not msgpack".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.0, RpcErrorKind::BadRequest);
}

#[tokio::test]
async fn the_default_prefix_is_the_actor_and_link_name() {
    let provider = KeyvalueRedis::new();
    provider
        .put_link(&link("MACTOR", "cache", &[("url", &redis_url())]))
        .await
        .unwrap();
    let settings = provider.link_settings("MACTOR", "cache").unwrap();
    assert_eq!(settings.prefix, "MACTOR:cache:");
    assert_eq!(settings.timeout.as_millis(), 2000);
}

#[tokio::test]
async fn health_is_good_when_every_linked_redis_answers() {
    let f = Fixture::new().await;
    let health = f.provider.health().await;
    assert!(health.healthy, "{}", health.message);
}
