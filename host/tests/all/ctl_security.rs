//! The control interface accepts only requests signed by a control client
//! that an operator the host trusts vouched for, bound to their subject and
//! payload, fresh, and within the credential's scope.

use std::collections::BTreeMap;
use std::time::Duration;

use trellis_claims::invocation::{CtlScope, InvocationSigner, issue_control_credential};
use trellis_claims::keys::{KeyKind, generate};
use trellis_lattice_client::{CtlClient, CtlErrorKind};
use trellis_protocol::ctl::{
    CtlFailure, CtlReply, ScaleActorRequest, StartActorRequest, StartProviderRequest,
};
use trellis_protocol::subject::{CtlOperation, TOKEN_HEADER};
use trellis_protocol::{ContractId, DecodeLimits, LinkDefinition};

use crate::{TestLattice, signed_hello};

fn start_request(path: String) -> StartActorRequest {
    StartActorRequest {
        actor_ref: path,
        max_instances: 1,
        annotations: BTreeMap::new(),
    }
}

fn some_link(actor_id: &str) -> LinkDefinition {
    LinkDefinition::new(
        actor_id,
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        generate(KeyKind::Provider).public_key(),
    )
}

/// Every state-changing request of `client`, each of which must be
/// refused with `denied`.
async fn assert_every_change_is_denied(client: &CtlClient, host_id: &str, actor_path: &str) {
    let denied = |kind: CtlErrorKind, what: &str| {
        assert_eq!(kind, CtlErrorKind::Denied, "{what} was not denied");
    };
    let start = client
        .start_actor(host_id, &start_request(actor_path.to_owned()))
        .await;
    denied(start.unwrap_err().kind(), "actor.start");
    let scale = ScaleActorRequest {
        actor_id: generate(KeyKind::Actor).public_key(),
        max_instances: 5,
        annotations: BTreeMap::new(),
    };
    denied(
        client
            .scale_actor(host_id, &scale)
            .await
            .unwrap_err()
            .kind(),
        "actor.scale",
    );
    let provider = StartProviderRequest {
        provider_ref: "/bin/true".into(),
        link_name: "default".into(),
        config: BTreeMap::from([("contract_id".into(), "wasi:keyvalue".into())]),
        annotations: BTreeMap::new(),
    };
    denied(
        client
            .start_provider(host_id, &provider)
            .await
            .unwrap_err()
            .kind(),
        "provider.start",
    );
    let link = some_link(&generate(KeyKind::Actor).public_key());
    denied(client.put_link(&link).await.unwrap_err().kind(), "link.put");
    denied(
        client.stop_host(host_id, None).await.unwrap_err().kind(),
        "host.stop",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_control_requests_are_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = signed_hello(&lattice, dir.path());

    let anonymous = lattice.anonymous_ctl_client().await;
    assert_every_change_is_denied(&anonymous, host.id(), &path).await;
    // Reads need a credential too.
    assert_eq!(
        anonymous.links().await.unwrap_err().kind(),
        CtlErrorKind::Denied
    );

    // Nothing happened: the host runs, with nothing started or linked.
    let inventory = host.inventory().await;
    assert!(inventory.actors.is_empty() && inventory.providers.is_empty());
    assert!(host.links().is_empty());
    let full = lattice.ctl_client(CtlScope::Full).await;
    assert_eq!(full.ping(Duration::from_secs(1)).await.unwrap().len(), 1);
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_from_an_untrusted_operator_is_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let stranger = generate(KeyKind::Operator);
    let user = generate(KeyKind::User);
    let credential = issue_control_credential(
        &stranger,
        &user.public_key(),
        &lattice.name,
        CtlScope::Full,
        Duration::from_secs(60),
    )
    .unwrap();
    let signer = InvocationSigner::new(user, credential, Duration::from_secs(30)).unwrap();
    let client = lattice
        .anonymous_ctl_client()
        .await
        .with_signer(std::sync::Arc::new(signer));
    assert_every_change_is_denied(&client, host.id(), "/nonexistent.wasm").await;
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_credential_can_list_but_not_start() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let dir = tempfile::tempdir().unwrap();
    let (actor, path) = signed_hello(&lattice, dir.path());

    let reader = lattice.ctl_client(CtlScope::Read).await;
    assert_eq!(reader.ping(Duration::from_secs(1)).await.unwrap().len(), 1);
    assert!(reader.inventory(host.id()).await.unwrap().actors.is_empty());
    assert!(reader.links().await.unwrap().is_empty());
    assert!(reader.claims().await.unwrap().is_empty());
    assert_every_change_is_denied(&reader, host.id(), &path).await;

    // The same start with a full credential works.
    let full = lattice.ctl_client(CtlScope::Full).await;
    let started = full
        .start_actor(host.id(), &start_request(path))
        .await
        .unwrap();
    assert_eq!(started.id, actor.public_key());
    host.stop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_rebound_control_request_is_refused() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let signer = lattice.ctl_signer(CtlScope::Full);
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let l = trellis_protocol::Lattice::new(lattice.name.clone()).unwrap();
    let send = |subject: String, token: String, body: Vec<u8>| {
        let nats = nats.clone();
        async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(TOKEN_HEADER, token.as_str());
            let reply = nats
                .request_with_headers(subject, headers, body.into())
                .await
                .unwrap();
            CtlReply::<serde_json::Value>::decode(&reply.payload, &DecodeLimits::default()).unwrap()
        }
    };

    let subject = l.ctl(&CtlOperation::LinkPut).unwrap();
    let link = some_link(&generate(KeyKind::Actor).public_key());
    let body = serde_json::to_vec(&link).unwrap();
    let token = signer.sign_control(&subject, "link.put", &body).unwrap();
    let first = send(subject.clone(), token.clone(), body.clone()).await;
    assert!(first.success, "{}", first.message);

    // The same message again is a replay.
    let again = send(subject.clone(), token, body.clone()).await;
    assert_eq!(again.kind, Some(CtlFailure::Denied));

    // A token for one payload does not carry another.
    let other = serde_json::to_vec(&some_link(&generate(KeyKind::Actor).public_key())).unwrap();
    let token = signer.sign_control(&subject, "link.put", &body).unwrap();
    let changed = send(subject.clone(), token, other).await;
    assert_eq!(changed.kind, Some(CtlFailure::Denied));

    // A token for a read does not carry a write on another subject.
    let list = l.ctl(&CtlOperation::LinkList).unwrap();
    let token = signer.sign_control(&list, "link.list", &body).unwrap();
    let moved = send(subject, token, body).await;
    assert_eq!(moved.kind, Some(CtlFailure::Denied));

    assert_eq!(host.links(), vec![link]);
    host.stop(None).await;
}
