//! Links are isolated by their prefixes, and share connections by URL.

use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{self as kv, KeyPage};

use crate::{
    call_as, delete_prefix, exists, get, link, linked, redis_url, set, unique_actor, unique_prefix,
    value,
};

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
    let linked = linked();
    for (actor, prefix) in [("MONE", &p1), ("MTWO", &p2)] {
        linked
            .put_link(&link(
                actor,
                "default",
                &[("url", &url), ("prefix", prefix)],
            ))
            .await
            .unwrap();
    }
    // Both links use the same Redis, through one connection manager.
    assert_eq!(linked.provider().connection_count(), 1);

    call_as(&linked, "MONE", "default", set("shared-name", b"one"))
        .await
        .unwrap();
    call_as(&linked, "MONE", "default", set("only-one", b"1"))
        .await
        .unwrap();
    assert_eq!(
        call_as(&linked, "MTWO", "default", get("shared-name")).await,
        Ok(None)
    );
    assert_eq!(
        call_as(&linked, "MTWO", "default", get("only-one")).await,
        Ok(None)
    );
    call_as(&linked, "MTWO", "default", set("shared-name", b"two"))
        .await
        .unwrap();
    assert_eq!(
        call_as(&linked, "MONE", "default", get("shared-name")).await,
        Ok(value(b"one"))
    );
    assert_eq!(
        call_as(&linked, "MTWO", "default", get("shared-name")).await,
        Ok(value(b"two"))
    );
    // Neither lists, counts or deletes the other's keys.
    let list = kv::ListKeys {
        bucket: "default".into(),
        cursor: None,
    };
    assert_eq!(
        call_as(&linked, "MTWO", "default", list).await,
        Ok(KeyPage {
            keys: vec!["shared-name".into()],
            cursor: None
        })
    );
    call_as(
        &linked,
        "MTWO",
        "default",
        kv::DeleteMany {
            bucket: "default".into(),
            keys: vec!["shared-name".into(), "only-one".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        call_as(
            &linked,
            "MONE",
            "default",
            kv::GetMany {
                bucket: "default".into(),
                keys: vec!["shared-name".into(), "only-one".into()],
            }
        )
        .await,
        Ok(vec![
            ("shared-name".into(), Some(ByteBuf::from(&b"one"[..]))),
            ("only-one".into(), Some(ByteBuf::from(&b"1"[..]))),
        ])
    );
}

#[tokio::test]
async fn two_links_of_one_actor_are_isolated_by_the_default_prefix() {
    let linked = linked();
    let actor = unique_actor();
    let _cleanup = Cleanup(vec![format!("{actor}:")]);
    for name in ["default", "cache"] {
        linked
            .put_link(&link(&actor, name, &[("url", &redis_url())]))
            .await
            .unwrap();
    }
    call_as(&linked, &actor, "default", set("k", b"v"))
        .await
        .unwrap();
    assert_eq!(
        call_as(
            &linked,
            &actor,
            "cache",
            kv::Exists {
                bucket: "cache".into(),
                key: "k".into(),
            }
        )
        .await,
        Ok(false)
    );
    assert_eq!(
        call_as(&linked, &actor, "default", exists("k")).await,
        Ok(true)
    );
}

#[tokio::test]
async fn links_that_configure_the_same_prefix_share_their_keys() {
    let prefix = unique_prefix();
    let _cleanup = Cleanup(vec![prefix.clone()]);
    let linked = linked();
    for actor in ["MONE", "MTWO"] {
        linked
            .put_link(&link(
                actor,
                "default",
                &[("url", &redis_url()), ("prefix", &prefix)],
            ))
            .await
            .unwrap();
    }
    let increment = || kv::Increment {
        bucket: "default".into(),
        key: "n".into(),
        delta: 1,
    };
    assert_eq!(
        call_as(&linked, "MONE", "default", increment()).await,
        Ok(1)
    );
    assert_eq!(
        call_as(&linked, "MTWO", "default", increment()).await,
        Ok(2)
    );
}
