//! A Redis that dies or stops answering: calls fail fast with a clear
//! message, health says so, and the provider recovers when Redis is back.
//! Each test runs a `redis-server` of its own; the machine's shared Redis
//! is never touched.

use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use trellis_protocol::contracts::keyvalue::{KvRequest, KvResponse};
use trellis_provider_keyvalue_redis::KeyvalueRedis;
use trellis_provider_sdk::Provider as _;

use crate::{RedisServer, error_message, invoke, link, redis_url, unique_prefix};

const TIMEOUT_MS: u64 = 800;

async fn provider_on(server: &RedisServer) -> KeyvalueRedis {
    let provider = KeyvalueRedis::new();
    provider
        .put_link(&link(
            "MACTOR",
            "default",
            &[
                ("url", &server.url()),
                ("prefix", "p:"),
                ("timeout_ms", &TIMEOUT_MS.to_string()),
            ],
        ))
        .await
        .unwrap();
    provider
}

fn set(value: &str) -> KvRequest {
    KvRequest::Set {
        bucket: "default".into(),
        key: "k".into(),
        value: ByteBuf::from(value.as_bytes()),
    }
}

fn get() -> KvRequest {
    KvRequest::Get {
        bucket: "default".into(),
        key: "k".into(),
    }
}

/// Calls `request` and checks that it took no longer than the link's
/// timeout (plus scheduling slack).
async fn bounded_call(provider: &KeyvalueRedis, request: &KvRequest) -> KvResponse {
    let started = Instant::now();
    let response = invoke(provider, "MACTOR", "default", request)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(TIMEOUT_MS + 400),
        "a call took {took:?}, beyond the {TIMEOUT_MS} ms timeout"
    );
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_a_clear_error_and_recovers() {
    let mut server = RedisServer::start();
    let provider = provider_on(&server).await;
    assert_eq!(
        bounded_call(&provider, &set("before")).await,
        KvResponse::Done
    );
    assert!(provider.health().await.healthy);

    server.kill();
    // Every call fails, promptly, saying Redis is unavailable.
    for request in [get(), set("during"), get()] {
        let message = error_message(bounded_call(&provider, &request).await);
        assert!(
            message.starts_with(&format!(
                "keyvalue-redis: redis unavailable at {}",
                server.url()
            )) || message.starts_with("keyvalue-redis: redis did not answer within"),
            "{message}"
        );
    }
    let health = provider.health().await;
    assert!(!health.healthy);
    assert!(
        health.message.starts_with("redis unavailable:") && health.message.contains(&server.url()),
        "{}",
        health.message
    );

    server.restart();
    // The connection manager reconnects by itself; a call or two may still
    // see the outage.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match bounded_call(&provider, &set("after")).await {
            KvResponse::Done => break,
            other => {
                assert!(Instant::now() < deadline, "no recovery: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        bounded_call(&provider, &get()).await,
        KvResponse::Value {
            value: Some(ByteBuf::from(&b"after"[..]))
        }
    );
    assert!(provider.health().await.healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_times_out_within_timeout_ms() {
    let server = RedisServer::start();
    let provider = provider_on(&server).await;
    assert_eq!(bounded_call(&provider, &set("v")).await, KvResponse::Done);

    // A frozen Redis keeps its connections open but never answers.
    server.signal("STOP");
    let message = error_message(bounded_call(&provider, &get()).await);
    assert_eq!(
        message,
        format!(
            "keyvalue-redis: redis did not answer within {TIMEOUT_MS} ms at {}",
            server.url()
        )
    );
    let started = Instant::now();
    let health = provider.health().await;
    assert!(
        !health.healthy && health.message.contains("no answer to PING"),
        "{}",
        health.message
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    server.signal("CONT");
    assert_eq!(
        bounded_call(&provider, &get()).await,
        KvResponse::Value {
            value: Some(ByteBuf::from(&b"v"[..]))
        }
    );
}

#[tokio::test]
async fn a_link_to_a_redis_that_never_ran_fails_fast_and_makes_health_unhealthy() {
    let provider = KeyvalueRedis::new();
    let dead = format!("redis://127.0.0.1:{}", trellis_test_support::free_port());
    provider
        .put_link(&link(
            "MDEAD",
            "default",
            &[("url", &dead), ("timeout_ms", &TIMEOUT_MS.to_string())],
        ))
        .await
        .unwrap();
    let prefix = unique_prefix();
    provider
        .put_link(&link(
            "MALIVE",
            "default",
            &[("url", &redis_url()), ("prefix", &prefix)],
        ))
        .await
        .unwrap();
    assert_eq!(provider.connection_count(), 2);

    let message = error_message(bounded_call_as(&provider, "MDEAD").await);
    assert!(
        message.starts_with(&format!("keyvalue-redis: redis unavailable at {dead}: "))
            || message.starts_with("keyvalue-redis: redis did not answer within"),
        "{message}"
    );
    // The healthy link is unaffected.
    assert_eq!(
        invoke(&provider, "MALIVE", "default", &get())
            .await
            .unwrap(),
        KvResponse::Value { value: None }
    );
    let health = provider.health().await;
    assert!(
        !health.healthy && health.message.contains(&dead),
        "{}",
        health.message
    );
    assert!(!health.message.contains(&redis_url()), "{}", health.message);

    provider.delete_link(&link("MDEAD", "default", &[])).await;
    assert_eq!(provider.connection_count(), 1);
    assert!(provider.health().await.healthy);
}

async fn bounded_call_as(provider: &KeyvalueRedis, actor: &str) -> KvResponse {
    let started = Instant::now();
    let response = invoke(provider, actor, "default", &get()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(TIMEOUT_MS + 400));
    response
}
