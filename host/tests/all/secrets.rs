//! Link secrets stay sealed: a host takes only secrets sealed to the
//! lattice's secrets key, keeps them sealed in the bucket and the link
//! list, and hosts sharing a cluster seed agree on the key.

use trellis_claims::invocation::CtlScope;
use trellis_claims::keys::{KeyKind, generate};
use trellis_claims::secrets::{derive_lattice_key, generate_xkey, seal};
use trellis_lattice_client::CtlErrorKind;
use trellis_protocol::ctl::CtlFailure;
use trellis_protocol::{ContractId, LinkDefinition, SealedSecret};

use crate::TestLattice;

fn link() -> LinkDefinition {
    LinkDefinition::new(
        generate(KeyKind::Actor).public_key(),
        ContractId::new("trellis:sqldb").unwrap(),
        "default",
        generate(KeyKind::Provider).public_key(),
    )
}

#[tokio::test]
async fn a_secret_sealed_to_another_key_is_refused_as_a_bad_request() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let client = lattice.ctl_client(CtlScope::Full).await;
    let sender = generate_xkey();
    let stranger = generate_xkey();
    let misdirected = link().with_secret(
        "url",
        SealedSecret {
            sender: sender.public_key(),
            sealed: seal(b"postgres://db", &sender, &stranger.public_key()).unwrap(),
        },
    );
    let err = client.put_link(&misdirected).await.unwrap_err();
    assert_eq!(err.kind(), CtlErrorKind::Refused);
    assert_eq!(err.failure(), Some(CtlFailure::BadRequest));
    assert!(client.links().await.unwrap().is_empty());
    host.stop(None).await;
}

#[tokio::test]
async fn a_sealed_secret_is_stored_and_listed_sealed() {
    let lattice = TestLattice::new();
    let host = lattice.host().await;
    // The key derives from the lattice's cluster seed.
    assert_eq!(
        host.secrets_key(),
        derive_lattice_key(&lattice.cluster).unwrap().public_key()
    );
    let client = lattice.ctl_client(CtlScope::Full).await;
    let secrets = client
        .seal_secrets([("url".to_owned(), b"postgres://u:hunter2@db/app".to_vec())])
        .await
        .unwrap();
    let sealed = link().with_config("pool_size", "4");
    let sealed = LinkDefinition { secrets, ..sealed };
    client.put_link(&sealed).await.unwrap();

    let listed = client.links().await.unwrap();
    assert_eq!(listed, vec![sealed.clone()]);
    let bucket = async_nats::jetstream::new(async_nats::connect(lattice.nats.url()).await.unwrap())
        .get_key_value(trellis_host::lattice_data::bucket_name(&lattice.name))
        .await
        .unwrap();
    let stored = bucket.get(sealed.bucket_key()).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("hunter2"));
    host.stop(None).await;
}

#[tokio::test]
async fn hosts_holding_different_secrets_keys_make_sealing_refuse() {
    let lattice = TestLattice::new();
    let first = lattice.host().await;
    let second = lattice.host().await;
    assert_eq!(first.secrets_key(), second.secrets_key());
    let client = lattice.ctl_client(CtlScope::Full).await;
    client
        .seal_secrets([("token".to_owned(), b"t".to_vec())])
        .await
        .unwrap();

    let odd = trellis_host::Host::start(trellis_host::HostConfig {
        secrets_seed: Some(generate_xkey().seed().unwrap()),
        ..lattice.config()
    })
    .await
    .unwrap();
    let err = client
        .seal_secrets([("token".to_owned(), b"t".to_vec())])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CtlErrorKind::Refused);
    for host in [first, second, odd] {
        host.stop(None).await;
    }
}
