//! The runtime on its own, with no nats-server: actors instantiated over
//! the in-memory capabilities backend, denied and limited exactly as in a
//! host.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use trellis_host::runtime::memory::{InMemoryCapabilities, MemoryKeyValue};
use trellis_host::runtime::{ActorComponent, CapabilityContext, Runtime};
use trellis_host::{ErrorKind, RuntimeLimits};
use trellis_protocol::contracts::http::HttpResponse;

use crate::example;
use crate::limits::handler_component;

const ACTOR: &str = "MSTANDALONE";

struct Standalone {
    runtime: Runtime,
    backend: Arc<InMemoryCapabilities>,
}

impl Standalone {
    fn new(limits: RuntimeLimits) -> Self {
        Self {
            runtime: Runtime::new(limits).unwrap(),
            backend: Arc::new(InMemoryCapabilities::new()),
        }
    }

    async fn prepare(&self, wasm: Vec<u8>, hash: &str) -> ActorComponent {
        self.runtime.prepare(Arc::new(wasm), hash).await.unwrap()
    }

    async fn get(
        &self,
        component: &ActorComponent,
        caps: &[&str],
        path: &str,
    ) -> trellis_host::Result<HttpResponse> {
        let caps = CapabilityContext {
            actor_id: Arc::from(ACTOR),
            caps: Arc::new(caps.iter().map(|c| (*c).to_owned()).collect::<HashSet<_>>()),
            backend: self.backend.clone(),
        };
        let store = self.runtime.new_store(&Arc::from(ACTOR), caps);
        let request = hyper::Request::get(format!("http://localhost{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.runtime.handle_http(component, store, request).await
    }
}

fn text(response: &HttpResponse) -> String {
    String::from_utf8(response.body.clone()).unwrap()
}

fn error_kind(response: &HttpResponse) -> String {
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    body["kind"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn kvcounter_counts_in_memory_without_nats() {
    let s = Standalone::new(RuntimeLimits::default());
    let store = Arc::new(MemoryKeyValue::new());
    s.backend
        .link(ACTOR, "wasi:keyvalue", "default", store.clone());
    let counter = s.prepare(example("kvcounter"), "kvcounter").await;
    for expected in 1..=3 {
        let response = s
            .get(&counter, &["wasi:keyvalue"], "/counter/visits")
            .await
            .unwrap();
        assert_eq!(response.status, 200, "{}", text(&response));
        assert_eq!(
            text(&response),
            format!(r#"{{"name":"visits","count":{expected}}}"#)
        );
    }
    assert_eq!(
        store.value(ACTOR, "default", "counter:visits").as_deref(),
        Some(&b"3"[..])
    );
}

#[tokio::test]
async fn keyvalue_without_the_claim_is_access_denied_even_with_a_link() {
    let s = Standalone::new(RuntimeLimits::default());
    let store = Arc::new(MemoryKeyValue::new());
    s.backend
        .link(ACTOR, "wasi:keyvalue", "default", store.clone());
    let counter = s.prepare(example("kvcounter"), "kvcounter").await;
    let response = s.get(&counter, &[], "/counter/visits").await.unwrap();
    assert_eq!(response.status, 500);
    assert_eq!(error_kind(&response), "denied");
    assert_eq!(store.value(ACTOR, "default", "counter:visits"), None);
}

#[tokio::test]
async fn keyvalue_without_a_link_is_access_denied_even_with_the_claim() {
    let s = Standalone::new(RuntimeLimits::default());
    let counter = s.prepare(example("kvcounter"), "kvcounter").await;
    let response = s
        .get(&counter, &["wasi:keyvalue"], "/counter/visits")
        .await
        .unwrap();
    assert_eq!(response.status, 500);
    assert_eq!(error_kind(&response), "denied");

    // Linking it afterwards lets the next call through.
    s.backend.link(
        ACTOR,
        "wasi:keyvalue",
        "default",
        Arc::new(MemoryKeyValue::new()),
    );
    let response = s
        .get(&counter, &["wasi:keyvalue"], "/counter/visits")
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", text(&response));
}

#[tokio::test]
async fn an_infinite_loop_traps_at_the_deadline_without_nats() {
    let s = Standalone::new(RuntimeLimits {
        execution_deadline: Duration::from_millis(300),
        ..RuntimeLimits::default()
    });
    let spinner = s
        .prepare(handler_component(1, "(loop $l (br $l))", ""), "spin")
        .await;
    let err = s.get(&spinner, &[], "/").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Guest);

    // The runtime keeps serving.
    let hello = s.prepare(example("hello"), "hello").await;
    assert_eq!(s.get(&hello, &[], "/").await.unwrap().status, 200);
}

#[tokio::test]
async fn memory_growth_past_the_limit_traps_without_nats() {
    let s = Standalone::new(RuntimeLimits::default());
    let grower = s
        .prepare(
            handler_component(1, "(drop (memory.grow (i32.const 30000)))", ""),
            "grow",
        )
        .await;
    let err = s.get(&grower, &[], "/").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Guest);
}
