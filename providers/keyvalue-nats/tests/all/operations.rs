//! Every key-value operation against a real JetStream bucket.

use std::time::Duration;

use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{KvRequest, KvResponse};
use trellis_provider_keyvalue_nats::{KeyvalueNats, LIST_PAGE_SIZE, LinkSettings};
use trellis_test_support::NatsServer;

fn settings(prefix: &str) -> LinkSettings {
    LinkSettings {
        bucket: "ops".into(),
        prefix: prefix.into(),
        timeout: Duration::from_secs(5),
    }
}

fn b(s: &str) -> String {
    s.to_owned()
}

#[tokio::test]
async fn every_operation_round_trips() {
    let server = NatsServer::start();
    let provider = KeyvalueNats::new(async_nats::connect(server.url()).await.unwrap());
    let s = settings("p1");
    let set = |key: &str, value: Vec<u8>| KvRequest::Set {
        bucket: b(""),
        key: b(key),
        value: ByteBuf::from(value),
    };

    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Get {
                    bucket: b(""),
                    key: b("missing")
                }
            )
            .await,
        KvResponse::Value { value: None }
    );
    assert_eq!(
        provider
            .execute(&s, set("ünïcödé:key", "välue ✓".as_bytes().to_vec()))
            .await,
        KvResponse::Done
    );
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Get {
                    bucket: b(""),
                    key: b("ünïcödé:key")
                }
            )
            .await,
        KvResponse::Value {
            value: Some(ByteBuf::from("välue ✓".as_bytes().to_vec()))
        }
    );
    let binary: Vec<u8> = (0..=255).collect();
    provider.execute(&s, set("bin", binary.clone())).await;
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Get {
                    bucket: b(""),
                    key: b("bin")
                }
            )
            .await,
        KvResponse::Value {
            value: Some(ByteBuf::from(binary))
        }
    );
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Exists {
                    bucket: b(""),
                    key: b("bin")
                }
            )
            .await,
        KvResponse::Exists { exists: true }
    );
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Delete {
                    bucket: b(""),
                    key: b("bin")
                }
            )
            .await,
        KvResponse::Done
    );
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Exists {
                    bucket: b(""),
                    key: b("bin")
                }
            )
            .await,
        KvResponse::Exists { exists: false }
    );

    for expected in 1..=3 {
        let r = provider
            .execute(
                &s,
                KvRequest::Increment {
                    bucket: b(""),
                    key: b("n"),
                    delta: 1,
                },
            )
            .await;
        assert_eq!(r, KvResponse::Number { value: expected });
    }
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Increment {
                    bucket: b(""),
                    key: b("n"),
                    delta: 10
                }
            )
            .await,
        KvResponse::Number { value: 13 }
    );

    let entries = vec![
        (b("a"), ByteBuf::from(b"1".to_vec())),
        (b("b"), ByteBuf::from(b"2".to_vec())),
    ];
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::SetMany {
                    bucket: b(""),
                    entries
                }
            )
            .await,
        KvResponse::Done
    );
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::GetMany {
                    bucket: b(""),
                    keys: vec![b("a"), b("zz"), b("b")]
                }
            )
            .await,
        KvResponse::Values {
            values: vec![
                (b("a"), Some(ByteBuf::from(b"1".to_vec()))),
                (b("zz"), None),
                (b("b"), Some(ByteBuf::from(b"2".to_vec())))
            ]
        }
    );
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::DeleteMany {
                    bucket: b(""),
                    keys: vec![b("a"), b("b")]
                }
            )
            .await,
        KvResponse::Done
    );
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Exists {
                    bucket: b(""),
                    key: b("a")
                }
            )
            .await,
        KvResponse::Exists { exists: false }
    );
}

#[tokio::test]
async fn a_one_mib_value_round_trips() {
    let server = NatsServer::start();
    let provider = KeyvalueNats::new(async_nats::connect(server.url()).await.unwrap());
    let s = settings("big");
    // The default NATS max_payload is 1 MiB including headers, so the
    // largest storable value is just under it.
    let value: Vec<u8> = (0..1024 * 1024 - 4096).map(|i| (i % 251) as u8).collect();
    let set = KvRequest::Set {
        bucket: b(""),
        key: b("big"),
        value: ByteBuf::from(value.clone()),
    };
    assert_eq!(provider.execute(&s, set).await, KvResponse::Done);
    assert_eq!(
        provider
            .execute(
                &s,
                KvRequest::Get {
                    bucket: b(""),
                    key: b("big")
                }
            )
            .await,
        KvResponse::Value {
            value: Some(ByteBuf::from(value))
        }
    );
}

#[tokio::test]
async fn list_keys_pages_with_a_cursor_and_sees_only_its_prefix() {
    let server = NatsServer::start();
    let provider = KeyvalueNats::new(async_nats::connect(server.url()).await.unwrap());
    let mine = settings("mine");
    let total = LIST_PAGE_SIZE + 5;
    let entries: Vec<(String, ByteBuf)> = (0..total)
        .map(|i| (format!("k{i:05}"), ByteBuf::from(vec![1])))
        .collect();
    provider
        .execute(
            &mine,
            KvRequest::SetMany {
                bucket: b(""),
                entries,
            },
        )
        .await;
    provider
        .execute(
            &settings("theirs"),
            KvRequest::Set {
                bucket: b(""),
                key: b("secret"),
                value: ByteBuf::from(vec![1]),
            },
        )
        .await;

    let KvResponse::Keys { keys, cursor } = provider
        .execute(
            &mine,
            KvRequest::ListKeys {
                bucket: b(""),
                cursor: None,
            },
        )
        .await
    else {
        panic!("not a key page")
    };
    assert_eq!(keys.len(), LIST_PAGE_SIZE);
    assert_eq!(keys[0], "k00000");
    let KvResponse::Keys {
        keys: rest,
        cursor: end,
    } = provider
        .execute(
            &mine,
            KvRequest::ListKeys {
                bucket: b(""),
                cursor,
            },
        )
        .await
    else {
        panic!("not a key page")
    };
    assert_eq!(rest.len(), 5);
    assert_eq!(end, None);
    assert!(!keys.iter().chain(&rest).any(|k| k == "secret"));
}

#[tokio::test]
async fn two_links_with_different_prefixes_cannot_read_each_others_keys() {
    let server = NatsServer::start();
    let provider = KeyvalueNats::new(async_nats::connect(server.url()).await.unwrap());
    let (a, c) = (settings("alpha"), settings("beta"));
    provider
        .execute(
            &a,
            KvRequest::Set {
                bucket: b(""),
                key: b("k"),
                value: ByteBuf::from(b"from a".to_vec()),
            },
        )
        .await;
    assert_eq!(
        provider
            .execute(
                &c,
                KvRequest::Get {
                    bucket: b(""),
                    key: b("k")
                }
            )
            .await,
        KvResponse::Value { value: None }
    );
}

#[tokio::test]
async fn an_unreachable_server_gives_a_clear_error_within_the_timeout() {
    let mut server = NatsServer::start();
    let provider = KeyvalueNats::new(async_nats::connect(server.url()).await.unwrap());
    let s = LinkSettings {
        timeout: Duration::from_millis(500),
        ..settings("down")
    };
    provider
        .execute(
            &s,
            KvRequest::Set {
                bucket: b(""),
                key: b("k"),
                value: ByteBuf::from(vec![1]),
            },
        )
        .await;
    server.kill();
    let started = std::time::Instant::now();
    let response = provider
        .execute(
            &s,
            KvRequest::Get {
                bucket: b(""),
                key: b("k"),
            },
        )
        .await;
    assert!(matches!(response, KvResponse::Error { .. }), "{response:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
