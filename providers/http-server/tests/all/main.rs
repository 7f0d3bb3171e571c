//! Integration tests of the http-server provider: real HTTP requests to the
//! provider binary, started by a real host on a real `nats-server`, reaching
//! real example actors. One binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod errors;
mod forwarding;
mod listeners;
mod load;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use trellis_claims::keys::{KeyKind, generate};
use trellis_host::{Host, HostConfig};
use trellis_protocol::provider::HealthCheck;
use trellis_protocol::{ContractId, LinkDefinition};
use trellis_test_support::host::TestLattice;
use trellis_test_support::{example_component, free_port};

/// How long a listener may take to open after its link is put.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A lattice with one host running the http-server provider.
pub struct Setup {
    pub lattice: TestLattice,
    pub host: Host,
    pub provider_id: String,
}

impl Setup {
    /// A lattice and host with the test defaults.
    pub async fn new() -> Self {
        Self::with_config(|c| c).await
    }

    /// A lattice and a host whose configuration `f` adjusts; the provider
    /// is started and serving when this returns.
    pub async fn with_config(f: impl FnOnce(HostConfig) -> HostConfig) -> Self {
        let lattice = TestLattice::new();
        let host = Host::start(f(lattice.config())).await.unwrap();
        let provider = host
            .start_provider(
                env!("CARGO_BIN_EXE_http-server"),
                "default",
                BTreeMap::from([("contract_id".into(), "wasi:http".into())]),
                Default::default(),
            )
            .await
            .unwrap();
        let setup = Self {
            lattice,
            host,
            provider_id: provider.id,
        };
        // Once it answers a health check it has subscribed to link changes,
        // so links put from now on reach it.
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        while setup.try_health().await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the provider did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        setup
    }

    /// Starts example actor `name`, signed, with up to `max_instances`
    /// instances; returns its id.
    pub async fn start_actor(&self, name: &str, max_instances: u32) -> String {
        let key = generate(KeyKind::Actor);
        let wasm = self.lattice.sign(
            &std::fs::read(example_component(name)).unwrap(),
            &key,
            &["wasi:http"],
        );
        self.host
            .start_actor_bytes(wasm, name.into(), max_instances, BTreeMap::new())
            .await
            .unwrap();
        key.public_key()
    }

    /// Links `actor_id` to the provider with `config`.
    pub async fn link(&self, actor_id: &str, config: &[(&str, String)]) {
        let mut link = LinkDefinition::new(
            actor_id,
            ContractId::new("wasi:http").unwrap(),
            "default",
            self.provider_id.clone(),
        );
        for (key, value) in config {
            link = link.with_config(*key, value.clone());
        }
        self.host.put_link(link).await.unwrap();
    }

    /// Deletes the link of `actor_id`.
    pub async fn unlink(&self, actor_id: &str) {
        self.host
            .delete_link(actor_id, &ContractId::new("wasi:http").unwrap(), "default")
            .await
            .unwrap();
    }

    /// Asks the provider for its health directly.
    pub async fn try_health(&self) -> Option<HealthCheck> {
        let lattice = trellis_protocol::Lattice::new(self.lattice.name.clone()).unwrap();
        let subjects = lattice
            .provider(&self.provider_id, "default", self.host.id())
            .unwrap();
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            self.host.nats().request(subjects.health, Bytes::new()),
        )
        .await
        .ok()?
        .ok()?;
        Some(serde_json::from_slice(&reply.payload).unwrap())
    }

    pub async fn stop(self) {
        self.host.stop(None).await;
    }
}

/// A free address on the loopback interface.
pub fn free_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// What a test sees of a response.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// The `error` of a JSON error body.
    pub fn error(&self) -> String {
        assert_eq!(
            self.headers.get("content-type").unwrap(),
            "application/json",
            "{self:?}"
        );
        let json: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        json["error"].as_str().unwrap().to_owned()
    }
}

/// Sends `request` to `address` over a new HTTP/1.1 connection.
pub async fn send<B>(address: SocketAddr, request: Request<B>) -> Result<Answer, String>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A request for `path_and_query` naming `host` in its Host header.
pub fn request(
    method: &str,
    host: &str,
    path_and_query: &str,
    body: Bytes,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", host)
        .body(Full::new(body))
        .unwrap()
}

/// `GET path_and_query` on `address`, with the address as Host.
pub async fn get(address: SocketAddr, path_and_query: &str) -> Answer {
    send(
        address,
        request("GET", &address.to_string(), path_and_query, Bytes::new()),
    )
    .await
    .unwrap()
}

/// Polls `GET path_and_query` on `address` until `done` holds for the
/// answer, and returns it.
pub async fn get_until(
    address: SocketAddr,
    host: &str,
    path_and_query: &str,
    done: impl Fn(&Answer) -> bool,
) -> Answer {
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    loop {
        let answer = send(address, request("GET", host, path_and_query, Bytes::new())).await;
        match answer {
            Ok(answer) if done(&answer) => return answer,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path_and_query} on {address} (host {host}) never answered as expected; last: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `address` answers HTTP at all, and returns the answer to
/// `GET path_and_query`.
pub async fn wait_until_listening(address: SocketAddr, path_and_query: &str) -> Answer {
    get_until(address, &address.to_string(), path_and_query, |_| true).await
}

/// Waits until nothing accepts connections on `address`.
pub async fn wait_until_closed(address: SocketAddr) {
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address} stays open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
