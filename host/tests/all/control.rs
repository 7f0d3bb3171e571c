//! The control interface over NATS.

use std::time::Duration;

use futures::StreamExt as _;
use trellis_claims::invocation::{CtlScope, InvocationSigner};
use trellis_claims::keys::{KeyKind, generate};
use trellis_protocol::ctl::{CtlReply, HostPong, LinkList, StartActorRequest};
use trellis_protocol::subject::{CtlOperation, TOKEN_HEADER};
use trellis_protocol::{
    ActorDescription, ContractId, DecodeLimits, HostInventory, Lattice, LinkDefinition,
};

use crate::{TestLattice, body, eventually, example, write_temp};

/// The headers of a control request of `op` with `body`, signed as
/// `docs/protocol.md` §5.2 says: a token bound to the subject and payload.
fn signed(
    signer: &InvocationSigner,
    l: &Lattice,
    op: &CtlOperation,
    body: &[u8],
) -> (String, async_nats::HeaderMap) {
    let subject = l.ctl(op).unwrap();
    let token = signer.sign_control(&subject, op.name(), body).unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(TOKEN_HEADER, token.as_str());
    (subject, headers)
}

/// Sends a signed control request straight over NATS, as a third-party
/// client would.
async fn ctl<T: serde::de::DeserializeOwned>(
    nats: &async_nats::Client,
    signer: &InvocationSigner,
    l: &Lattice,
    op: CtlOperation,
    body: Vec<u8>,
) -> CtlReply<T> {
    let (subject, headers) = signed(signer, l, &op, &body);
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        nats.request_with_headers(subject, headers, body.into()),
    )
    .await
    .unwrap()
    .unwrap();
    CtlReply::decode(&reply.payload, &DecodeLimits::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_and_links_are_managed_through_the_control_interface() {
    let lattice = TestLattice::new();
    let (a, b) = (lattice.host().await, lattice.host().await);
    let client = lattice.client().await;
    let nats = &client.nats;
    let l = &client.lattice;
    let signer = &*lattice.ctl_signer(CtlScope::Full);

    // Every host answers a ping.
    let mut replies = nats.subscribe("test.ping.replies").await.unwrap();
    let (subject, headers) = signed(signer, l, &CtlOperation::HostPing, b"");
    nats.publish_with_reply_and_headers(subject, "test.ping.replies", headers, "".into())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(5), replies.next())
            .await
            .unwrap()
            .unwrap();
        let pong: CtlReply<HostPong> =
            CtlReply::decode(&m.payload, &DecodeLimits::default()).unwrap();
        ids.push(pong.response.unwrap().host_id);
    }
    ids.sort();
    let mut expected = vec![a.id().to_owned(), b.id().to_owned()];
    expected.sort();
    assert_eq!(ids, expected);

    // Start an actor on host A.
    let dir = tempfile::tempdir().unwrap();
    let actor = generate(KeyKind::Actor);
    let path = write_temp(
        dir.path(),
        "hello.wasm",
        &lattice.sign(&example("hello"), &actor, &[]),
    );
    let request = StartActorRequest {
        actor_ref: path,
        max_instances: 2,
        annotations: Default::default(),
    };
    let start = CtlOperation::ActorStart {
        host_id: a.id().into(),
    };
    let reply: CtlReply<ActorDescription> = ctl(
        nats,
        signer,
        l,
        start.clone(),
        serde_json::to_vec(&request).unwrap(),
    )
    .await;
    assert!(reply.success, "{}", reply.message);
    assert_eq!(reply.response.unwrap().id, actor.public_key());
    assert_eq!(
        body(&client.get(&actor.public_key(), "/?name=ctl").await.unwrap()),
        "Hello, ctl!"
    );

    // A refused start is a failed reply, not a hang.
    let bad = StartActorRequest {
        actor_ref: "/nonexistent.wasm".into(),
        max_instances: 1,
        annotations: Default::default(),
    };
    let reply: CtlReply<ActorDescription> =
        ctl(nats, signer, l, start, serde_json::to_vec(&bad).unwrap()).await;
    assert!(!reply.success);

    // Inventory lists it.
    let get = CtlOperation::HostGet {
        host_id: a.id().into(),
    };
    let inventory: CtlReply<HostInventory> = ctl(nats, signer, l, get, vec![]).await;
    let inventory = inventory.response.unwrap();
    assert_eq!(inventory.actors.len(), 1);
    assert_eq!(inventory.actors[0].max_instances, 2);
    assert_eq!(inventory.labels["hostcore.os"], std::env::consts::OS);

    // Its claims are in the lattice bucket, seen by every host.
    let claims: CtlReply<trellis_protocol::ctl::ClaimsList> =
        ctl(nats, signer, l, CtlOperation::ClaimsList, vec![]).await;
    let claims = claims.response.unwrap().claims;
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["sub"], actor.public_key());
    assert!(eventually(Duration::from_secs(5), || async { b.claims().len() == 1 }).await);

    // Links put through one host are seen by the other.
    let link = LinkDefinition::new(
        actor.public_key(),
        ContractId::new("wasi:keyvalue").unwrap(),
        "default",
        generate(KeyKind::Provider).public_key(),
    )
    .with_config("prefix", "t:");
    let put: CtlReply<()> = ctl(
        nats,
        signer,
        l,
        CtlOperation::LinkPut,
        serde_json::to_vec(&link).unwrap(),
    )
    .await;
    assert!(put.success, "{}", put.message);
    assert!(
        eventually(Duration::from_secs(5), || async {
            a.links() == vec![link.clone()] && b.links() == vec![link.clone()]
        })
        .await
    );
    let list: CtlReply<LinkList> = ctl(nats, signer, l, CtlOperation::LinkList, vec![]).await;
    assert_eq!(list.response.unwrap().links, vec![link.clone()]);
    let del = serde_json::json!({"actor_id": actor.public_key(), "contract_id": "wasi:keyvalue"});
    let deleted: CtlReply<()> = ctl(
        nats,
        signer,
        l,
        CtlOperation::LinkDel,
        serde_json::to_vec(&del).unwrap(),
    )
    .await;
    assert!(deleted.success, "{}", deleted.message);
    assert!(
        eventually(Duration::from_secs(5), || async {
            a.links().is_empty() && b.links().is_empty()
        })
        .await
    );

    // A link with a hostile id is refused.
    let mut hostile = serde_json::to_value(&link).unwrap();
    hostile["actor_id"] = "M.>".into();
    let refused: CtlReply<()> = ctl(
        nats,
        signer,
        l,
        CtlOperation::LinkPut,
        serde_json::to_vec(&hostile).unwrap(),
    )
    .await;
    assert!(!refused.success);

    // Stop host B through the control interface.
    let stop: CtlReply<()> = ctl(
        nats,
        signer,
        l,
        CtlOperation::HostStop {
            host_id: b.id().into(),
        },
        b"{}".to_vec(),
    )
    .await;
    assert!(stop.success);
    tokio::time::timeout(Duration::from_secs(10), b.stopped())
        .await
        .unwrap();
    a.stop(None).await;
}
