//! Pools: sharing, statement caching, clean sessions, concurrency.

use trellis_protocol::contracts::sqldb::{self as sql, SqlRows, SqlValue};

use crate::{
    Table, call_as, execute, link, linked_provider, postgres_url, query, request, scalar,
    unlinked_provider,
};

fn select_one() -> sql::Query {
    sql::Query(request("SELECT 1", vec![]))
}

/// The test URL with an `application_name` of its own, to find the
/// provider's connections in `pg_stat_activity`.
fn tagged_url() -> (String, String) {
    let tag = format!("trellis_test_{}", uuid::Uuid::new_v4().simple());
    let url = postgres_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    (format!("{url}{separator}application_name={tag}"), tag)
}

async fn connections_tagged(tag: &str) -> i64 {
    let client = crate::connect().await;
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&tag],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn links_with_the_same_settings_share_one_pool() {
    let (url, tag) = tagged_url();
    let provider = unlinked_provider();
    for actor in ["MFIRST", "MSECOND"] {
        provider
            .put_link(&link(actor, &[("url", &url), ("pool_size", "1")]))
            .await
            .unwrap();
    }
    for actor in ["MFIRST", "MSECOND", "MFIRST"] {
        call_as(&provider, actor, select_one()).await.unwrap();
    }
    assert_eq!(provider.provider().pool_count(), 1);
    assert_eq!(connections_tagged(&tag).await, 1);

    // A different pool size is a pool of its own.
    provider
        .put_link(&link("MTHIRD", &[("url", &url), ("pool_size", "2")]))
        .await
        .unwrap();
    call_as(&provider, "MTHIRD", select_one()).await.unwrap();
    assert_eq!(provider.provider().pool_count(), 2);
    assert_eq!(connections_tagged(&tag).await, 2);

    // Once no link uses a pool, its connections close.
    for actor in ["MFIRST", "MSECOND", "MTHIRD"] {
        provider.delete_link(&link(actor, &[])).await;
    }
    assert_eq!(provider.provider().pool_count(), 0);
    let mut remaining = -1;
    for _ in 0..50 {
        remaining = connections_tagged(&tag).await;
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(remaining, 0);
}

#[tokio::test]
async fn a_repeated_statement_is_prepared_once_per_connection() {
    let provider = linked_provider(&[("pool_size", "1")]).await;
    let marker = format!("trellis_test_{}", uuid::Uuid::new_v4().simple());
    let statement = format!("SELECT $1::int4 AS {marker}");
    for i in 0..5 {
        assert_eq!(
            scalar(&provider, &statement, vec![SqlValue::Int4(i)]).await,
            SqlValue::Int4(i)
        );
    }
    // The pool's single connection sees its own prepared statements.
    let prepared = scalar(
        &provider,
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
        vec![SqlValue::Text(statement.clone())],
    )
    .await;
    assert_eq!(prepared, SqlValue::Int8(1));
}

#[tokio::test]
async fn a_cached_statement_follows_a_change_of_its_table() {
    let provider = linked_provider(&[("pool_size", "1")]).await;
    let table = Table::unique();
    let t = &table.name;
    execute(&provider, &format!("CREATE TABLE {t} (a int4)"), vec![])
        .await
        .unwrap();
    execute(&provider, &format!("INSERT INTO {t} VALUES (1)"), vec![])
        .await
        .unwrap();
    let select = format!("SELECT * FROM {t}");
    assert_eq!(
        query(&provider, &select, vec![]).await.unwrap().rows,
        vec![vec![SqlValue::Int4(1)]]
    );
    execute(
        &provider,
        &format!("ALTER TABLE {t} ADD COLUMN b text DEFAULT 'x'"),
        vec![],
    )
    .await
    .unwrap();
    let rows: SqlRows = query(&provider, &select, vec![]).await.unwrap();
    assert_eq!(rows.columns.len(), 2);
    assert_eq!(
        rows.rows,
        vec![vec![SqlValue::Int4(1), SqlValue::Text("x".into())]]
    );
}

#[tokio::test]
async fn session_state_does_not_leak_from_one_call_to_the_next() {
    let provider = linked_provider(&[("pool_size", "1"), ("statement_timeout_ms", "4000")]).await;
    execute(&provider, "SET search_path TO nowhere", vec![])
        .await
        .unwrap();
    execute(&provider, "SET statement_timeout = 0", vec![])
        .await
        .unwrap();
    execute(
        &provider,
        "CREATE TEMPORARY TABLE trellis_leak (a int4)",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(&provider, "SHOW search_path", vec![]).await,
        SqlValue::Text("\"$user\", public".into())
    );
    assert_eq!(
        scalar(&provider, "SHOW statement_timeout", vec![]).await,
        SqlValue::Text("4s".into())
    );
    assert_eq!(
        scalar(
            &provider,
            "SELECT to_regclass('pg_temp.trellis_leak') IS NULL",
            vec![]
        )
        .await,
        SqlValue::Bool(true)
    );
}

#[tokio::test]
async fn concurrent_calls_share_a_small_pool() {
    let provider = linked_provider(&[("pool_size", "2")]).await;
    let calls = (0..16).map(|i| {
        let provider = &provider;
        async move {
            query(
                provider,
                "SELECT $1::int4 FROM pg_sleep(0.05)",
                vec![SqlValue::Int4(i)],
            )
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(
            result.unwrap().rows,
            vec![vec![SqlValue::Int4(i32::try_from(i).unwrap())]]
        );
    }
}

#[tokio::test]
async fn a_transaction_left_open_by_a_call_does_not_swallow_the_next_call() {
    let provider = linked_provider(&[("pool_size", "1")]).await;
    let table = Table::unique();
    let t = &table.name;
    execute(&provider, &format!("CREATE TABLE {t} (a int4)"), vec![])
        .await
        .unwrap();
    execute(&provider, "BEGIN", vec![]).await.unwrap();
    execute(&provider, &format!("INSERT INTO {t} VALUES (1)"), vec![])
        .await
        .unwrap();
    // The insert ran in its own implicit transaction and is committed.
    let admin = crate::connect().await;
    let count: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}
