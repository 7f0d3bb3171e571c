//! Tests of the `keyvalue-redis` provider against real services: the
//! machine's Redis (`TRELLIS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`), `redis-server` processes of their own, and a
//! real lattice (nats-server, host, the provider binary, the kvcounter
//! actor). One binary, one module per topic.

// A panic in a test is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod direct;
mod isolation;
mod lattice;
mod outage;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trellis_protocol::contracts::keyvalue::{KvRequest, KvResponse, OPERATION};
use trellis_protocol::{
    ContractId, DecodeLimits, Entity, EntityKind, LinkDefinition, RpcErrorKind, decode_msgpack,
    encode_msgpack,
};
use trellis_provider_keyvalue_redis::KeyvalueRedis;
use trellis_provider_sdk::{Provider as _, ProviderInvocation};

/// Environment variable naming the shared Redis the tests may use.
pub const REDIS_URL_ENV: &str = "TRELLIS_TEST_REDIS_URL";

/// The shared Redis of the machine.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("trellis-test:{}:", uuid::Uuid::new_v4())
}

/// A link from `actor` under `link_name` to the provider, with `config`.
pub fn link(actor: &str, link_name: &str, config: &[(&str, &str)]) -> LinkDefinition {
    config.iter().fold(
        LinkDefinition::new(
            actor,
            ContractId::new("wasi:keyvalue").unwrap(),
            link_name,
            "VPROVIDER",
        ),
        |l, (k, v)| l.with_config(*k, *v),
    )
}

/// Calls `provider` as `actor` over `link_name`, as the SDK would after
/// verifying the invocation.
pub async fn invoke(
    provider: &KeyvalueRedis,
    actor: &str,
    link_name: &str,
    request: &KvRequest,
) -> Result<KvResponse, (RpcErrorKind, String)> {
    let invocation = ProviderInvocation {
        origin: Entity {
            kind: EntityKind::Actor,
            id: actor.to_owned(),
            contract_id: Some("wasi:keyvalue".to_owned()),
            link_name: Some(link_name.to_owned()),
        },
        operation: OPERATION.to_owned(),
        payload: encode_msgpack(request).unwrap(),
    };
    let bytes = provider.handle(invocation).await?;
    Ok(decode_msgpack(&bytes, &DecodeLimits::default()).unwrap())
}

/// Deletes every key under `prefix` in the Redis at `url` (synchronously,
/// so that it can run from `Drop`).
pub fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .unwrap_or_default();
    for chunk in keys.chunks(1000) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut c);
    }
}

/// A provider with one link to the shared Redis under a unique prefix; the
/// prefix's keys are deleted when it drops, even after a failed assertion.
pub struct Fixture {
    pub provider: KeyvalueRedis,
    pub actor: String,
    pub prefix: String,
    pub url: String,
}

impl Fixture {
    pub async fn new() -> Self {
        let provider = KeyvalueRedis::new();
        let actor = format!("MTEST{}", uuid::Uuid::new_v4().simple()).to_uppercase();
        let prefix = unique_prefix();
        let url = redis_url();
        provider
            .put_link(&link(
                &actor,
                "default",
                &[("url", &url), ("prefix", &prefix)],
            ))
            .await
            .unwrap();
        Self {
            provider,
            actor,
            prefix,
            url,
        }
    }

    /// Sends `request` over the fixture's link.
    pub async fn call(&self, request: KvRequest) -> KvResponse {
        invoke(&self.provider, &self.actor, "default", &request)
            .await
            .unwrap()
    }

    /// A direct connection to the shared Redis, to look behind the provider.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

/// A `redis-server` owned by one test, on a free loopback port, without
/// persistence; killed on drop. Never the machine's shared Redis.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self {
            port: trellis_test_support::free_port(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server; is it installed (apt-get install redis-server)?");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Kills the server (as a crash would) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`RedisServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process must be continued to die cleanly.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}

/// The message of a [`KvResponse::Error`]; panics on any other answer.
pub fn error_message(response: KvResponse) -> String {
    match response {
        KvResponse::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}
