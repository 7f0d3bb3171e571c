//! Many requests at once are all answered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

use crate::{Setup, free_address, request, wait_until_listening};

const REQUESTS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_concurrent_requests_all_succeed() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 100).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
    assert_eq!(wait_until_listening(address, "/").await.status, 200);

    // Every client connects first; then all send at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let barrier = barrier.clone();
        clients.spawn(async move {
            let stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            barrier.wait().await;
            let response = sender
                .send_request(request(
                    "GET",
                    &address.to_string(),
                    &format!("/?name=n{i}"),
                    Bytes::new(),
                ))
                .await
                .unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (i, status, body)
        });
    }
    let answers = tokio::time::timeout(Duration::from_secs(50), clients.join_all())
        .await
        .expect("1,000 requests not answered within 50 s");
    assert_eq!(answers.len(), REQUESTS);
    for (i, status, body) in answers {
        assert_eq!(status, 200, "request {i}: {body:?}");
        assert_eq!(body, format!("Hello, n{i}!").as_bytes(), "request {i}");
    }
    assert_eq!(
        setup.host.invocations_served(&hello).await,
        Some(REQUESTS as u64 + 1)
    );
    setup.stop().await;
}
