//! The policy service: asked before starts, link puts and invocations,
//! obeyed when it denies, cached, and fail-closed when it is gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use trellis_claims::invocation::CtlScope;
use trellis_claims::keys::{KeyKind, generate};
use trellis_host::policy::PolicyConfig;
use trellis_host::{ErrorKind, Host, HostConfig};
use trellis_lattice_client::CtlErrorKind;
use trellis_protocol::policy::{PolicyAction, PolicyDecision, PolicyRequest};
use trellis_protocol::{ContractId, LinkDefinition};

use crate::{TestLattice, body, example, signed_hello};

const SUBJECT: &str = "test.policy";

/// A policy service that denies the actor named `denied-name` and counts
/// the invocations it is asked about. Stops when dropped.
struct PolicyService {
    invocations: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl PolicyService {
    async fn start(lattice: &TestLattice) -> Self {
        let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
        let mut requests = nats.subscribe(SUBJECT).await.unwrap();
        nats.flush().await.unwrap();
        let invocations = Arc::new(AtomicUsize::new(0));
        let counted = invocations.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let request: PolicyRequest = serde_json::from_slice(&message.payload).unwrap();
                let decision = match request.action {
                    PolicyAction::ActorStart { name, .. } if name == "denied-name" => {
                        PolicyDecision::deny("this actor may not run here")
                    }
                    PolicyAction::Invocation { .. } => {
                        counted.fetch_add(1, Ordering::SeqCst);
                        PolicyDecision {
                            permitted: true,
                            message: String::new(),
                        }
                    }
                    _ => PolicyDecision {
                        permitted: true,
                        message: String::new(),
                    },
                };
                let reply = message.reply.unwrap();
                nats.publish(reply, serde_json::to_vec(&decision).unwrap().into())
                    .await
                    .unwrap();
            }
        });
        Self { invocations, task }
    }
}

impl Drop for PolicyService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn with_policy(lattice: &TestLattice) -> HostConfig {
    HostConfig {
        policy: Some(PolicyConfig {
            timeout: Duration::from_millis(500),
            ..PolicyConfig::new(SUBJECT)
        }),
        ..lattice.config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_service_decides_and_its_answers_are_cached() {
    let lattice = TestLattice::new();
    let policy = PolicyService::start(&lattice).await;
    let host = Host::start(with_policy(&lattice)).await.unwrap();

    // A permitted actor starts and serves; invocations are asked about
    // once, then answered from the cache.
    let dir = tempfile::tempdir().unwrap();
    let (actor, path) = signed_hello(&lattice, dir.path());
    host.start_actor(&path, 1, BTreeMap::new()).await.unwrap();
    let client = lattice.client().await;
    for _ in 0..3 {
        let answer = client.get(&actor.public_key(), "/?name=ok").await.unwrap();
        assert_eq!(body(&answer), "Hello, ok!");
    }
    assert_eq!(policy.invocations.load(Ordering::SeqCst), 1);

    // A denial is obeyed, through the control interface as well.
    let denied = generate(KeyKind::Actor);
    let request = trellis_claims::actor::ActorClaimsRequest {
        name: "denied-name".into(),
        ..Default::default()
    };
    let (wasm, _) =
        trellis_claims::actor::sign_actor(&example("hello"), &request, &lattice.issuer, &denied)
            .unwrap();
    let refused = host
        .start_actor_bytes(wasm.clone(), "denied".into(), 1, BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Denied);
    let file = dir.path().join("denied.wasm");
    std::fs::write(&file, &wasm).unwrap();
    let ctl = lattice.ctl_client(CtlScope::Full).await;
    let start = trellis_protocol::ctl::StartActorRequest {
        actor_ref: file.to_string_lossy().into_owned(),
        max_instances: 1,
        annotations: BTreeMap::new(),
    };
    let refused = ctl.start_actor(host.id(), &start).await.unwrap_err();
    assert_eq!(refused.kind(), CtlErrorKind::Denied);
    assert_eq!(host.inventory().await.actors.len(), 1);
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_policy_service_starts_and_links_are_refused() {
    let lattice = TestLattice::new();
    let host = Host::start(with_policy(&lattice)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = signed_hello(&lattice, dir.path());

    let asked = Instant::now();
    let refused = host
        .start_actor(&path, 1, BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Denied);
    assert!(asked.elapsed() < Duration::from_secs(5));
    let link = LinkDefinition::new(
        generate(KeyKind::Actor).public_key(),
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        generate(KeyKind::Provider).public_key(),
    );
    assert_eq!(
        host.put_link(link).await.unwrap_err().kind(),
        ErrorKind::Denied
    );
    assert!(host.inventory().await.actors.is_empty());
    assert!(host.links().is_empty());
    host.stop(None).await;
}

/// With `max_concurrent_ctl_requests` = 1, a start waiting for a silent
/// policy service holds the host's only control slot: a ping waits behind
/// it, and is answered once the start is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_requests_beyond_the_cap_wait_for_a_slot() {
    let lattice = TestLattice::new();
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    // A policy service that never answers: each start waits its timeout.
    let _silent = nats.subscribe(SUBJECT).await.unwrap();
    nats.flush().await.unwrap();
    let host = Host::start(HostConfig {
        policy: Some(PolicyConfig {
            timeout: Duration::from_secs(3),
            ..PolicyConfig::new(SUBJECT)
        }),
        max_concurrent_ctl_requests: 1,
        ..lattice.config()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = signed_hello(&lattice, dir.path());
    let ctl = lattice.ctl_client(CtlScope::Full).await;
    let start = {
        let ctl = ctl.clone();
        let host_id = host.id().to_owned();
        tokio::spawn(async move {
            let request = trellis_protocol::ctl::StartActorRequest {
                actor_ref: path,
                max_instances: 1,
                annotations: BTreeMap::new(),
            };
            ctl.start_actor(&host_id, &request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = ctl.ping(Duration::from_millis(500)).await.unwrap();
    assert!(waiting.is_empty(), "a ping was handled beside the start");
    let refused = start.await.unwrap().unwrap_err();
    assert_eq!(refused.kind(), CtlErrorKind::Denied);
    assert_eq!(ctl.ping(Duration::from_secs(1)).await.unwrap().len(), 1);
    host.stop(None).await;
}
