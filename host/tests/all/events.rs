//! The events a host publishes, decoded as the typed data of their type.

use std::time::Duration;

use futures::StreamExt as _;
use trellis_claims::keys::{KeyKind, generate};
use trellis_protocol::event::{
    ActorFailedData, ActorScaledData, ActorStartedData, ActorStoppedData, HostStartedData,
    HostStoppedData, LabelsChangedData, LinkDeletedData, LinkSetData,
};
use trellis_protocol::{
    CloudEvent, ContractId, DecodeLimits, EventData, EventType, Heartbeat, LinkDefinition,
};

use crate::{TestLattice, example, no_annotations, write_temp};

/// Decodes `bytes` as an event carrying `T`, failing the test otherwise.
fn data<T: EventData + serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    CloudEvent::<T>::decode_typed(bytes, &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("not a {} event: {e}", T::TYPE))
        .data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_carries_the_data_of_its_type() {
    let lattice = TestLattice::new();
    let client = lattice.client().await;
    let mut events = client
        .nats
        .subscribe(client.lattice.all_events())
        .await
        .unwrap();
    client.nats.flush().await.unwrap();

    let host = lattice.host().await;
    let dir = tempfile::tempdir().unwrap();
    let actor = generate(KeyKind::Actor);
    let path = write_temp(
        dir.path(),
        "hello.wasm",
        &lattice.sign(&example("hello"), &actor, &[]),
    );
    let id = actor.public_key();
    host.start_actor(&path, 1, no_annotations()).await.unwrap();
    host.start_actor(&path, 2, no_annotations()).await.unwrap();
    host.start_actor("/nonexistent.wasm", 1, no_annotations())
        .await
        .unwrap_err();
    host.put_label("zone", "eu-1").await.unwrap();
    let kv = ContractId::new("wasi:keyvalue").unwrap();
    let provider = generate(KeyKind::Provider).public_key();
    host.put_link(LinkDefinition::new(&id, kv.clone(), "default", &provider))
        .await
        .unwrap();
    host.delete_link(&id, &kv, "default").await.unwrap();
    host.stop_actor(&id).await.unwrap();
    host.stop(None).await;

    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("no host_stopped event")
            .unwrap();
        let any: CloudEvent =
            CloudEvent::decode(&message.payload, &DecodeLimits::default()).unwrap();
        assert_eq!(any.source, host.id());
        let event_type = any.event_type().unwrap();
        assert_eq!(
            message.subject.to_string(),
            client.lattice.event(event_type)
        );
        let bytes = &message.payload;
        match event_type {
            EventType::HostHeartbeat => {
                let heartbeat: Heartbeat = data(bytes);
                assert_eq!(heartbeat.inventory.host_id, host.id());
                continue;
            }
            EventType::HostStarted => {
                let d: HostStartedData = data(bytes);
                assert!(d.labels.contains_key("hostcore.os"));
            }
            EventType::ActorStarted => {
                let d: ActorStartedData = data(bytes);
                assert_eq!((d.0.id.as_str(), d.0.max_instances), (id.as_str(), 1));
            }
            EventType::ActorScaled => {
                let d: ActorScaledData = data(bytes);
                assert_eq!(d.0.max_instances, 2);
            }
            EventType::ActorFailed => {
                let d: ActorFailedData = data(bytes);
                // A refused path is not broadcast.
                assert_eq!(d.image_ref, "");
                assert_eq!(d.error, trellis_host::artifacts::REFUSED);
                assert_eq!(d.claims_error, None);
            }
            EventType::LabelsChanged => {
                let d: LabelsChangedData = data(bytes);
                assert_eq!(d.labels["zone"], "eu-1");
            }
            EventType::LinkSet => {
                let d: LinkSetData = data(bytes);
                assert_eq!(d.0.provider_id, provider);
            }
            EventType::LinkDeleted => {
                let d: LinkDeletedData = data(bytes);
                assert_eq!((d.actor_id.as_str(), &d.contract_id), (id.as_str(), &kv));
            }
            EventType::ActorStopped => {
                let d: ActorStoppedData = data(bytes);
                assert_eq!(d.0.id, id);
            }
            EventType::HostStopped => {
                let _: HostStoppedData = data(bytes);
            }
            other => panic!("unexpected {other} event"),
        }
        seen.push(event_type);
        if event_type == EventType::HostStopped {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            EventType::HostStarted,
            EventType::ActorStarted,
            EventType::ActorScaled,
            EventType::ActorFailed,
            EventType::LabelsChanged,
            EventType::LinkSet,
            EventType::LinkDeleted,
            EventType::ActorStopped,
            EventType::HostStopped,
        ]
    );
}

/// Events carry their host's signature: a subscriber that trusts the
/// lattice's cluster issuer accepts a real heartbeat and recognises a
/// forged or replayed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_heartbeat_is_recognisably_unsigned() {
    use trellis_claims::ErrorKind;
    use trellis_claims::invocation::{InvocationVerifier, VerifierSettings};
    use trellis_lattice_client::signed::verify_event;

    let lattice = TestLattice::new();
    let client = lattice.client().await;
    let subject = client.lattice.event(EventType::HostHeartbeat);
    let mut beats = client.nats.subscribe(subject.clone()).await.unwrap();
    client.nats.flush().await.unwrap();
    let host = lattice.host().await;
    let verifier = InvocationVerifier::new(
        lattice.name.clone(),
        [lattice.cluster.public_key()],
        VerifierSettings::default(),
    );

    let real = tokio::time::timeout(Duration::from_secs(10), beats.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verify_event(&verifier, &real).unwrap(), host.id());

    // The same bytes without the signature, and the signed message again.
    client
        .nats
        .publish(subject.clone(), real.payload.clone())
        .await
        .unwrap();
    client
        .nats
        .publish_with_headers(
            subject.clone(),
            real.headers.clone().unwrap(),
            real.payload.clone(),
        )
        .await
        .unwrap();
    // A heartbeat signed by another member of the lattice, in this
    // host's name.
    let token = client
        .signer
        .sign_control(&subject, "host_heartbeat", &real.payload)
        .unwrap();
    client
        .nats
        .publish_with_headers(
            subject.clone(),
            trellis_lattice_client::signed::headers(&token),
            real.payload.clone(),
        )
        .await
        .unwrap();

    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(10), beats.next())
            .await
            .unwrap()
            .unwrap();
        if message.payload != real.payload {
            continue; // the host's next real heartbeat
        }
        kinds.push(verify_event(&verifier, &message).unwrap_err().kind());
    }
    assert_eq!(
        kinds,
        vec![
            ErrorKind::MissingClaims,
            ErrorKind::Replayed,
            ErrorKind::Unauthorized
        ]
    );
    host.stop(None).await;
}
