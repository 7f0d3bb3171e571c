//! Per-invocation security costs: signing an invocation token (the sender)
//! and verifying it (the receiver: credential, signature, binding to the
//! invocation and replay check), for a 1 KiB payload; and the same for the
//! control plane's added checks: a control request (token bound to its
//! subject, operator-issued credential, scope) and a host's signed event;
//! and what a receiver spends admitting or refusing one message before it
//! takes a slot.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use trellis_claims::invocation::{
    Call, CtlScope, InvocationSigner, InvocationVerifier, VerifierSettings,
    issue_control_credential,
};
use trellis_claims::keys::{KeyKind, generate};

/// An invocation `id` of `operation` on an actor's subject, bound as a
/// provider's call over a link is.
fn call<'a>(id: &'a str, origin: &'a str, target: &'a str, operation: &'a str) -> Call<'a> {
    Call {
        id,
        origin,
        target,
        operation,
        subject: "trellis.rpc.bench.MACTOR",
        contract_id: Some("wasi:http"),
        link_name: Some("default"),
    }
}

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
                .sign(&call(&n.to_string(), &origin, target, "handle"), &payload)
                .unwrap()
        })
    });
    c.bench_function("verify an invocation (1 KiB payload)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let id = n.to_string();
                let token = signer
                    .sign(&call(&id, &origin, target, "handle"), &payload)
                    .unwrap();
                (id, token)
            },
            |(id, token)| {
                verifier
                    .verify_call(&token, &call(&id, &origin, target, "handle"), &payload)
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn control(c: &mut Criterion) {
    let operator = generate(KeyKind::Operator);
    let user = generate(KeyKind::User);
    let credential = issue_control_credential(
        &operator,
        &user.public_key(),
        common::LATTICE,
        CtlScope::Full,
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    let client =
        InvocationSigner::new(user, credential, std::time::Duration::from_secs(30)).unwrap();
    let verifier = InvocationVerifier::control(
        common::LATTICE,
        [operator.public_key()],
        VerifierSettings::default(),
    );
    let subject = "trellis.ctl.v1.bench.link.put";
    let body = vec![7u8; 512];
    c.bench_function("verify a control request (512 B body)", |b| {
        b.iter_batched(
            || client.sign_control(subject, "link.put", &body).unwrap(),
            |token| {
                verifier
                    .verify_control(&token, subject, "link.put", &body)
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });

    let (cluster, host) = common::host_signer();
    let events = InvocationVerifier::new(
        common::LATTICE,
        [cluster.public_key()],
        VerifierSettings::default(),
    );
    let subject = "trellis.evt.bench.host_heartbeat";
    let event = vec![7u8; 1024];
    c.bench_function("sign a host event (1 KiB)", |b| {
        b.iter(|| {
            host.sign_control(subject, "host_heartbeat", &event)
                .unwrap()
        })
    });
    c.bench_function("verify a host event (1 KiB)", |b| {
        b.iter_batched(
            || {
                host.sign_control(subject, "host_heartbeat", &event)
                    .unwrap()
            },
            |token| {
                events
                    .verify_control(&token, subject, "host_heartbeat", &event)
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

/// What a receiver spends on one message before any slot is taken for it
/// (`trellis_lattice_client::rpc::serve`): decoding it within the decode
/// limits and verifying its token, for a real invocation, and decoding
/// alone for the two kinds of refusal, 1 MiB of garbage and a signed
/// invocation replayed with another link name.
fn admission(c: &mut Criterion) {
    use trellis_protocol::{DecodeLimits, Entity, EntityKind, Invocation};

    let (cluster, signer) = common::host_signer();
    let verifier = InvocationVerifier::new(
        common::LATTICE,
        [cluster.public_key()],
        VerifierSettings::default(),
    );
    let limits = DecodeLimits {
        max_message_bytes: 1024 * 1024,
        ..DecodeLimits::default()
    };
    let actor = generate(KeyKind::Actor).public_key();
    let origin = signer.public_key();
    let mut n = 0u64;
    let encoded = |n: u64| {
        let id = n.to_string();
        let entity = |kind, id: &str| Entity {
            kind,
            id: id.to_owned(),
            contract_id: Some("wasi:http".to_owned()),
            link_name: Some("default".to_owned()),
        };
        let mut invocation = Invocation::new(
            id.clone(),
            entity(EntityKind::Provider, &origin),
            entity(EntityKind::Actor, &actor),
            "handle",
            vec![7u8; 1024],
        );
        invocation.token = signer
            .sign(&call(&id, &origin, &actor, "handle"), &invocation.payload)
            .unwrap();
        invocation.encode().unwrap()
    };
    let admit = |bytes: &[u8]| -> bool {
        let Ok(invocation) = Invocation::decode(bytes, &limits) else {
            return false;
        };
        let link = invocation.origin.link_name.as_deref();
        let bound = Call {
            link_name: link,
            ..call(&invocation.id, &invocation.origin.id, &actor, "handle")
        };
        verifier
            .verify_call(&invocation.token, &bound, &invocation.payload)
            .is_ok()
    };
    c.bench_function("admit a real invocation: decode + verify (1 KiB)", |b| {
        b.iter_batched(
            || {
                n += 1;
                encoded(n)
            },
            |bytes| assert!(admit(&bytes)),
            criterion::BatchSize::SmallInput,
        )
    });
    let garbage = trellis_test_support::garbage(1024 * 1024);
    c.bench_function("refuse 1 MiB of garbage", |b| {
        b.iter(|| assert!(!admit(&garbage)))
    });
    c.bench_function(
        "refuse an invocation with an edited link name (1 KiB)",
        |b| {
            b.iter_batched(
                || {
                    n += 1;
                    let bytes = encoded(n);
                    let mut invocation = Invocation::decode(&bytes, &limits).unwrap();
                    invocation.origin.link_name = Some("other".to_owned());
                    invocation.target.link_name = Some("other".to_owned());
                    invocation.encode().unwrap()
                },
                |bytes| assert!(!admit(&bytes)),
                criterion::BatchSize::SmallInput,
            )
        },
    );
}

criterion_group!(benches, invocation, control, admission);
criterion_main!(benches);
