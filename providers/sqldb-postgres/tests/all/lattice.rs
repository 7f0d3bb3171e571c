//! End to end: the provider binary started by a host, called over NATS with
//! a signed invocation exactly as a host calls it for an actor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_claims::invocation::{InvocationSigner, issue_credential};
use trellis_claims::keys::{KeyKind, generate};
use trellis_claims::secrets::{generate_xkey, seal};
use trellis_lattice_client::{InvokeError, RpcClient};
use trellis_protocol::contracts::sqldb::{self as sql, SqlValue};
use trellis_protocol::contracts::{self, Answer, Operation};
use trellis_protocol::{
    ContractId, DecodeLimits, Lattice, LinkDefinition, RpcErrorKind, SealedSecret,
};
use trellis_test_support::host::TestLattice;

use crate::{Table, postgres_url, request};

/// Sends `operation` along `route` through `rpc`, as a host does for an
/// actor: the typed answer, or the error of the invocation itself.
async fn invoke<O: Operation>(
    rpc: &RpcClient,
    route: &trellis_protocol::Route,
    operation: O,
) -> Result<Answer<O>, InvokeError> {
    let payload = contracts::encode_request(&operation).unwrap();
    let bytes = rpc
        .invoke(route, O::NAME, payload, Duration::from_secs(5))
        .await?;
    Ok(contracts::decode_answer::<O>(&bytes, &DecodeLimits::default()).unwrap())
}

/// How long the provider process may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(8);

#[tokio::test]
async fn an_actors_statement_reaches_postgres_through_the_lattice() {
    let table = Table::unique();
    let admin = crate::connect().await;
    admin
        .batch_execute(&format!("CREATE TABLE {} (id int4, note text)", table.name))
        .await
        .unwrap();

    let lattice = TestLattice::new();
    let host = lattice.host().await;
    let provider = host
        .start_provider(
            env!("CARGO_BIN_EXE_sqldb-postgres"),
            "default",
            BTreeMap::from([("contract_id".into(), "trellis:sqldb".into())]),
            Default::default(),
        )
        .await
        .unwrap();
    let actor = generate(KeyKind::Actor).public_key();
    let contract = ContractId::new("trellis:sqldb").unwrap();
    // The URL is a secret: sealed to the lattice's secrets key, sealed
    // again by the host for the provider process, opened there.
    let sender = generate_xkey();
    let link = LinkDefinition::new(&actor, contract.clone(), "default", &provider.id).with_secret(
        "url",
        SealedSecret {
            sender: sender.public_key(),
            sealed: seal(postgres_url().as_bytes(), &sender, &host.secrets_key()).unwrap(),
        },
    );
    host.put_link(link.clone()).await.unwrap();

    // Sign like a host of the lattice: a key vouched for by the cluster key.
    let key = generate(KeyKind::Host);
    let credential = issue_credential(
        &lattice.cluster,
        &key.public_key(),
        &lattice.name,
        Duration::from_secs(600),
    )
    .unwrap();
    let signer = InvocationSigner::new(key, credential, Duration::from_secs(30)).unwrap();
    let nats = async_nats::connect(lattice.nats.url()).await.unwrap();
    let rpc = RpcClient::new(nats, signer, 1024 * 1024);
    let route = Lattice::new(lattice.name.clone())
        .unwrap()
        .route_to_provider(&link)
        .unwrap();

    // The process needs a moment to start. A link put before it subscribed
    // is not delivered again, so it is put again while the provider denies.
    let insert = format!("INSERT INTO {} VALUES ($1, $2), ($3, $4)", table.name);
    let params = vec![
        SqlValue::Int4(1),
        SqlValue::Text("über the lattice".into()),
        SqlValue::Int4(2),
        SqlValue::Null,
    ];
    let started = Instant::now();
    let answer = loop {
        let execute = sql::Execute(request(&insert, params.clone()));
        match invoke(&rpc, &route, execute).await {
            Ok(answer) => break answer,
            Err(e) if started.elapsed() < START_TIMEOUT => match e.rpc_kind() {
                RpcErrorKind::NotFound | RpcErrorKind::Timeout => {}
                RpcErrorKind::Denied => host.put_link(link.clone()).await.unwrap(),
                _ => panic!("the provider did not answer: {e:?}"),
            },
            Err(e) => panic!("the provider did not answer: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answer, Ok(2));

    // The rows are in PostgreSQL, seen from another connection.
    let rows = admin
        .query(
            &format!("SELECT id, note FROM {} ORDER BY id", table.name),
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(i32, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        vec![(1, Some("über the lattice".to_owned())), (2, None)]
    );

    // And a query comes back through the lattice with its columns.
    let select = format!("SELECT note FROM {} WHERE id = $1", table.name);
    let rows = invoke(
        &rpc,
        &route,
        sql::Query(request(&select, vec![SqlValue::Int8(1)])),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rows.columns[0].name, "note");
    assert_eq!(rows.columns[0].type_name, "text");
    assert_eq!(
        rows.rows,
        vec![vec![SqlValue::Text("über the lattice".into())]]
    );

    // An actor without a link is denied by the provider itself.
    let stranger = LinkDefinition::new(
        generate(KeyKind::Actor).public_key(),
        contract,
        "default",
        &provider.id,
    );
    let stranger = Lattice::new(lattice.name.clone())
        .unwrap()
        .route_to_provider(&stranger)
        .unwrap();
    let denied = invoke(&rpc, &stranger, sql::Query(request("SELECT 1", vec![]))).await;
    assert!(
        matches!(&denied, Err(e) if e.rpc_kind() == RpcErrorKind::Denied),
        "{denied:?}"
    );

    host.stop(None).await;
}
