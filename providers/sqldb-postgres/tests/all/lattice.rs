//! End to end: the provider binary started by a host, called over NATS with
//! a signed invocation exactly as a host calls it for an actor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use trellis_claims::invocation::{InvocationSigner, issue_credential};
use trellis_claims::keys::{KeyKind, generate};
use trellis_lattice_client::RpcClient;
use trellis_protocol::contracts::sqldb::{
    EXECUTE_OPERATION, ExecuteResponse, QUERY_OPERATION, QueryResponse, SqlRequest, SqlValue,
};
use trellis_protocol::{
    ContractId, DecodeLimits, Entity, EntityKind, Lattice, LinkDefinition, RpcErrorKind,
    decode_msgpack, encode_msgpack,
};
use trellis_test_support::host::TestLattice;

use crate::{Table, postgres_url};

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
    let link = LinkDefinition::new(&actor, contract.clone(), "default", &provider.id)
        .with_config("url", postgres_url());
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
    let subject = Lattice::new(lattice.name.clone())
        .unwrap()
        .rpc(&provider.id, Some("default"))
        .unwrap();
    let origin = Entity {
        kind: EntityKind::Actor,
        id: actor.clone(),
        contract_id: Some(contract.to_string()),
        link_name: Some("default".into()),
    };
    let target = Entity {
        kind: EntityKind::Provider,
        id: provider.id.clone(),
        contract_id: Some(contract.to_string()),
        link_name: Some("default".into()),
    };
    let call = |operation: &'static str, statement: String, params: Vec<SqlValue>| {
        let (rpc, subject, origin, target) = (&rpc, &subject, origin.clone(), target.clone());
        async move {
            let payload = encode_msgpack(&SqlRequest { statement, params }).unwrap();
            rpc.invoke(
                subject,
                origin,
                target,
                operation,
                payload,
                Duration::from_secs(5),
            )
            .await
        }
    };

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
        match call(EXECUTE_OPERATION, insert.clone(), params.clone()).await {
            Ok(answer) => break answer,
            Err((RpcErrorKind::NotFound | RpcErrorKind::Timeout, _))
                if started.elapsed() < START_TIMEOUT => {}
            Err((RpcErrorKind::Denied, _)) if started.elapsed() < START_TIMEOUT => {
                host.put_link(link.clone()).await.unwrap();
            }
            Err(e) => panic!("the provider did not answer: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let affected: ExecuteResponse = decode_msgpack(&answer, &DecodeLimits::default()).unwrap();
    assert_eq!(affected, Ok(2));

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
    let answer = call(
        QUERY_OPERATION,
        format!("SELECT note FROM {} WHERE id = $1", table.name),
        vec![SqlValue::Int8(1)],
    )
    .await
    .unwrap();
    let rows: QueryResponse = decode_msgpack(&answer, &DecodeLimits::default()).unwrap();
    let rows = rows.unwrap();
    assert_eq!(rows.columns[0].name, "note");
    assert_eq!(rows.columns[0].type_name, "text");
    assert_eq!(
        rows.rows,
        vec![vec![SqlValue::Text("über the lattice".into())]]
    );

    // An actor without a link is denied by the provider itself.
    let mut stranger = origin.clone();
    stranger.id = generate(KeyKind::Actor).public_key();
    let denied = rpc
        .invoke(
            &subject,
            stranger,
            target.clone(),
            QUERY_OPERATION,
            encode_msgpack(&SqlRequest {
                statement: "SELECT 1".into(),
                params: vec![],
            })
            .unwrap(),
            Duration::from_secs(5),
        )
        .await;
    assert!(
        matches!(denied, Err((RpcErrorKind::Denied, _))),
        "{denied:?}"
    );

    host.stop(None).await;
}
