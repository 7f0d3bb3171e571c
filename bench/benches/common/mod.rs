//! Set-up shared by the criterion benches.

use std::time::Duration;

use trellis_claims::invocation::{InvocationSigner, issue_credential};
use trellis_claims::keys::{KeyKind, KeyPair, generate};

/// The lattice name the benches use.
pub const LATTICE: &str = "bench";

/// A new cluster key and a signer for a new host key that it vouches for
/// in [`LATTICE`] (credential valid 1 h, tokens valid 30 s).
pub fn host_signer() -> (KeyPair, InvocationSigner) {
    let cluster = generate(KeyKind::Cluster);
    let host = generate(KeyKind::Host);
    let credential = issue_credential(
        &cluster,
        &host.public_key(),
        LATTICE,
        Duration::from_secs(3600),
    )
    .unwrap();
    let signer = InvocationSigner::new(host, credential, Duration::from_secs(30)).unwrap();
    (cluster, signer)
}
