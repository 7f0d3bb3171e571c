//! A Redis that dies or stops answering: calls fail fast with a clear
//! message, health says so, and the provider recovers when Redis is back.
//! Each test runs a `redis-server` of its own; the machine's shared Redis
//! is never touched.

use std::time::{Duration, Instant};

use trellis_protocol::contracts::{Answer, Operation};

use crate::{
    Linked, RedisServer, call_as, get, link, linked, other_message, redis_url, set, unique_prefix,
    value,
};

const TIMEOUT_MS: u64 = 800;

async fn provider_on(server: &RedisServer) -> Linked {
    let linked = linked();
    linked
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
    linked
}

/// Calls `request` as `actor` and checks that it took no longer than the
/// link's timeout (plus scheduling slack).
async fn bounded_call_as<O: Operation>(linked: &Linked, actor: &str, request: O) -> Answer<O> {
    let started = Instant::now();
    let answer = call_as(linked, actor, "default", request).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(TIMEOUT_MS + 400),
        "a call took {took:?}, beyond the {TIMEOUT_MS} ms timeout"
    );
    answer
}

/// [`bounded_call_as`] as `MACTOR`.
async fn bounded_call<O: Operation>(linked: &Linked, request: O) -> Answer<O> {
    bounded_call_as(linked, "MACTOR", request).await
}

/// Whether `message` says that Redis at `url` is down (or, as a connection
/// attempt may also end, that it did not answer in time).
fn says_unavailable(message: &str, url: &str) -> bool {
    message.starts_with(&format!("keyvalue-redis: redis unavailable at {url}: "))
        || message.starts_with("keyvalue-redis: redis did not answer within")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_a_clear_error_and_recovers() {
    let mut server = RedisServer::start();
    let linked = provider_on(&server).await;
    assert_eq!(bounded_call(&linked, set("k", b"before")).await, Ok(()));
    assert!(linked.health().await.healthy);

    server.kill();
    // Every call fails, promptly, as `other`, saying Redis is unavailable.
    let messages = [
        other_message(bounded_call(&linked, get("k")).await),
        other_message(bounded_call(&linked, set("k", b"during")).await),
        other_message(bounded_call(&linked, get("k")).await),
    ];
    for message in messages {
        assert!(says_unavailable(&message, &server.url()), "{message}");
    }
    let health = linked.health().await;
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
        match bounded_call(&linked, set("k", b"after")).await {
            Ok(()) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(bounded_call(&linked, get("k")).await, Ok(value(b"after")));
    assert!(linked.health().await.healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_times_out_within_timeout_ms() {
    let server = RedisServer::start();
    let linked = provider_on(&server).await;
    assert_eq!(bounded_call(&linked, set("k", b"v")).await, Ok(()));

    // A frozen Redis keeps its connections open but never answers.
    server.signal("STOP");
    let message = other_message(bounded_call(&linked, get("k")).await);
    assert_eq!(
        message,
        format!(
            "keyvalue-redis: redis did not answer within {TIMEOUT_MS} ms at {}",
            server.url()
        )
    );
    let started = Instant::now();
    let health = linked.health().await;
    assert!(
        !health.healthy && health.message.contains("no answer to PING"),
        "{}",
        health.message
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    server.signal("CONT");
    assert_eq!(bounded_call(&linked, get("k")).await, Ok(value(b"v")));
}

#[tokio::test]
async fn a_link_to_a_redis_that_never_ran_fails_fast_and_makes_health_unhealthy() {
    let linked = linked();
    let dead = format!("redis://127.0.0.1:{}", trellis_test_support::free_port());
    linked
        .put_link(&link(
            "MDEAD",
            "default",
            &[("url", &dead), ("timeout_ms", &TIMEOUT_MS.to_string())],
        ))
        .await
        .unwrap();
    let prefix = unique_prefix();
    linked
        .put_link(&link(
            "MALIVE",
            "default",
            &[("url", &redis_url()), ("prefix", &prefix)],
        ))
        .await
        .unwrap();
    assert_eq!(linked.provider().connection_count(), 2);

    let message = other_message(bounded_call_as(&linked, "MDEAD", get("k")).await);
    assert!(says_unavailable(&message, &dead), "{message}");
    // The healthy link is unaffected.
    assert_eq!(
        call_as(&linked, "MALIVE", "default", get("k")).await,
        Ok(None)
    );
    let health = linked.health().await;
    assert!(
        !health.healthy && health.message.contains(&dead),
        "{}",
        health.message
    );
    assert!(!health.message.contains(&redis_url()), "{}", health.message);

    linked.delete_link(&link("MDEAD", "default", &[])).await;
    assert_eq!(linked.provider().connection_count(), 1);
    assert!(linked.health().await.healthy);
}
