//! Errors: SQLSTATEs, timeouts, denials, unreachable databases, TLS.

use std::time::{Duration, Instant};

use trellis_protocol::RpcErrorKind;
use trellis_protocol::contracts::Operation as _;
use trellis_protocol::contracts::sqldb::{self as sql, SqlError, SqlValue};

use crate::{
    ACTOR, Table, call_as, execute, invoke, link, linked_provider, origin, postgres_url, query,
    request, scalar, unlinked_provider,
};

fn select_one() -> sql::Execute {
    sql::Execute(request("SELECT 1", vec![]))
}

#[tokio::test]
async fn a_bad_statement_returns_its_sqlstate_and_the_provider_keeps_serving() {
    let provider = linked_provider(&[]).await;
    let missing = format!("trellis_missing_{}", uuid::Uuid::new_v4().simple());
    let result = query(&provider, &format!("SELECT * FROM {missing}"), vec![]).await;
    match result {
        Err(SqlError::Query {
            sqlstate, message, ..
        }) => {
            assert_eq!(sqlstate, "42P01");
            assert!(message.contains(&missing), "{message}");
        }
        other => panic!("expected a query error, got {other:?}"),
    }
    let syntax = execute(&provider, "SELEKT 1", vec![]).await;
    assert!(
        matches!(&syntax, Err(SqlError::Query { sqlstate, .. }) if sqlstate == "42601"),
        "{syntax:?}"
    );
    let division = query(&provider, "SELECT 1 / $1::int4", vec![SqlValue::Int4(0)]).await;
    assert!(
        matches!(&division, Err(SqlError::Query { sqlstate, .. }) if sqlstate == "22012"),
        "{division:?}"
    );
    // Every error above went back on a pooled connection; all still work.
    for i in 0..10 {
        assert_eq!(
            scalar(&provider, "SELECT $1::int4 + 1", vec![SqlValue::Int4(i)]).await,
            SqlValue::Int4(i + 1)
        );
    }
}

#[tokio::test]
async fn a_unique_violation_carries_its_sqlstate_and_detail() {
    let provider = linked_provider(&[]).await;
    let table = Table::unique();
    execute(
        &provider,
        &format!("CREATE TABLE {} (id int4 PRIMARY KEY)", table.name),
        vec![],
    )
    .await
    .unwrap();
    let insert = format!("INSERT INTO {} VALUES ($1)", table.name);
    assert_eq!(
        execute(&provider, &insert, vec![SqlValue::Int4(1)]).await,
        Ok(1)
    );
    let again = execute(&provider, &insert, vec![SqlValue::Int4(1)]).await;
    assert_eq!(
        again,
        Err(SqlError::Query {
            sqlstate: "23505".into(),
            message: format!(
                "duplicate key value violates unique constraint \"{}_pkey\"",
                table.name
            ),
            detail: Some("Key (id)=(1) already exists.".into()),
        })
    );
}

#[tokio::test]
async fn a_slow_statement_times_out() {
    let provider = linked_provider(&[("statement_timeout_ms", "300")]).await;
    let started = Instant::now();
    let result = query(&provider, "SELECT pg_sleep(5)", vec![]).await;
    let elapsed = started.elapsed();
    // PostgreSQL cancels it (SQLSTATE 57014), which the provider answers as
    // Timeout, keeping the code in the message.
    match result {
        Err(SqlError::Timeout { message }) => {
            assert!(message.contains("57014"), "{message}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(
        scalar(&provider, "SELECT 'still serving'", vec![]).await,
        SqlValue::Text("still serving".into())
    );
}

#[tokio::test]
async fn execute_returns_rows_affected() {
    let provider = linked_provider(&[]).await;
    let table = Table::unique();
    let t = &table.name;
    assert_eq!(
        execute(
            &provider,
            &format!("CREATE TABLE {t} (id int4, tag text)"),
            vec![]
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        execute(
            &provider,
            &format!("INSERT INTO {t} SELECT g, 'new' FROM generate_series(1, $1::int4) g"),
            vec![SqlValue::Int4(5)],
        )
        .await,
        Ok(5)
    );
    assert_eq!(
        execute(
            &provider,
            &format!("UPDATE {t} SET tag = $1 WHERE id > $2"),
            vec![SqlValue::Text("old".into()), SqlValue::Int4(2)],
        )
        .await,
        Ok(3)
    );
    assert_eq!(
        execute(
            &provider,
            &format!("DELETE FROM {t} WHERE id = $1"),
            vec![SqlValue::Int4(42)]
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        execute(
            &provider,
            &format!("DELETE FROM {t} WHERE tag = 'old'"),
            vec![]
        )
        .await,
        Ok(3)
    );
    // A RETURNING statement's rows come back from query.
    let returned = query(&provider, &format!("DELETE FROM {t} RETURNING id"), vec![])
        .await
        .unwrap();
    let mut ids: Vec<SqlValue> = returned.rows.into_iter().flatten().collect();
    ids.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(ids, vec![SqlValue::Int4(1), SqlValue::Int4(2)]);
}

#[tokio::test]
async fn calls_without_a_usable_link_are_denied() {
    let provider = linked_provider(&[]).await;
    let denied = invoke(&provider, "MOTHERACTOR", select_one()).await;
    assert!(
        matches!(&denied, Err(e) if e.kind == RpcErrorKind::Denied && e.message.contains("MOTHERACTOR")),
        "{denied:?}"
    );
    // The host's stub sees it as the contract's own denial.
    let denied = call_as(&provider, "MOTHERACTOR", select_one()).await;
    assert!(matches!(denied, Err(SqlError::Denied { .. })), "{denied:?}");

    // A link without a url is refused, and so are its calls, with the reason.
    let refused = provider
        .put_link(&link("MOTHERACTOR", &[("pool_size", "2")]))
        .await;
    assert!(refused.unwrap_err().contains("url"));
    assert!(!provider.is_linked("MOTHERACTOR", "default"));
    let denied = invoke(&provider, "MOTHERACTOR", select_one()).await;
    assert!(
        matches!(&denied, Err(e) if e.kind == RpcErrorKind::Denied && e.message.contains("url")),
        "{denied:?}"
    );
    // A refused link holds no pool.
    assert_eq!(provider.provider().pool_count(), 1);

    // Once deleted, the working link denies too, and its pool is closed.
    assert_eq!(execute(&provider, "SELECT 1", vec![]).await, Ok(1));
    provider.delete_link(&link(ACTOR, &[])).await;
    let denied = invoke(&provider, ACTOR, select_one()).await;
    assert!(
        matches!(&denied, Err(e) if e.kind == RpcErrorKind::Denied),
        "{denied:?}"
    );
    assert_eq!(provider.provider().pool_count(), 0);
}

#[tokio::test]
async fn unknown_operations_and_malformed_payloads_are_refused() {
    let provider = linked_provider(&[]).await;
    let payload = trellis_protocol::contracts::encode_request(&select_one()).unwrap();
    let unknown = provider
        .call(&origin(ACTOR), "trellis:sqldb/query.drop", &payload)
        .await;
    assert!(
        matches!(&unknown, Err(e) if e.kind == RpcErrorKind::NotFound),
        "{unknown:?}"
    );
    let garbage = provider
        .call(&origin(ACTOR), sql::Execute::NAME, &[0xc1, 0xff])
        .await;
    assert!(
        matches!(&garbage, Err(e) if e.kind == RpcErrorKind::BadRequest),
        "{garbage:?}"
    );
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_database_is_a_connection_error_and_makes_the_provider_unhealthy() {
    let provider = linked_provider(&[]).await;
    let health = provider.health().await;
    assert!(health.healthy, "{}", health.message);

    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/postgres",
        closed_port()
    );
    provider
        .put_link(&link(
            "MUNREACHABLE",
            &[("url", &url), ("statement_timeout_ms", "2000")],
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let answer = invoke(&provider, "MUNREACHABLE", select_one())
        .await
        .unwrap();
    match answer {
        Err(SqlError::Connection { message }) => {
            assert!(message.contains("postgres@127.0.0.1:"), "{message}");
            assert!(
                !message.contains("hunter2"),
                "the password leaked: {message}"
            );
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    let health = provider.health().await;
    assert!(!health.healthy);
    assert!(health.message.contains("127.0.0.1"), "{}", health.message);
    assert!(!health.message.contains("hunter2"), "{}", health.message);

    // The good link still works, and once the bad one is gone all is well.
    assert_eq!(execute(&provider, "SELECT 1", vec![]).await, Ok(1));
    provider.delete_link(&link("MUNREACHABLE", &[])).await;
    let health = provider.health().await;
    assert!(health.healthy, "{}", health.message);
}

#[tokio::test]
async fn tls_require_verifies_the_server_certificate() {
    // The test server's certificate (if it has TLS at all) is not signed by
    // a public CA, so `require` must refuse to talk to it.
    let provider = unlinked_provider();
    let url = postgres_url();
    provider
        .put_link(&link(ACTOR, &[("url", &url), ("tls", "require")]))
        .await
        .unwrap();
    let result = execute(&provider, "SELECT 1", vec![]).await;
    assert!(
        matches!(&result, Err(SqlError::Connection { .. })),
        "{result:?}"
    );
    let health = provider.health().await;
    assert!(!health.healthy, "{}", health.message);
}
