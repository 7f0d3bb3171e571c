//! Limits and failures give the documented statuses, with JSON bodies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::Request;
use hyper::body::Frame;
use trellis_host::HostConfig;

use crate::{Setup, free_address, get, request, send, wait_until_listening};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gives_413() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let address = free_address();
    setup
        .link(
            &hello,
            &[
                ("address", address.to_string()),
                ("max_body_bytes", "1024".to_owned()),
            ],
        )
        .await;
    wait_until_listening(address, "/").await;
    let host = address.to_string();

    // Refused on its Content-Length, before the body is read.
    let answer = send(
        address,
        request("POST", &host, "/", vec![b'x'; 4096].into()),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(
        answer.error(),
        "the request body exceeds the limit of 1024 bytes"
    );

    // Refused while reading a chunked body, which announces no length.
    let chunks = (0..3)
        .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'x'; 1000]))));
    let chunked = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", &host)
        .body(StreamBody::new(futures::stream::iter(chunks)))
        .unwrap();
    let answer = send(address, chunked).await.unwrap();
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.headers.get("content-type").is_some());

    // A body at the limit reaches the actor (which refuses POST itself).
    let answer = send(
        address,
        request("POST", &host, "/", vec![b'x'; 1024].into()),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 405, "{answer:?}");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_nats_max_payload_gives_413() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
    wait_until_listening(address, "/").await;

    // Under the 10 MiB default limit, but over NATS' 1 MiB max_payload:
    // refused on its Content-Length alone. The body never comes: the
    // answer must not wait for it.
    let never = futures::stream::pending::<Result<Frame<Bytes>, std::convert::Infallible>>();
    let request = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", address.to_string())
        .header("content-length", (2 * 1024 * 1024).to_string())
        .body(StreamBody::new(never))
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), send(address, request))
        .await
        .expect("the provider waited for the body")
        .unwrap();
    assert_eq!(answer.status, 413, "{answer:?}");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_is_not_buffered_past_the_nats_max_payload() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let address = free_address();
    // The link would take 64 MiB: max_payload is what stops the read.
    setup
        .link(
            &hello,
            &[
                ("address", address.to_string()),
                ("max_body_bytes", (64 * 1024 * 1024).to_string()),
            ],
        )
        .await;
    wait_until_listening(address, "/").await;

    // No Content-Length: 64 KiB chunks that would reach 32 MiB. The
    // provider stops reading once the body passes max_payload.
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let chunks = futures::stream::iter(0..512).map(move |_| {
        counter.fetch_add(64 * 1024, Ordering::SeqCst);
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'x'; 64 * 1024])))
    });
    let request = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", address.to_string())
        .body(StreamBody::new(chunks))
        .unwrap();
    // The provider answers 413 and closes the connection with the rest of
    // the body unread, so the client either reads the 413 or fails to
    // write: both show that the body stopped being read.
    if let Ok(answer) = send(address, request).await {
        assert_eq!(answer.status, 413, "{answer:?}");
    }
    assert!(
        sent.load(Ordering::SeqCst) < 32 * 1024 * 1024,
        "the whole body was read"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_actor_gives_503() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
    assert_eq!(wait_until_listening(address, "/").await.status, 200);

    setup.host.stop_actor(&hello).await.unwrap();
    let answer = get(address, "/?name=Ada").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.error(), "no running actor serves this route");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_that_sleeps_past_the_timeout_gives_504() {
    let setup = Setup::new().await;
    let sleepy = setup.start_actor("sleepy", 4).await;
    let address = free_address();
    setup
        .link(
            &sleepy,
            &[
                ("address", address.to_string()),
                ("timeout_ms", "500".to_owned()),
            ],
        )
        .await;
    assert_eq!(wait_until_listening(address, "/?ms=1").await.status, 200);

    let started = Instant::now();
    let answer = get(address, "/?ms=2000").await;
    let took = started.elapsed();
    assert_eq!(answer.status, 504, "{answer:?}");
    assert_eq!(answer.error(), "the actor did not answer within 500 ms");
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_millis(1900), "{took:?}");

    // Within the timeout, it answers.
    let answer = get(address, "/?ms=100").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "slept 100 ms");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_rpc_timeout_gives_504() {
    let setup = Setup::with_config(|c| HostConfig {
        rpc_timeout: Duration::from_millis(500),
        ..c
    })
    .await;
    let sleepy = setup.start_actor("sleepy", 4).await;
    let address = free_address();
    // The link's own timeout (30 s by default) is far longer: the host's
    // timeout answer is what gives 504.
    setup
        .link(&sleepy, &[("address", address.to_string())])
        .await;
    assert_eq!(wait_until_listening(address, "/?ms=1").await.status, 200);

    let started = Instant::now();
    let answer = get(address, "/?ms=3000").await;
    assert_eq!(answer.status, 504, "{answer:?}");
    assert!(started.elapsed() < Duration::from_millis(2500));
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_longer_than_the_nats_request_timeout_is_honoured() {
    // The SDK's NATS client bounds its requests at 5 s by default; a link
    // asking for more must get it.
    let setup = Setup::new().await;
    let sleepy = setup.start_actor("sleepy", 4).await;
    let address = free_address();
    setup
        .link(
            &sleepy,
            &[
                ("address", address.to_string()),
                ("timeout_ms", "9000".to_owned()),
            ],
        )
        .await;
    assert_eq!(wait_until_listening(address, "/?ms=1").await.status, 200);

    let answer = get(address, "/?ms=6000").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "slept 6000 ms");
    setup.stop().await;
}
