//! The lattice bucket: entries are signed and checked on read, and a
//! deleted bucket comes back.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_claims::actor::{ActorClaimsRequest, sign_actor};
use trellis_claims::jwt::{self, Claims};
use trellis_claims::keys::{KeyKind, generate};
use trellis_protocol::event::LatticeDataRejectedData;
use trellis_protocol::{CloudEvent, ContractId, DecodeLimits, EventType, LinkDefinition};

use crate::{TestLattice, body, eventually, example};

fn link_to_some_provider(actor_id: &str) -> LinkDefinition {
    LinkDefinition::new(
        actor_id,
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        generate(KeyKind::Provider).public_key(),
    )
    .with_config("url", "redis://attacker.example:6379")
}

async fn bucket(lattice: &TestLattice) -> async_nats::jetstream::kv::Store {
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    async_nats::jetstream::new(nats)
        .get_key_value(format!("TRELLIS_LATTICE_{}", lattice.name))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_bucket_entries_are_ignored_with_an_event() {
    let lattice = TestLattice::new();
    let client = lattice.client().await;
    let mut rejected = client
        .nats
        .subscribe(client.lattice.event(EventType::LatticeDataRejected))
        .await
        .unwrap();
    client.nats.flush().await.unwrap();
    let host = lattice.host().await;
    let kv = bucket(&lattice).await;

    // An unsigned link, and one signed by a cluster key nobody trusts.
    let actor = generate(KeyKind::Actor).public_key();
    let unsigned = link_to_some_provider(&actor);
    kv.put(unsigned.bucket_key(), unsigned.encode().unwrap().into())
        .await
        .unwrap();
    let other = generate(KeyKind::Actor).public_key();
    let foreign = link_to_some_provider(&other);
    let mut claims = Claims::new(other.clone(), foreign.clone());
    let token = jwt::sign(&mut claims, &generate(KeyKind::Cluster), KeyKind::Cluster).unwrap();
    kv.put(foreign.bucket_key(), token.into_bytes().into())
        .await
        .unwrap();
    // Claims as plain JSON, and claims signed by an account nobody trusts.
    let forged = generate(KeyKind::Actor).public_key();
    kv.put(
        format!("claims.{forged}"),
        serde_json::to_vec(&serde_json::json!({"sub": forged, "iss": lattice.issuer.public_key()}))
            .unwrap()
            .into(),
    )
    .await
    .unwrap();
    let stranger = generate(KeyKind::Actor);
    let request = ActorClaimsRequest {
        name: "stranger".into(),
        ..Default::default()
    };
    let (signed, _) = sign_actor(
        &example("hello"),
        &request,
        &generate(KeyKind::Account),
        &stranger,
    )
    .unwrap();
    let stranger_token = trellis_claims::wasm::extract_token(&signed)
        .unwrap()
        .unwrap();
    kv.put(
        format!("claims.{}", stranger.public_key()),
        stranger_token.into_bytes().into(),
    )
    .await
    .unwrap();

    let mut reasons = BTreeMap::new();
    while reasons.len() < 4 {
        let message = tokio::time::timeout(Duration::from_secs(10), rejected.next())
            .await
            .expect("no lattice_data_rejected event")
            .unwrap();
        let event = CloudEvent::<LatticeDataRejectedData>::decode_typed(
            &message.payload,
            &DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(event.source, host.id());
        reasons.insert(event.data.key, event.data.reason);
    }
    assert_eq!(reasons[&unsigned.bucket_key()], "malformed");
    assert_eq!(reasons[&foreign.bucket_key()], "untrusted_issuer");
    assert_eq!(reasons[&format!("claims.{forged}")], "malformed");
    assert_eq!(
        reasons[&format!("claims.{}", stranger.public_key())],
        "untrusted_issuer"
    );
    assert!(host.links().is_empty());
    assert!(host.claims().is_empty());

    // A link put through the host is signed, and accepted.
    let genuine = link_to_some_provider(&actor);
    host.put_link(genuine.clone()).await.unwrap();
    let second = lattice.host().await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            second.links() == vec![genuine.clone()]
        })
        .await
    );
    second.stop(None).await;
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_bucket_is_recreated_and_the_lattice_serves_again() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let actor = generate(KeyKind::Actor);
    let signed = lattice.sign(&example("hello"), &actor, &[]);
    host.start_actor_bytes(signed, "hello".into(), 1, BTreeMap::new())
        .await
        .unwrap();
    let link = link_to_some_provider(&actor.public_key());
    host.put_link(link.clone()).await.unwrap();

    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    js.delete_stream(format!("KV_TRELLIS_LATTICE_{}", lattice.name))
        .await
        .unwrap();

    // Within 5 s the bucket is back, with the host's claims and link, and
    // links can be put again.
    let restored = eventually(Duration::from_secs(5), || async {
        let Ok(kv) = js
            .get_key_value(format!("TRELLIS_LATTICE_{}", lattice.name))
            .await
        else {
            return false;
        };
        let claims = kv.get(format!("claims.{}", actor.public_key())).await;
        let stored = kv.get(link.bucket_key()).await;
        matches!((claims, stored), (Ok(Some(_)), Ok(Some(_))))
    })
    .await;
    assert!(restored, "the bucket was not restored within 5 s");
    let another = link_to_some_provider(&generate(KeyKind::Actor).public_key());
    host.put_link(another.clone()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            host.links().contains(&another)
        })
        .await
    );
    assert_eq!(host.claims().len(), 1);

    let client = lattice.client().await;
    let answer = client
        .get(&actor.public_key(), "/?name=again")
        .await
        .unwrap();
    assert_eq!(body(&answer), "Hello, again!");
    host.stop(None).await;
}

/// The lattice bucket holds at most `lattice_bucket_max_bytes`: once full,
/// a new link is refused with the `nats` kind and every link already in
/// it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_lattice_bucket_refuses_new_links_and_keeps_the_old() {
    let lattice = TestLattice::new();
    let host = trellis_host::Host::start(trellis_host::HostConfig {
        lattice_bucket_max_bytes: 16 * 1024,
        ..lattice.config()
    })
    .await
    .unwrap();
    let mut stored = Vec::new();
    let refusal = loop {
        let link = link_to_some_provider(&generate(KeyKind::Actor).public_key());
        match host.put_link(link.clone()).await {
            Ok(()) => stored.push(link),
            Err(e) => break e,
        }
        assert!(stored.len() < 1_000, "the bucket never filled");
    };
    assert_eq!(refusal.kind(), trellis_host::ErrorKind::Nats);
    assert!(!stored.is_empty());
    let kv = bucket(&lattice).await;
    for link in &stored {
        assert!(
            kv.get(link.bucket_key()).await.unwrap().is_some(),
            "{} was lost",
            link.bucket_key()
        );
    }
    host.stop(None).await;
}
