//! References on disk: only regular files under the allowed directories
//! are read, and a bad one is refused at once, without telling what the
//! path is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_claims::invocation::CtlScope;
use trellis_host::artifacts::REFUSED;
use trellis_lattice_client::CtlErrorKind;
use trellis_protocol::ctl::StartActorRequest;

use crate::{TestLattice, signed_hello};

/// Resident set size of this process (host included), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_references_are_refused_at_once_without_reading_them() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let client = lattice.ctl_client(CtlScope::Full).await;

    // Inside an allowed directory (the temporary one): a FIFO nobody
    // writes to, and a directory.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("actor.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Outside every allowed directory: a regular file that exists.
    let outside = std::env::current_dir().unwrap().join("Cargo.toml");
    let references = [
        "/dev/zero".to_owned(),
        fifo.to_string_lossy().into_owned(),
        dir.path().to_string_lossy().into_owned(),
        outside.to_string_lossy().into_owned(),
        "/nonexistent/actor.wasm".to_owned(),
    ];

    let before = rss_kib();
    for reference in references {
        let request = StartActorRequest {
            actor_ref: reference.clone(),
            max_instances: 1,
            annotations: BTreeMap::new(),
        };
        let started = Instant::now();
        let refused = client.start_actor(host.id(), &request).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(refused.kind(), CtlErrorKind::Refused, "{reference}");
        // The reply says "refused" and nothing about the path.
        assert_eq!(refused.to_string(), REFUSED, "{reference}");
        assert!(
            took < Duration::from_millis(100),
            "{reference} took {took:?} to refuse"
        );
    }
    let grown_kib = rss_kib().saturating_sub(before);
    assert!(grown_kib < 16 * 1024, "the host grew by {grown_kib} KiB");
    assert!(host.inventory().await.actors.is_empty());

    // A regular file in an allowed directory still starts.
    let (actor, path) = signed_hello(&lattice, dir.path());
    let request = StartActorRequest {
        actor_ref: path,
        max_instances: 1,
        annotations: BTreeMap::new(),
    };
    let started = client.start_actor(host.id(), &request).await.unwrap();
    assert_eq!(started.id, actor.public_key());
    host.stop(None).await;
}
