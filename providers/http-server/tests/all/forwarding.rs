//! Requests reach the linked actor through the lattice, and its answer
//! comes back; links sharing an address route by path prefix and host.

use crate::{Setup, free_address, get, get_until, wait_until_listening};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_through_the_lattice() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;

    let answer = wait_until_listening(address, "/?name=Ada").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "Hello, Ada!");
    assert_eq!(
        answer.headers.get("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(answer.headers.get("content-length").unwrap(), "11");

    // The method reaches the actor: hello refuses POST itself.
    let answer = crate::send(
        address,
        crate::request("POST", "localhost", "/", "x".into()),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 405, "{answer:?}");
    assert_eq!(answer.headers.get("allow").unwrap(), "GET, HEAD");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_path_prefix_between_two_actors_on_one_address() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let sleepy = setup.start_actor("sleepy", 4).await;
    let address = free_address();
    setup
        .link(&hello, &[("address", address.to_string())])
        .await;
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

    // The longest prefix wins (once sleepy's link is in), and the path
    // reaches the actor unchanged.
    let answer = get_until(address, &host, "/sleep?ms=1", |a| a.text() == "slept 1 ms").await;
    assert_eq!(answer.status, 200);
    let answer = get(address, "/sleep/deeper?ms=2").await;
    assert_eq!(answer.text(), "slept 2 ms");
    // Prefixes match whole segments.
    let answer = get(address, "/sleepy?name=Ada").await;
    assert_eq!(answer.text(), "Hello, Ada!");
    let answer = get(address, "/?name=Bob").await;
    assert_eq!(answer.text(), "Hello, Bob!");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_host_between_two_actors_on_one_address() {
    let setup = Setup::new().await;
    let hello = setup.start_actor("hello", 4).await;
    let sleepy = setup.start_actor("sleepy", 4).await;
    let address = free_address();
    setup
        .link(
            &hello,
            &[
                ("address", address.to_string()),
                ("host", "hello.test".to_owned()),
            ],
        )
        .await;
    setup
        .link(
            &sleepy,
            &[
                ("address", address.to_string()),
                ("host", "Sleepy.Test".to_owned()),
            ],
        )
        .await;

    // The port and case of the Host header do not matter.
    let answer = get_until(address, "hello.test:8080", "/?name=Ada", |a| {
        a.status == 200
    })
    .await;
    assert_eq!(answer.text(), "Hello, Ada!");
    let answer = get_until(address, "sleepy.test", "/?ms=3", |a| a.status == 200).await;
    assert_eq!(answer.text(), "slept 3 ms");
    let answer = get_until(address, "SLEEPY.test:1", "/?ms=4", |a| a.status == 200).await;
    assert_eq!(answer.text(), "slept 4 ms");

    // Another host has no route.
    let answer = crate::send(
        address,
        crate::request("GET", "other.test", "/?name=Ada", Default::default()),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(answer.error(), "no route for this host and path");
    setup.stop().await;
}
