//! Links are isolated by their prefixes, and share connections by URL.

use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{KvRequest, KvResponse};
use trellis_provider_keyvalue_redis::KeyvalueRedis;
use trellis_provider_sdk::Provider as _;

use crate::{delete_prefix, invoke, link, redis_url, unique_prefix};

struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for prefix in &self.0 {
            delete_prefix(&redis_url(), prefix);
        }
    }
}

#[tokio::test]
async fn two_links_with_different_prefixes_cannot_read_each_others_keys() {
    let url = redis_url();
    let (p1, p2) = (unique_prefix(), unique_prefix());
    let _cleanup = Cleanup(vec![p1.clone(), p2.clone()]);
    let provider = KeyvalueRedis::new();
    // Two actors, and a second link of the first actor.
    let links = [("MONE", "default", &p1), ("MTWO", "default", &p2)];
    for (actor, name, prefix) in links {
        provider
            .put_link(&link(actor, name, &[("url", &url), ("prefix", prefix)]))
            .await
            .unwrap();
    }
    // Both links use the same Redis, through one connection manager.
    assert_eq!(provider.connection_count(), 1);

    let set = |value: &str| KvRequest::Set {
        bucket: "default".into(),
        key: "shared-name".into(),
        value: ByteBuf::from(value.as_bytes()),
    };
    let get = |key: &str| KvRequest::Get {
        bucket: "default".into(),
        key: key.into(),
    };
    invoke(&provider, "MONE", "default", &set("one"))
        .await
        .unwrap();
    invoke(
        &provider,
        "MONE",
        "default",
        &KvRequest::Set {
            bucket: "default".into(),
            key: "only-one".into(),
            value: ByteBuf::from(&b"1"[..]),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        invoke(&provider, "MTWO", "default", &get("shared-name"))
            .await
            .unwrap(),
        KvResponse::Value { value: None }
    );
    assert_eq!(
        invoke(&provider, "MTWO", "default", &get("only-one"))
            .await
            .unwrap(),
        KvResponse::Value { value: None }
    );
    invoke(&provider, "MTWO", "default", &set("two"))
        .await
        .unwrap();
    assert_eq!(
        invoke(&provider, "MONE", "default", &get("shared-name"))
            .await
            .unwrap(),
        KvResponse::Value {
            value: Some(ByteBuf::from(&b"one"[..]))
        }
    );
    assert_eq!(
        invoke(&provider, "MTWO", "default", &get("shared-name"))
            .await
            .unwrap(),
        KvResponse::Value {
            value: Some(ByteBuf::from(&b"two"[..]))
        }
    );
    // Neither lists, counts or deletes the other's keys.
    let list = KvRequest::ListKeys {
        bucket: "default".into(),
        cursor: None,
    };
    assert_eq!(
        invoke(&provider, "MTWO", "default", &list).await.unwrap(),
        KvResponse::Keys {
            keys: vec!["shared-name".into()],
            cursor: None
        }
    );
    invoke(
        &provider,
        "MTWO",
        "default",
        &KvRequest::DeleteMany {
            bucket: "default".into(),
            keys: vec!["shared-name".into(), "only-one".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        invoke(
            &provider,
            "MONE",
            "default",
            &KvRequest::GetMany {
                bucket: "default".into(),
                keys: vec!["shared-name".into(), "only-one".into()],
            }
        )
        .await
        .unwrap(),
        KvResponse::Values {
            values: vec![
                ("shared-name".into(), Some(ByteBuf::from(&b"one"[..]))),
                ("only-one".into(), Some(ByteBuf::from(&b"1"[..]))),
            ]
        }
    );
}

#[tokio::test]
async fn two_links_of_one_actor_are_isolated_by_the_default_prefix() {
    let provider = KeyvalueRedis::new();
    let actor = format!("MTEST{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    let _cleanup = Cleanup(vec![format!("{actor}:")]);
    for name in ["default", "cache"] {
        provider
            .put_link(&link(&actor, name, &[("url", &redis_url())]))
            .await
            .unwrap();
    }
    invoke(
        &provider,
        &actor,
        "default",
        &KvRequest::Set {
            bucket: "default".into(),
            key: "k".into(),
            value: ByteBuf::from(&b"v"[..]),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        invoke(
            &provider,
            &actor,
            "cache",
            &KvRequest::Exists {
                bucket: "cache".into(),
                key: "k".into(),
            }
        )
        .await
        .unwrap(),
        KvResponse::Exists { exists: false }
    );
}

#[tokio::test]
async fn links_that_configure_the_same_prefix_share_their_keys() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let provider = KeyvalueRedis::new();
    for actor in ["MONE", "MTWO"] {
        provider
            .put_link(&link(
                actor,
                "default",
                &[("url", &redis_url()), ("prefix", &prefix)],
            ))
            .await
            .unwrap();
    }
    invoke(
        &provider,
        "MONE",
        "default",
        &KvRequest::Increment {
            bucket: "default".into(),
            key: "n".into(),
            delta: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        invoke(
            &provider,
            "MTWO",
            "default",
            &KvRequest::Increment {
                bucket: "default".into(),
                key: "n".into(),
                delta: 1,
            }
        )
        .await
        .unwrap(),
        KvResponse::Number { value: 2 }
    );
}
