//! Listeners open with their first link and close with their last, and a
//! failed bind shows in the provider's health.

use std::time::Duration;

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
