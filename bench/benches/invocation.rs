//! Per-invocation security costs: signing an invocation token (the sender)
//! and verifying it (the receiver: credential, signature, binding to the
//! invocation and replay check), for a 1 KiB payload.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use trellis_claims::invocation::{InvocationVerifier, VerifierSettings};
use trellis_claims::keys::{KeyKind, generate};

fn invocation(c: &mut Criterion) {
    let (cluster, signer) = common::host_signer();
    let verifier = InvocationVerifier::new(
        common::LATTICE,
        [cluster.public_key()],
        VerifierSettings::default(),
    );
    let payload = vec![7u8; 1024];
    let origin = signer.public_key();
    let actor = generate(KeyKind::Actor).public_key();
    let target = actor.as_str();
    let mut n = 0u64;

    c.bench_function("sign an invocation (1 KiB payload)", |b| {
        b.iter(|| {
            n += 1;
            signer
                .sign(&n.to_string(), &origin, target, "handle", &payload)
                .unwrap()
        })
    });
    c.bench_function("verify an invocation (1 KiB payload)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let id = n.to_string();
                let token = signer
                    .sign(&id, &origin, target, "handle", &payload)
                    .unwrap();
                (id, token)
            },
            |(id, token)| {
                verifier
                    .verify_call(&token, &id, &origin, target, "handle", &payload)
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, invocation);
criterion_main!(benches);
