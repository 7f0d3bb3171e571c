//! The control commands against a lattice without hosts: typed errors,
//! never a hang.

use trellis_test_support::NatsServer;

use crate::trellis_json;

#[test]
fn control_requests_without_a_host_fail_with_the_timeout_kind() {
    let nats = NatsServer::start();
    let url = nats.url();
    for args in [
        &["link", "list"][..],
        &["link", "del", "MACTOR", "wasi:http"][..],
        &["get", "claims"][..],
    ] {
        let mut full = args.to_vec();
        full.extend(["--nats-url", &url, "--timeout", "500ms"]);
        let (ok, json) = trellis_json(&full);
        assert!(!ok, "{args:?} succeeded: {json}");
        assert_eq!(json["error"]["kind"], "timeout", "{args:?}: {json}");
    }
}

#[test]
fn starting_an_actor_without_a_host_says_none_answered() {
    let nats = NatsServer::start();
    let (ok, json) = trellis_json(&[
        "start",
        "actor",
        "hello.signed.wasm",
        "--nats-url",
        &nats.url(),
    ]);
    assert!(!ok);
    assert_eq!(json["error"]["kind"], "error", "{json}");
    let (ok, hosts) = trellis_json(&["get", "hosts", "--nats-url", &nats.url()]);
    assert!(ok);
    assert_eq!(hosts, serde_json::json!([]));
}
