//! Listeners open with their first link and close with their last, and a
//! failed bind shows in the provider's health.

use std::time::Duration;

use trellis_test_support::host::TestLattice;

use crate::{
    LISTEN_TIMEOUT, Setup, free_address, get, get_until, wait_until_closed, wait_until_listening,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_closes_with_its_last_link_and_reopens_with_a_new_one() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
    assert_eq!(wait_until_listening(address, "/").await.status, 200);
    let health = setup.try_health().await.unwrap();
    assert!(health.healthy);
    assert_eq!(health.message, format!("listening on {address}"));

    setup.unlink(&hello).await;
    wait_until_closed(address).await;

    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
    let answer = wait_until_listening(address, "/?name=again").await;
    assert_eq!(answer.text(), "Hello, again!");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_link_to_another_address_closes_the_old_one() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let (first, second) = (free_address(), free_address());
    setup.link(&hello, &[("address", first.to_string())]).await;
    assert_eq!(wait_until_listening(first, "/").await.status, 200);

    setup.link(&hello, &[("address", second.to_string())]).await;
    assert_eq!(wait_until_listening(second, "/").await.status, 200);
    wait_until_closed(first).await;
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_cannot_be_bound_makes_the_provider_unhealthy() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;

    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    let health = loop {
        let health = setup.try_health().await.unwrap();
        if !health.healthy {
            break health;
        }
        assert!(tokio::time::Instant::now() < deadline, "still healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        health
            .message
            .contains(&format!("cannot listen on {address}")),
        "{health:?}"
    );

    // Deleting the link clears it.
    setup.unlink(&hello).await;
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !setup.try_health().await.unwrap().healthy {
        assert!(tokio::time::Instant::now() < deadline, "still unhealthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(taken);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_with_the_same_route_on_one_address_conflict() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let sleepy = setup.start_actor("sleepy", 4).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
    assert_eq!(wait_until_listening(address, "/").await.status, 200);

    // Refused: hello keeps the route.
    setup
        .link(&sleepy, &[("address", address.to_string())])
        .await;
    // Once sleepy's next version, on another prefix, is served, the refused
    // one has been handled (links are handled in order).
    setup
        .link(
            &sleepy,
            &[
                ("address", address.to_string()),
                ("path_prefix", "/sleep".to_owned()),
            ],
        )
        .await;
    let host = address.to_string();
    get_until(address, &host, "/sleep?ms=1", |a| a.text() == "slept 1 ms").await;
    assert_eq!(get(address, "/?name=Ada").await.text(), "Hello, Ada!");
    assert!(setup.try_health().await.unwrap().healthy);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_wait_for_a_free_place() {
    let setup =
        Setup::with_provider_config(TestLattice::new(), |c| c, &[("max_connections", "2")]).await;
    let hello = setup.start_actor("hello", 4).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
    assert_eq!(wait_until_listening(address, "/").await.status, 200);

    // Two idle keep-alive connections take both places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = KeepAlive::connect(address).await;
        assert_eq!(client.get(address, "/?name=held").await, 200);
        held.push(client);
    }
    // A third is accepted by the kernel (backlog) but not served...
    let third = tokio::spawn(async move {
        let mut client = KeepAlive::connect(address).await;
        client.get(address, "/?name=third").await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third connection was served");
    // ...until one of the two closes.
    drop(held.pop());
    let status = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    assert_eq!(status, 200);
    setup.stop().await;
}

/// One HTTP/1.1 connection kept open between requests.
struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    connection: tokio::task::JoinHandle<()>,
}

impl KeepAlive {
    async fn connect(address: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Self { sender, connection }
    }

    async fn get(&mut self, address: std::net::SocketAddr, path: &str) -> u16 {
        use http_body_util::BodyExt as _;
        let response = self
            .sender
            .send_request(crate::request(
                "GET",
                &address.to_string(),
                path,
                bytes::Bytes::new(),
            ))
            .await
            .unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
