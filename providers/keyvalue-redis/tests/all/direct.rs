//! Every operation of the contract, called on the provider in-process
//! (bypassing NATS) against the machine's Redis, each test under a prefix
//! of its own.

use serde_bytes::ByteBuf;
use trellis_protocol::RpcErrorKind;
use trellis_protocol::contracts::keyvalue::{self as kv, KeyPage, KvError};
use trellis_protocol::contracts::{Operation as _, encode_request};
use trellis_provider_keyvalue_redis::{LIST_PAGE_SIZE, LinkSettings};

use crate::{
    Fixture, call_as, delete_prefix, exists, get, invoke, link, linked, origin, other_message,
    redis_url, set, unique_actor, unique_prefix, value,
};

fn bucket() -> String {
    "default".to_owned()
}

fn list(cursor: Option<u64>) -> kv::ListKeys {
    kv::ListKeys {
        bucket: bucket(),
        cursor,
    }
}

#[tokio::test]
async fn set_get_exists_and_delete_round_trip() {
    let f = Fixture::new().await;
    assert_eq!(f.call(get("a")).await, Ok(None));
    assert_eq!(f.call(exists("a")).await, Ok(false));
    assert_eq!(f.call(set("a", b"one")).await, Ok(()));
    assert_eq!(f.call(get("a")).await, Ok(value(b"one")));
    assert_eq!(f.call(exists("a")).await, Ok(true));
    assert_eq!(f.call(set("a", b"two")).await, Ok(()));
    assert_eq!(f.call(get("a")).await, Ok(value(b"two")));
    let delete = kv::Delete {
        bucket: bucket(),
        key: "a".into(),
    };
    assert_eq!(f.call(delete.clone()).await, Ok(()));
    assert_eq!(f.call(get("a")).await, Ok(None));
    assert_eq!(f.call(exists("a")).await, Ok(false));
    // Deleting a missing key is not an error.
    assert_eq!(f.call(delete).await, Ok(()));
}

#[tokio::test]
async fn keys_are_stored_in_redis_under_the_link_prefix() {
    let f = Fixture::new().await;
    f.call(set("counter:x", b"42")).await.unwrap();
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
        assert_eq!(f.call(set(key, &binary)).await, Ok(()), "{key}");
    }
    for key in keys {
        assert_eq!(f.call(get(key)).await, Ok(value(&binary)), "{key}");
    }
    // An empty value is a value, not an absence.
    f.call(set("empty", b"")).await.unwrap();
    assert_eq!(f.call(get("empty")).await, Ok(value(b"")));
    assert_eq!(f.call(exists("empty")).await, Ok(true));
    // Glob characters in keys do not confuse listing.
    let KeyPage { mut keys, cursor } = f.call(list(None)).await.unwrap();
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
    assert_eq!(f.call(set("big", &big)).await, Ok(()));
    assert_eq!(f.call(get("big")).await, Ok(value(&big)));
}

#[tokio::test]
async fn list_keys_pages_through_every_key_in_sorted_order_with_an_index_cursor() {
    let f = Fixture::new().await;
    let total = 2 * LIST_PAGE_SIZE + 345;
    let mut expected: Vec<String> = (0..total).map(|i| format!("key-{i}")).collect();
    let set_many = kv::SetMany {
        bucket: bucket(),
        entries: expected
            .iter()
            .map(|k| (k.clone(), ByteBuf::from(k.as_bytes())))
            .collect(),
    };
    assert_eq!(f.call(set_many).await, Ok(()));
    expected.sort();

    // A key of another prefix is never listed.
    let other = Fixture::new().await;
    other.call(set("intruder", b"x")).await.unwrap();

    let mut listed = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let KeyPage { keys, cursor: next } = f.call(list(cursor)).await.unwrap();
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
    let KeyPage { keys, cursor } = f.call(list(Some(LIST_PAGE_SIZE as u64))).await.unwrap();
    assert_eq!(keys, expected[LIST_PAGE_SIZE..2 * LIST_PAGE_SIZE]);
    assert_eq!(cursor, Some(2 * LIST_PAGE_SIZE as u64));
    assert_eq!(
        f.call(list(Some(u64::MAX))).await,
        Ok(KeyPage {
            keys: vec![],
            cursor: None
        })
    );
}

#[tokio::test]
async fn list_keys_of_an_empty_prefix_is_one_empty_page() {
    let f = Fixture::new().await;
    assert_eq!(
        f.call(list(None)).await,
        Ok(KeyPage {
            keys: vec![],
            cursor: None
        })
    );
}

#[tokio::test]
async fn increment_creates_a_missing_key_then_adds_to_it() {
    let f = Fixture::new().await;
    let increment = |delta| kv::Increment {
        bucket: bucket(),
        key: "hits".into(),
        delta,
    };
    assert_eq!(f.call(increment(5)).await, Ok(5));
    assert_eq!(f.call(increment(1)).await, Ok(6));
    assert_eq!(f.call(increment(0)).await, Ok(6));
    // The number is decimal text, readable with get.
    assert_eq!(f.call(get("hits")).await, Ok(value(b"6")));

    // Concurrent increments are atomic.
    let results = futures::future::join_all((0..50).map(|_| f.call(increment(2)))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(f.call(get("hits")).await, Ok(value(b"106")));

    // A delta Redis cannot count is refused, and so is a value that is not
    // a number; both as `other`, and neither changes the counter.
    let message = other_message(f.call(increment(u64::MAX)).await);
    assert!(message.contains("increment by"), "{message}");
    f.call(set("text", b"not a number")).await.unwrap();
    let message = other_message(
        f.call(kv::Increment {
            bucket: bucket(),
            key: "text".into(),
            delta: 1,
        })
        .await,
    );
    assert!(message.contains("redis error:"), "{message}");
    assert_eq!(f.call(get("hits")).await, Ok(value(b"106")));
    assert_eq!(f.call(get("text")).await, Ok(value(b"not a number")));
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
        f.call(kv::SetMany {
            bucket: bucket(),
            entries,
        })
        .await,
        Ok(())
    );
    let get_many = |keys: &[&str]| kv::GetMany {
        bucket: bucket(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    };
    assert_eq!(
        f.call(get_many(&["b", "missing", "ü", "a"])).await,
        Ok(vec![
            ("b".into(), value(b"2")),
            ("missing".into(), None),
            ("ü".into(), value(&[0, 255])),
            ("a".into(), value(b"1")),
        ])
    );
    // A single key still comes back as a list of one.
    assert_eq!(
        f.call(get_many(&["a"])).await,
        Ok(vec![("a".into(), value(b"1"))])
    );
    assert_eq!(
        f.call(kv::DeleteMany {
            bucket: bucket(),
            keys: vec!["a".into(), "ü".into(), "missing".into()],
        })
        .await,
        Ok(())
    );
    assert_eq!(
        f.call(get_many(&["a", "b", "ü"])).await,
        Ok(vec![
            ("a".into(), None),
            ("b".into(), value(b"2")),
            ("ü".into(), None)
        ])
    );
    // Empty batches are no-ops.
    assert_eq!(f.call(get_many(&[])).await, Ok(vec![]));
    assert_eq!(
        f.call(kv::SetMany {
            bucket: bucket(),
            entries: vec![]
        })
        .await,
        Ok(())
    );
    assert_eq!(
        f.call(kv::DeleteMany {
            bucket: bucket(),
            keys: vec![]
        })
        .await,
        Ok(())
    );
}

#[tokio::test]
async fn an_actor_without_a_link_is_denied_and_so_is_one_whose_link_was_deleted() {
    let f = Fixture::new().await;
    let err = invoke(&f.linked, "MSTRANGER", "default", get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);
    // The host's stub sees it as the contract's own denial.
    assert!(matches!(
        call_as(&f.linked, "MSTRANGER", "default", get("a")).await,
        Err(KvError::AccessDenied { .. })
    ));
    // The right actor under another link name has no link either.
    let err = invoke(&f.linked, &f.actor, "other", get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);

    // A deletion naming another provider leaves the link alone.
    let mut foreign = link(&f.actor, "default", &[]);
    foreign.provider_id = "VSOMEONEELSE".into();
    f.linked.delete_link(&foreign).await;
    assert_eq!(f.call(get("a")).await, Ok(None));
    assert!(f.linked.is_linked(&f.actor, "default"));

    f.linked.delete_link(&link(&f.actor, "default", &[])).await;
    let err = invoke(&f.linked, &f.actor, "default", get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);
    assert!(!f.linked.is_linked(&f.actor, "default"));
    // The deleted link's connection is released.
    assert_eq!(f.provider().connection_count(), 0);
}

#[tokio::test]
async fn a_link_with_an_invalid_configuration_is_refused_and_its_calls_are_denied() {
    let linked = linked();
    let bad = link("MACTOR", "default", &[("timeout_ms", "soon")]);
    let refused = linked.put_link(&bad).await.unwrap_err();
    assert!(refused.contains("timeout_ms"), "{refused}");
    assert!(!linked.is_linked("MACTOR", "default"));
    assert_eq!(linked.provider().connection_count(), 0);
    // Calls over the refused link are denied, with the reason.
    let err = invoke(&linked, "MACTOR", "default", get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);
    assert!(err.message.contains("timeout_ms"), "{}", err.message);
    assert!(matches!(
        call_as(&linked, "MACTOR", "default", get("a")).await,
        Err(KvError::AccessDenied { .. })
    ));

    // A password in a bad URL is not repeated, neither in the refusal nor
    // in the denial of a call.
    let bad = link(
        "MACTOR",
        "default",
        &[("url", "redis://:hunter2@host:notaport")],
    );
    let refused = linked.put_link(&bad).await.unwrap_err();
    assert!(!refused.contains("hunter2"), "{refused}");
    let err = invoke(&linked, "MACTOR", "default", get("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);
    assert!(!err.message.contains("hunter2"), "{}", err.message);

    // Fixing the link fixes the calls.
    let prefix = unique_prefix();
    linked
        .put_link(&link(
            "MACTOR",
            "default",
            &[("url", &redis_url()), ("prefix", &prefix)],
        ))
        .await
        .unwrap();
    assert!(linked.is_linked("MACTOR", "default"));
    assert_eq!(
        invoke(&linked, "MACTOR", "default", get("a")).await,
        Ok(Ok(None))
    );
}

#[tokio::test]
async fn another_operation_or_an_undecodable_payload_is_refused() {
    let f = Fixture::new().await;
    let origin = origin(&f.actor, "default");
    let err = f
        .linked
        .call(&origin, "wasi:keyvalue/store.other", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::NotFound);
    let err = f
        .linked
        .call(&origin, kv::Get::NAME, b"\xc1 not msgpack")
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::BadRequest);
    // A well-formed request of another operation is not this one's request.
    let err = f
        .linked
        .call(
            &origin,
            kv::Increment::NAME,
            &encode_request(&get("a")).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::BadRequest);
}

#[tokio::test]
async fn the_default_prefix_is_the_actor_and_link_name() {
    let actor = unique_actor();
    let url = redis_url();
    let default_link = link(&actor, "cache", &[("url", &url)]);
    let settings = LinkSettings::from_link(&default_link).unwrap();
    assert_eq!(settings.prefix, format!("{actor}:cache:"));
    assert_eq!(settings.timeout.as_millis(), 2000);

    // And that is where a value set over the link lands.
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            delete_prefix(&self.0, &self.1);
        }
    }
    let _cleanup = Cleanup(url.clone(), settings.prefix.clone());
    let linked = linked();
    linked.put_link(&default_link).await.unwrap();
    assert!(linked.is_linked(&actor, "cache"));
    call_as(&linked, &actor, "cache", set("k", b"v"))
        .await
        .unwrap();
    let mut r = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{actor}:cache:k"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn health_is_good_when_every_linked_redis_answers() {
    let f = Fixture::new().await;
    let health = f.linked.health().await;
    assert!(health.healthy, "{}", health.message);
}
