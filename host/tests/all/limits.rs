//! Limits: deadline, memory and stack traps, while the host keeps serving.

use std::time::{Duration, Instant};

use trellis_claims::keys::{KeyKind, generate};
use trellis_host::{ErrorKind, HostConfig, RuntimeLimits};
use trellis_protocol::RpcErrorKind;

use crate::{TestLattice, body, example, no_annotations};

/// A component exporting `wasi:http/incoming-handler` whose `handle` runs
/// `body` (core wasm instructions) in a module with `memory_pages` of memory.
pub(crate) fn handler_component(memory_pages: u32, body: &str, extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (import "wasi:http/types@0.2.12" (instance $types
                (export "incoming-request" (type (sub resource)))
                (export "response-outparam" (type (sub resource)))))
            (alias export $types "incoming-request" (type $req))
            (alias export $types "response-outparam" (type $out))
            (core module $m
                (memory (export "memory") {memory_pages})
                {extra}
                (func (export "handle") (param i32 i32) {body}))
            (core instance $i (instantiate $m))
            (func $handle (param "request" (own $req)) (param "response-out" (own $out))
                (canon lift (core func $i "handle")))
            (instance $h (export "handle" (func $handle)))
            (export "wasi:http/incoming-handler@0.2.12" (instance $h)))"#
    ))
    .unwrap()
}

fn limited(lattice: &TestLattice) -> HostConfig {
    HostConfig {
        limits: RuntimeLimits {
            execution_deadline: Duration::from_millis(500),
            ..RuntimeLimits::default()
        },
        ..lattice.config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_traps_within_the_deadline_while_other_actors_are_served() {
    let lattice = TestLattice::new();
    let host = trellis_host::Host::start(limited(&lattice)).await.unwrap();
    let spinner = generate(KeyKind::Actor);
    let wasm = lattice.sign(
        &handler_component(1, "(loop $l (br $l))", ""),
        &spinner,
        &[],
    );
    host.start_actor_bytes(wasm, "spin".into(), 4, no_annotations())
        .await
        .unwrap();
    let hello = generate(KeyKind::Actor);
    host.start_actor_bytes(
        lattice.sign(&example("hello"), &hello, &[]),
        "hello".into(),
        4,
        no_annotations(),
    )
    .await
    .unwrap();

    let client = std::sync::Arc::new(lattice.client().await);
    let spinning = {
        let client = client.clone();
        let id = spinner.public_key();
        tokio::spawn(async move {
            let started = Instant::now();
            let err = client.get(&id, "/").await.unwrap_err();
            (err, started.elapsed())
        })
    };
    // While the loop spins, the other actor answers promptly.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = client.get(&hello.public_key(), "/?name=Ada").await.unwrap();
    assert_eq!(body(&ok), "Hello, Ada!");
    let (err, took) = spinning.await.unwrap();
    assert_eq!(err.kind, RpcErrorKind::Failed);
    assert!(took < Duration::from_secs(5), "the loop ran for {took:?}");
    host.stop(None).await;
}

#[tokio::test]
async fn a_memory_bomb_is_refused() {
    let lattice = TestLattice::new();
    let host = trellis_host::Host::start(limited(&lattice)).await.unwrap();
    let client = lattice.client().await;

    // Declares 2 GiB of memory up front.
    let declared = generate(KeyKind::Actor);
    let wasm = lattice.sign(&handler_component(32_768, "", ""), &declared, &[]);
    match host
        .start_actor_bytes(wasm, "bomb".into(), 1, no_annotations())
        .await
    {
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidComponent),
        Ok(_) => assert_eq!(
            client
                .get(&declared.public_key(), "/")
                .await
                .unwrap_err()
                .kind,
            RpcErrorKind::Failed
        ),
    }

    // Grows past the limit at run time.
    let growing = generate(KeyKind::Actor);
    let wasm = lattice.sign(
        &handler_component(1, "(drop (memory.grow (i32.const 30000)))", ""),
        &growing,
        &[],
    );
    host.start_actor_bytes(wasm, "grow".into(), 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(
        client
            .get(&growing.public_key(), "/")
            .await
            .unwrap_err()
            .kind,
        RpcErrorKind::Failed
    );

    let hello = generate(KeyKind::Actor);
    host.start_actor_bytes(
        lattice.sign(&example("hello"), &hello, &[]),
        "hello".into(),
        1,
        no_annotations(),
    )
    .await
    .unwrap();
    assert_eq!(
        client.get(&hello.public_key(), "/").await.unwrap().status,
        200
    );
    host.stop(None).await;
}

#[tokio::test]
async fn deep_recursion_traps() {
    let lattice = TestLattice::new();
    let host = trellis_host::Host::start(limited(&lattice)).await.unwrap();
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(
        &handler_component(1, "(call $down)", "(func $down (call $down))"),
        &actor,
        &[],
    );
    host.start_actor_bytes(wasm, "recurse".into(), 1, no_annotations())
        .await
        .unwrap();
    let client = lattice.client().await;
    assert_eq!(
        client.get(&actor.public_key(), "/").await.unwrap_err().kind,
        RpcErrorKind::Failed
    );
    // And again: the host is unharmed.
    assert_eq!(
        client.get(&actor.public_key(), "/").await.unwrap_err().kind,
        RpcErrorKind::Failed
    );
    host.stop(None).await;
}

/// 1,000 calls to an actor that sleeps 600 s time out at the host's
/// `rpc_timeout` (those that never got an instance included); another
/// actor answers all the while; and once the callers have their timeouts,
/// the sleepers' instances are gone within one more deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeper_cannot_starve_the_rest() {
    let lattice = TestLattice::new();
    let rpc_timeout = Duration::from_secs(2);
    let limits = RuntimeLimits {
        // Far beyond the callers' patience: the callers' timeouts must be
        // what ends the sleepers.
        execution_deadline: Duration::from_secs(600),
        ..RuntimeLimits::default()
    };
    let share = limits.max_total_instances - limits.reserved_instances;
    let host = trellis_host::Host::start(HostConfig {
        rpc_timeout,
        limits,
        ..lattice.config()
    })
    .await
    .unwrap();
    let sleepy = generate(KeyKind::Actor);
    let hello = generate(KeyKind::Actor);
    let start = |name: &'static str, key: &trellis_claims::keys::KeyPair, instances: u32| {
        let wasm = lattice.sign(&example(name), key, &[]);
        host.start_actor_bytes(wasm, name.into(), instances, no_annotations())
    };
    // One actor may not take the pool's reserve.
    let greedy = start("sleepy", &sleepy, share + 1).await.unwrap_err();
    assert_eq!(greedy.kind(), ErrorKind::BadRequest);
    start("sleepy", &sleepy, share).await.unwrap();
    start("hello", &hello, 4).await.unwrap();

    let client = std::sync::Arc::new(lattice.client().await);
    let started = Instant::now();
    let sleepers: Vec<_> = (0..1_000)
        .map(|_| {
            let client = client.clone();
            let id = sleepy.public_key();
            tokio::spawn(async move { client.get(&id, "/?ms=600000").await })
        })
        .collect();
    let mut greetings = 0;
    while sleepers.iter().any(|s| !s.is_finished()) {
        let answer = client.get(&hello.public_key(), "/?name=Ada").await;
        assert_eq!(body(&answer.unwrap()), "Hello, Ada!");
        greetings += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let timed_out = started.elapsed();
    for sleeper in sleepers {
        let err = sleeper.await.unwrap().unwrap_err();
        assert_eq!(err.kind, RpcErrorKind::Timeout, "{err:?}");
    }
    assert!(greetings > 0);
    assert!(
        timed_out < rpc_timeout * 3,
        "the sleepers took {timed_out:?} to time out"
    );
    let freed = crate::eventually(rpc_timeout, || async { host.live_instances() == 0 }).await;
    assert!(
        freed,
        "{} instances still alive one deadline after the timeouts",
        host.live_instances()
    );
    host.stop(None).await;
}

/// Four concurrent starts of one module compile it once: the later ones
/// wait for the first compilation instead of repeating it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_of_one_module_compile_it_once() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (host, wasm) = (host.clone(), wasm.clone());
            tokio::spawn(async move {
                host.start_actor_bytes(wasm, "hello".into(), 1, no_annotations())
                    .await
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    assert_eq!(host.compilations(), 1);
    host.stop(None).await;
}

#[tokio::test]
async fn a_compilation_over_its_timeout_fails_with_the_timeout_kind() {
    let lattice = TestLattice::new();
    let host = trellis_host::Host::start(HostConfig {
        limits: RuntimeLimits {
            compile_timeout: Duration::from_millis(1),
            ..RuntimeLimits::default()
        },
        ..lattice.config()
    })
    .await
    .unwrap();
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);
    let err = host
        .start_actor_bytes(wasm, "hello".into(), 1, no_annotations())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    host.stop(None).await;
}

/// Annotations over the protocol's limits are refused with `bad_request`
/// before the module is even compiled, on start and on scale.
#[tokio::test]
async fn annotations_over_the_limit_are_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);
    let too_many: std::collections::BTreeMap<String, String> = (0
        ..=trellis_protocol::ctl::MAX_ANNOTATIONS)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    let err = host
        .start_actor_bytes(wasm.clone(), "hello".into(), 1, too_many.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(host.compilations(), 0, "compiled before checking");
    let long_value = std::collections::BTreeMap::from([(
        "owner".to_owned(),
        "x".repeat(trellis_protocol::ctl::MAX_ANNOTATION_VALUE_BYTES + 1),
    )]);
    let err = host
        .start_actor_bytes(wasm.clone(), "hello".into(), 1, long_value)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);

    host.start_actor_bytes(wasm, "hello".into(), 1, no_annotations())
        .await
        .unwrap();
    let err = host
        .scale_actor(&actor.public_key(), 2, too_many)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    host.stop(None).await;
}

/// A host carries at most `MAX_LABELS` labels: a new key beyond them is
/// refused, an existing one can still change.
#[tokio::test]
async fn a_label_beyond_the_maximum_is_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let free = trellis_host::labels::MAX_LABELS - host.labels().len();
    for i in 0..free {
        host.put_label(&format!("l{i}"), "v").await.unwrap();
    }
    let err = host.put_label("one-more", "v").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    host.put_label("l0", "changed").await.unwrap();
    assert_eq!(host.labels().len(), trellis_host::labels::MAX_LABELS);
    host.stop(None).await;
}

/// A flood of 1 MiB garbage messages on an actor's RPC subject, sent with
/// reply subjects by another client as fast as it can, is refused at
/// decoding: real invocations interleaved with it all succeed, none of the
/// garbage reaches the actor or takes one of its pending places, and
/// every garbage message with a reply subject is answered `bad_request`.
/// (What the flood does to latency is measured by the `flood` bench, not
/// here: see `docs/performance.md`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_block_real_work() {
    const CALLS: u64 = 200;
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let hello = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &hello, &[]);
    host.start_actor_bytes(wasm, "hello".into(), 4, no_annotations())
        .await
        .unwrap();
    let client = lattice.client().await;
    let id = hello.public_key();

    let garbage = bytes::Bytes::from(trellis_test_support::garbage(1024 * 1024));
    // The flooder is another client: its own thread, runtime and
    // connection. It counts the refusals it gets back.
    let url = lattice.nats.url();
    let subject = client.lattice.rpc(&id, None).unwrap();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let flood = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            use futures::StreamExt as _;
            let flooder = async_nats::connect(url).await.unwrap();
            let inbox = flooder.new_inbox();
            let mut refusals = flooder.subscribe(inbox.clone()).await.unwrap();
            let (mut sent, mut refused) = (0_u64, 0_u64);
            loop {
                tokio::select! {
                    published = flooder.publish_with_reply(subject.clone(), inbox.clone(), garbage.clone()) => {
                        published.unwrap();
                        sent += 1;
                    }
                    Some(answer) = refusals.next() => {
                        let answer = trellis_protocol::InvocationResponse::decode(
                            &answer.payload,
                            &trellis_protocol::DecodeLimits::default(),
                        )
                        .unwrap();
                        assert_eq!(answer.error.unwrap().kind, RpcErrorKind::BadRequest);
                        refused += 1;
                    }
                    _ = stopped.changed() => break,
                }
            }
            (sent, refused)
        })
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..CALLS {
        let answer = client.get(&id, "/?name=Ada").await;
        assert_eq!(body(&answer.unwrap()), "Hello, Ada!");
    }
    stop.send_replace(true);
    let (sent, refused) = flood.join().unwrap();

    assert!(sent >= 100, "only {sent} garbage messages were sent");
    assert!(refused > 0, "no garbage message was answered");
    assert_eq!(
        host.invocations_served(&id).await,
        Some(CALLS),
        "garbage reached the actor"
    );
    assert_eq!(host.live_instances(), 0);
    host.stop(None).await;
}

/// Compiled components are kept on disk: a restarted host with the same
/// cache starts the same module without compiling it, and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_host_starts_its_actor_without_compiling_it_again() {
    let lattice = TestLattice::new();
    let cache = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        compiled_cache: true,
        provider_cache_dir: cache.path().to_path_buf(),
        ..lattice.config()
    };
    let actor = generate(KeyKind::Actor);
    let wasm = lattice.sign(&example("hello"), &actor, &[]);

    let first = trellis_host::Host::start(config()).await.unwrap();
    first
        .start_actor_bytes(wasm.clone(), "hello".into(), 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(first.compilations(), 1);
    first.stop(None).await;
    let kept = std::fs::read_dir(cache.path().join("compiled"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        })
        .count();
    assert_eq!(kept, 1);

    let second = trellis_host::Host::start(config()).await.unwrap();
    second
        .start_actor_bytes(wasm, "hello".into(), 1, no_annotations())
        .await
        .unwrap();
    assert_eq!(second.compilations(), 0);
    let client = lattice.client().await;
    let answer = client.get(&actor.public_key(), "/?name=Ada").await.unwrap();
    assert_eq!(body(&answer), "Hello, Ada!");
    second.stop(None).await;
}
