//! Tests of the sqldb-postgres provider against a real PostgreSQL.
//!
//! The database is `TRELLIS_TEST_POSTGRES_URL` (default
//! `postgres://postgres:postgres@127.0.0.1:5432/postgres`). Each test works
//! in tables of its own, named with a UUID, and drops them even when it
//! fails.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod errors;
mod lattice;
mod pooling;
mod types;

use std::collections::BTreeMap;

use trellis_protocol::contracts::sqldb::{self as sql, SqlError, SqlRequest, SqlRows, SqlValue};
use trellis_protocol::contracts::{self, Answer, ContractError, ErrorOf, Operation};
use trellis_protocol::{ContractId, DecodeLimits, Entity, EntityKind, LinkDefinition, RpcError};
use trellis_provider_sdk::LinkedProvider;
use trellis_provider_sqldb_postgres::SqlDbProvider;

/// The provider with the SDK's link table, driven in-process (no NATS).
pub type Linked = LinkedProvider<SqlDbProvider>;

/// A provider with no links.
pub fn unlinked_provider() -> Linked {
    LinkedProvider::new(SqlDbProvider::new())
}

/// Environment variable naming the test database.
pub const POSTGRES_URL_ENV: &str = "TRELLIS_TEST_POSTGRES_URL";

/// The test database's URL.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The actor id the in-process tests call as.
pub const ACTOR: &str = "MTESTACTOR";

/// A link from `actor` to the provider with `config`.
pub fn link(actor: &str, config: &[(&str, &str)]) -> LinkDefinition {
    let mut link = LinkDefinition::new(
        actor,
        ContractId::new("trellis:sqldb").unwrap(),
        "default",
        "VTESTPROVIDER",
    );
    link.config = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<BTreeMap<_, _>>();
    link
}

/// A provider with [`ACTOR`] linked to the test database, with extra
/// link config `extra`.
pub async fn linked_provider(extra: &[(&str, &str)]) -> Linked {
    let linked = unlinked_provider();
    let url = postgres_url();
    let mut config = vec![("url", url.as_str())];
    config.extend_from_slice(extra);
    linked.put_link(&link(ACTOR, &config)).await.unwrap();
    linked
}

/// The origin of an invocation by `actor` (link name `default`).
pub fn origin(actor: &str) -> Entity {
    Entity {
        kind: EntityKind::Actor,
        id: actor.to_owned(),
        contract_id: Some("trellis:sqldb".to_owned()),
        link_name: Some("default".to_owned()),
    }
}

/// A statement and its parameters.
pub fn request(statement: &str, params: Vec<SqlValue>) -> SqlRequest {
    SqlRequest {
        statement: statement.to_owned(),
        params,
    }
}

/// Calls `request` on `linked` as `actor`, as the SDK does once the
/// invocation is verified: the typed answer, or the error of the invocation
/// itself (a denial, an unknown operation).
pub async fn invoke<O: Operation>(
    linked: &Linked,
    actor: &str,
    request: O,
) -> Result<Answer<O>, RpcError> {
    let payload = contracts::encode_request(&request).unwrap();
    let bytes = linked.call(&origin(actor), O::NAME, &payload).await?;
    Ok(contracts::decode_answer::<O>(&bytes, &DecodeLimits::default()).unwrap())
}

/// [`invoke`], with the invocation's error folded into the contract's
/// error as the host's stub does (a denial is `SqlError::Denied`).
pub async fn call_as<O: Operation>(linked: &Linked, actor: &str, request: O) -> Answer<O> {
    invoke(linked, actor, request)
        .await
        .unwrap_or_else(|e| Err(<ErrorOf<O> as ContractError>::from_rpc(e)))
}

/// `query` as [`ACTOR`].
pub async fn query(
    linked: &Linked,
    statement: &str,
    params: Vec<SqlValue>,
) -> Result<SqlRows, SqlError> {
    call_as(linked, ACTOR, sql::Query(request(statement, params))).await
}

/// `execute` as [`ACTOR`].
pub async fn execute(
    linked: &Linked,
    statement: &str,
    params: Vec<SqlValue>,
) -> Result<u64, SqlError> {
    call_as(linked, ACTOR, sql::Execute(request(statement, params))).await
}

/// The single value of a one-row, one-column result.
pub async fn scalar(linked: &Linked, statement: &str, params: Vec<SqlValue>) -> SqlValue {
    let rows = query(linked, statement, params)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
    assert_eq!(rows.rows.len(), 1, "{statement}");
    assert_eq!(rows.rows[0].len(), 1, "{statement}");
    rows.rows[0][0].clone()
}

/// A direct connection to the test database, to check what the provider did.
pub async fn connect() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .expect("cannot connect to the test database; set TRELLIS_TEST_POSTGRES_URL");
    tokio::spawn(connection);
    client
}

/// A uniquely named table, dropped (on a thread of its own) when the guard
/// goes out of scope, even if the test panicked.
pub struct Table {
    pub name: String,
}

impl Table {
    pub fn unique() -> Self {
        Self {
            name: format!("trellis_test_{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let statement = format!("DROP TABLE IF EXISTS {}", self.name);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = connect().await;
                client.batch_execute(&statement).await.unwrap();
            });
        })
        .join();
    }
}
