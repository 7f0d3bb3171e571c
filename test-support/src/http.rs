//! Real HTTP requests for tests: one HTTP/1.1 connection per request
//! (hyper's client), and polling until a listener answers as expected.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

pub use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body;
pub use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::free_port;

/// How long a listener may take to open (e.g. after its link is put).
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);

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
