//! Every key-value operation against a real JetStream bucket, through the
//! SDK's link table (in-process, without the invocation layer).

use std::time::Duration;

use serde_bytes::ByteBuf;
use trellis_protocol::RpcErrorKind;
use trellis_protocol::contracts::keyvalue::{self as kv, KeyPage, KvError};
use trellis_provider_keyvalue_nats::{LIST_PAGE_SIZE, LinkSettings};
use trellis_test_support::NatsServer;

use crate::{Linked, call_as, invoke, link, linked};

/// Links `actor` to the `ops` bucket under `prefix`, each call bounded by
/// `timeout_ms`.
async fn link_to_ops(linked: &Linked, actor: &str, prefix: &str, timeout_ms: u64) {
    linked
        .put_link(&link(
            actor,
            &[
                ("bucket", "ops"),
                ("prefix", prefix),
                ("timeout_ms", &timeout_ms.to_string()),
            ],
        ))
        .await
        .unwrap();
}

/// A provider on `server` with `MACTOR` linked under `prefix`.
async fn provider(server: &NatsServer, prefix: &str) -> Linked {
    let linked = linked(&server.url()).await;
    link_to_ops(&linked, "MACTOR", prefix, 5_000).await;
    linked
}

fn b(s: &str) -> String {
    s.to_owned()
}

fn get(key: &str) -> kv::Get {
    kv::Get {
        bucket: b(""),
        key: b(key),
    }
}

fn set(key: &str, value: Vec<u8>) -> kv::Set {
    kv::Set {
        bucket: b(""),
        key: b(key),
        value: ByteBuf::from(value),
    }
}

fn exists(key: &str) -> kv::Exists {
    kv::Exists {
        bucket: b(""),
        key: b(key),
    }
}

fn list(cursor: Option<u64>) -> kv::ListKeys {
    kv::ListKeys {
        bucket: b(""),
        cursor,
    }
}

#[tokio::test]
async fn every_operation_round_trips() {
    let server = NatsServer::start();
    let p = provider(&server, "p1").await;
    let call = |request| call_as(&p, "MACTOR", request);

    assert_eq!(call(get("missing")).await, Ok(None));
    assert_eq!(
        call_as(
            &p,
            "MACTOR",
            set("ünïcödé:key", "välue ✓".as_bytes().to_vec())
        )
        .await,
        Ok(())
    );
    assert_eq!(
        call(get("ünïcödé:key")).await,
        Ok(Some(ByteBuf::from("välue ✓".as_bytes().to_vec())))
    );
    let binary: Vec<u8> = (0..=255).collect();
    call_as(&p, "MACTOR", set("bin", binary.clone()))
        .await
        .unwrap();
    assert_eq!(call(get("bin")).await, Ok(Some(ByteBuf::from(binary))));
    assert_eq!(call_as(&p, "MACTOR", exists("bin")).await, Ok(true));
    assert_eq!(
        call_as(
            &p,
            "MACTOR",
            kv::Delete {
                bucket: b(""),
                key: b("bin")
            }
        )
        .await,
        Ok(())
    );
    assert_eq!(call_as(&p, "MACTOR", exists("bin")).await, Ok(false));

    let increment = |delta| kv::Increment {
        bucket: b(""),
        key: b("n"),
        delta,
    };
    for expected in 1..=3 {
        assert_eq!(call_as(&p, "MACTOR", increment(1)).await, Ok(expected));
    }
    assert_eq!(call_as(&p, "MACTOR", increment(10)).await, Ok(13));

    let entries = vec![
        (b("a"), ByteBuf::from(b"1".to_vec())),
        (b("b"), ByteBuf::from(b"2".to_vec())),
    ];
    assert_eq!(
        call_as(
            &p,
            "MACTOR",
            kv::SetMany {
                bucket: b(""),
                entries
            }
        )
        .await,
        Ok(())
    );
    assert_eq!(
        call_as(
            &p,
            "MACTOR",
            kv::GetMany {
                bucket: b(""),
                keys: vec![b("a"), b("zz"), b("b")]
            }
        )
        .await,
        Ok(vec![
            (b("a"), Some(ByteBuf::from(b"1".to_vec()))),
            (b("zz"), None),
            (b("b"), Some(ByteBuf::from(b"2".to_vec())))
        ])
    );
    assert_eq!(
        call_as(
            &p,
            "MACTOR",
            kv::DeleteMany {
                bucket: b(""),
                keys: vec![b("a"), b("b")]
            }
        )
        .await,
        Ok(())
    );
    assert_eq!(call_as(&p, "MACTOR", exists("a")).await, Ok(false));
}

#[tokio::test]
async fn incrementing_a_value_that_is_not_a_number_is_an_other_error() {
    let server = NatsServer::start();
    let p = provider(&server, "inc").await;
    call_as(&p, "MACTOR", set("text", b"not a number".to_vec()))
        .await
        .unwrap();
    let answer = call_as(
        &p,
        "MACTOR",
        kv::Increment {
            bucket: b(""),
            key: b("text"),
            delta: 1,
        },
    )
    .await;
    assert!(matches!(answer, Err(KvError::Other { .. })), "{answer:?}");
    // The value is left as it was.
    assert_eq!(
        call_as(&p, "MACTOR", get("text")).await,
        Ok(Some(ByteBuf::from(b"not a number".to_vec())))
    );
}

#[tokio::test]
async fn a_one_mib_value_round_trips() {
    let server = NatsServer::start();
    let p = provider(&server, "big").await;
    // The default NATS max_payload is 1 MiB including headers, so the
    // largest storable value is just under it.
    let value: Vec<u8> = (0..1024 * 1024 - 4096).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        call_as(&p, "MACTOR", set("big", value.clone())).await,
        Ok(())
    );
    assert_eq!(
        call_as(&p, "MACTOR", get("big")).await,
        Ok(Some(ByteBuf::from(value)))
    );
}

#[tokio::test]
async fn list_keys_pages_with_a_cursor_and_sees_only_its_prefix() {
    let server = NatsServer::start();
    let p = provider(&server, "mine").await;
    link_to_ops(&p, "MTHEIRS", "theirs", 5_000).await;
    let total = LIST_PAGE_SIZE + 5;
    let entries: Vec<(String, ByteBuf)> = (0..total)
        .map(|i| (format!("k{i:05}"), ByteBuf::from(vec![1])))
        .collect();
    call_as(
        &p,
        "MACTOR",
        kv::SetMany {
            bucket: b(""),
            entries,
        },
    )
    .await
    .unwrap();
    call_as(&p, "MTHEIRS", set("secret", vec![1]))
        .await
        .unwrap();

    let KeyPage { keys, cursor } = call_as(&p, "MACTOR", list(None)).await.unwrap();
    assert_eq!(keys.len(), LIST_PAGE_SIZE);
    assert_eq!(keys[0], "k00000");
    let KeyPage {
        keys: rest,
        cursor: end,
    } = call_as(&p, "MACTOR", list(cursor)).await.unwrap();
    assert_eq!(rest.len(), 5);
    assert_eq!(end, None);
    assert!(!keys.iter().chain(&rest).any(|k| k == "secret"));
}

#[tokio::test]
async fn two_links_with_different_prefixes_cannot_read_each_others_keys() {
    let server = NatsServer::start();
    let p = linked(&server.url()).await;
    link_to_ops(&p, "MALPHA", "alpha", 5_000).await;
    link_to_ops(&p, "MBETA", "beta", 5_000).await;
    call_as(&p, "MALPHA", set("k", b"from a".to_vec()))
        .await
        .unwrap();
    assert_eq!(call_as(&p, "MBETA", get("k")).await, Ok(None));
    assert_eq!(
        call_as(&p, "MALPHA", get("k")).await,
        Ok(Some(ByteBuf::from(b"from a".to_vec())))
    );
}

#[tokio::test]
async fn the_default_prefix_is_the_actor_id() {
    let server = NatsServer::start();
    let p = linked(&server.url()).await;
    let default_link = link("MONE", &[("bucket", "ops")]);
    assert_eq!(
        LinkSettings::from_link(&default_link).unwrap().prefix,
        "MONE"
    );
    p.put_link(&default_link).await.unwrap();
    // Another actor that names MONE's prefix sees MONE's keys.
    link_to_ops(&p, "MTWO", "MONE", 5_000).await;
    call_as(&p, "MONE", set("k", b"v".to_vec())).await.unwrap();
    assert_eq!(
        call_as(&p, "MTWO", get("k")).await,
        Ok(Some(ByteBuf::from(b"v".to_vec())))
    );
}

#[tokio::test]
async fn an_actor_without_a_link_is_denied_and_so_is_one_whose_link_was_deleted() {
    let server = NatsServer::start();
    let p = provider(&server, "deny").await;
    let err = invoke(&p, "MSTRANGER", get("k")).await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);
    assert!(matches!(
        call_as(&p, "MSTRANGER", get("k")).await,
        Err(KvError::AccessDenied { .. })
    ));

    assert_eq!(call_as(&p, "MACTOR", get("k")).await, Ok(None));
    p.delete_link(&link("MACTOR", &[])).await;
    assert!(!p.is_linked("MACTOR", "default"));
    let err = invoke(&p, "MACTOR", get("k")).await.unwrap_err();
    assert_eq!(err.kind, RpcErrorKind::Denied);
}

#[tokio::test]
async fn a_link_with_an_invalid_configuration_is_refused_and_its_calls_are_denied() {
    let server = NatsServer::start();
    let p = linked(&server.url()).await;
    for (key, value) in [
        ("bucket", "has.dots"),
        ("prefix", "a b"),
        ("timeout_ms", "soon"),
        ("timeout_ms", "0"),
    ] {
        let refused = p
            .put_link(&link("MACTOR", &[(key, value)]))
            .await
            .unwrap_err();
        assert!(refused.contains(key), "{key}={value}: {refused}");
        assert!(!p.is_linked("MACTOR", "default"), "{key}={value}");
        let err = invoke(&p, "MACTOR", get("k")).await.unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Denied, "{key}={value}");
        assert!(err.message.contains(key), "{key}={value}: {}", err.message);
    }

    // A valid link replaces the refused one.
    link_to_ops(&p, "MACTOR", "fixed", 5_000).await;
    assert_eq!(call_as(&p, "MACTOR", get("k")).await, Ok(None));
}

#[tokio::test]
async fn an_unreachable_server_gives_an_other_error_within_the_timeout() {
    let mut server = NatsServer::start();
    let p = linked(&server.url()).await;
    link_to_ops(&p, "MACTOR", "down", 500).await;
    call_as(&p, "MACTOR", set("k", vec![1])).await.unwrap();
    server.kill();
    let started = std::time::Instant::now();
    let answer = call_as(&p, "MACTOR", get("k")).await;
    assert!(matches!(answer, Err(KvError::Other { .. })), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
