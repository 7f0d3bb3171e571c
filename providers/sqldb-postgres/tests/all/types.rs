//! Every contract type, both ways, and the text forms of the others.

use trellis_protocol::contracts::sqldb::{SqlColumn, SqlError, SqlValue};

use crate::{Table, execute, linked_provider, query, scalar};

const COLUMNS: &[(&str, &str)] = &[
    ("id", "int4"),
    ("b", "bool"),
    ("i2", "int2"),
    ("i4", "int4"),
    ("i8", "int8"),
    ("f4", "float4"),
    ("f8", "float8"),
    ("n", "numeric"),
    ("t", "text"),
    ("bin", "bytea"),
    ("u", "uuid"),
    ("d", "date"),
    ("tm", "time"),
    ("ts", "timestamp"),
    ("tstz", "timestamptz"),
    ("j", "json"),
    ("jb", "jsonb"),
];

fn insert_statement(table: &str) -> String {
    let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
    let params: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        params.join(", ")
    )
}

/// Each row as sent, then as PostgreSQL gives it back.
fn rows() -> Vec<(Vec<SqlValue>, Vec<SqlValue>)> {
    use SqlValue as V;
    let all_bytes: Vec<u8> = (0..=255).collect();
    let typical = vec![
        V::Int4(1),
        V::Bool(true),
        V::Int2(-12),
        V::Int4(123_456),
        V::Int8(-9_876_543_210),
        V::Float4(1.5),
        V::Float8(-2.25e-10),
        V::Numeric("-1234.5600".into()),
        V::Text("héllo, 世界 🌍 \"quoted\" \\ ' tab\tnewline\n".into()),
        V::Bytea(all_bytes.clone()),
        V::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        V::Date("2024-02-29".into()),
        V::Time("13:45:07.25".into()),
        V::Timestamp("2024-02-29T13:45:07.25".into()),
        V::Timestamptz("2024-02-29T13:45:07.25+01:00".into()),
        V::Json(r#"{"b": 1,  "a": [true, null, "ü"]}"#.into()),
        V::Jsonb(r#"{"b": 1,  "a": [true, null, "ü"]}"#.into()),
    ];
    let mut typical_back = typical.clone();
    typical_back[14] = V::Timestamptz("2024-02-29T12:45:07.25Z".into());
    typical_back[16] = V::Jsonb(r#"{"a": [true, null, "ü"], "b": 1}"#.into());

    let extreme = vec![
        V::Int4(2),
        V::Bool(false),
        V::Int2(i16::MIN),
        V::Int4(i32::MAX),
        V::Int8(i64::MIN),
        V::Float4(f32::INFINITY),
        V::Float8(f64::MIN_POSITIVE),
        V::Numeric("-123456789012345678901234567890.000000000000000000000000000001".into()),
        V::Text(String::new()),
        V::Bytea(vec![]),
        V::Uuid("00000000-0000-0000-0000-000000000000".into()),
        V::Date("-4713-11-24".into()),
        V::Time("24:00:00".into()),
        V::Timestamp("0001-01-01T00:00:00.000001".into()),
        V::Timestamptz("infinity".into()),
        V::Json("[]".into()),
        V::Jsonb("\"just a string\"".into()),
    ];
    let more = vec![
        V::Int4(3),
        V::Bool(true),
        V::Int2(i16::MAX),
        V::Int4(i32::MIN),
        V::Int8(i64::MAX),
        V::Float4(f32::MAX),
        V::Float8(f64::NEG_INFINITY),
        V::Numeric("NaN".into()),
        V::Text("z".repeat(10)),
        V::Bytea(vec![0]),
        V::Uuid("ffffffff-ffff-ffff-ffff-ffffffffffff".into()),
        V::Date("infinity".into()),
        V::Time("00:00:00".into()),
        V::Timestamp("-infinity".into()),
        V::Timestamptz("1999-12-31T23:59:59.999999Z".into()),
        V::Json("null".into()),
        V::Jsonb("{}".into()),
    ];
    let mut nulls = vec![V::Int4(4)];
    nulls.extend(std::iter::repeat_n(V::Null, COLUMNS.len() - 1));
    vec![
        (typical, typical_back),
        (extreme.clone(), extreme),
        (more.clone(), more),
        (nulls.clone(), nulls),
    ]
}

#[tokio::test]
async fn every_contract_type_round_trips_exactly_including_nulls() {
    let provider = linked_provider(&[]).await;
    let table = Table::unique();
    let columns: Vec<String> = COLUMNS.iter().map(|(n, t)| format!("{n} {t}")).collect();
    execute(
        &provider,
        &format!("CREATE TABLE {} ({})", table.name, columns.join(", ")),
        vec![],
    )
    .await
    .unwrap();

    let insert = insert_statement(&table.name);
    for (sent, _) in rows() {
        assert_eq!(execute(&provider, &insert, sent).await, Ok(1));
    }
    let result = query(
        &provider,
        &format!("SELECT * FROM {} ORDER BY id", table.name),
        vec![],
    )
    .await
    .unwrap();

    let expected_columns: Vec<SqlColumn> = COLUMNS
        .iter()
        .map(|(name, type_name)| SqlColumn {
            name: (*name).to_owned(),
            type_name: (*type_name).to_owned(),
        })
        .collect();
    assert_eq!(result.columns, expected_columns);
    let expected: Vec<Vec<SqlValue>> = rows().into_iter().map(|(_, back)| back).collect();
    assert_eq!(result.rows.len(), expected.len());
    for (got, want) in result.rows.iter().zip(&expected) {
        for ((got, want), (name, _)) in got.iter().zip(want).zip(COLUMNS) {
            assert_eq!(got, want, "column {name}");
        }
    }
}

#[tokio::test]
async fn megabyte_text_and_bytea_values_round_trip() {
    let provider = linked_provider(&[]).await;
    let table = Table::unique();
    execute(
        &provider,
        &format!("CREATE TABLE {} (t text, b bytea)", table.name),
        vec![],
    )
    .await
    .unwrap();
    let text: String = "Grüße, 世界! 🌍 ".chars().cycle().take(700_000).collect();
    assert!(text.len() > 1024 * 1024);
    let bytes: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i * 7 % 256) as u8).collect();
    let inserted = execute(
        &provider,
        &format!("INSERT INTO {} VALUES ($1, $2)", table.name),
        vec![SqlValue::Text(text.clone()), SqlValue::Bytea(bytes.clone())],
    )
    .await;
    assert_eq!(inserted, Ok(1));
    let rows = query(
        &provider,
        &format!("SELECT t, b, length(t), length(b) FROM {}", table.name),
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(
        rows.rows,
        vec![vec![
            SqlValue::Text(text),
            SqlValue::Bytea(bytes),
            SqlValue::Int4(700_000),
            SqlValue::Int4(1024 * 1024),
        ]]
    );
}

#[tokio::test]
async fn numerics_keep_every_digit_and_their_scale() {
    let provider = linked_provider(&[]).await;
    for n in [
        "0",
        "0.000",
        "-0.00001",
        "10000",
        "99999999999999999999999999999999999999.99999999999999999999999999",
        "Infinity",
        "-Infinity",
    ] {
        // Sent as a parameter, compared with PostgreSQL's own text output.
        let rows = query(
            &provider,
            "SELECT $1::numeric, $1::numeric::text",
            vec![SqlValue::Numeric(n.into())],
        )
        .await
        .unwrap();
        assert_eq!(rows.rows[0][0], SqlValue::Numeric(n.into()));
        assert_eq!(rows.rows[0][1], SqlValue::Text(n.into()));
    }
    assert_eq!(
        scalar(&provider, "SELECT 1.5e3::numeric(10, 2)", vec![]).await,
        SqlValue::Numeric("1500.00".into())
    );
}

#[tokio::test]
async fn types_without_a_case_of_their_own_come_back_as_postgresql_text() {
    let provider = linked_provider(&[]).await;
    for expression in [
        "ARRAY[1, 2, NULL]::int4[]",
        "ARRAY[[1, 2], [3, 4]]::int8[]",
        "'[0:1]={7,8}'::int2[]",
        "'{}'::text[]",
        r#"ARRAY['a b', 'c"d', 'e\f', '', 'NULL', 'x,y', '{z}', 'ü']::text[]"#,
        "ARRAY[true, false]",
        "ARRAY[1.5, 1e20, 1e-5, 'NaN', '-Infinity', -0.0, 0.1]::float8[]",
        "ARRAY[1.5, 1e6, 0.1]::float4[]",
        "ARRAY[1.50, NULL, 'NaN']::numeric[]",
        r#"ARRAY['\x00ff'::bytea]"#,
        "ARRAY['67e55044-10b1-426f-9247-bb680e5fe0c8'::uuid]",
        r#"ARRAY['{"a": 1}'::jsonb]"#,
        "ROW(1, 'a b', NULL, 'q\"', '')",
        "interval '1 year 2 months 3 days 04:05:06.5'",
        "interval '-1 days +02:00:00'",
        "interval '0'",
        "interval '-1.5 seconds'",
        "interval '100 hours'",
        "interval '1 mon -1 days'",
        "interval '-1 year -2 mons +3 days -04:05:06'",
        "'192.168.0.1/24'::inet",
        "'192.168.0.1'::inet",
        "'10.0.0.0/8'::cidr",
        "'::1'::inet",
        "'2001:db8::1/64'::inet",
        "'::ffff:1.2.3.4'::inet",
        "'08:00:2b:01:02:03'::macaddr",
        "'08:00:2b:01:02:03:04:05'::macaddr8",
        "B'0101'::bit(4)",
        "B'10101010101'::varbit",
        "'x'::\"char\"",
        "'pg_class'::regclass::oid",
        "'13:45:07.25+01'::timetz",
        "'13:45:07-03:30'::timetz",
        "'<a>b</a>'::xml",
        "pg_sleep(0)",
        "'abc'::name",
        "'ab'::char(4)",
        "'ab'::varchar(4)",
    ] {
        let rows = query(
            &provider,
            // format() applies the type's output function (`::text` may
            // differ: `'1.2.3.4'::inet::text` is `1.2.3.4/32`).
            &format!("SELECT ({expression}) AS v, format('%s', ({expression})) AS t"),
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e:?}"));
        let SqlValue::Text(expected) = &rows.rows[0][1] else {
            panic!("{expression}: no text form")
        };
        assert_eq!(
            rows.rows[0][0],
            SqlValue::Text(expected.clone()),
            "{expression}"
        );
    }
    // Date and time elements use the contract's ISO-8601 forms.
    assert_eq!(
        scalar(
            &provider,
            "SELECT ARRAY['2024-02-29 13:45:07.25'::timestamp, NULL]",
            vec![]
        )
        .await,
        SqlValue::Text("{2024-02-29T13:45:07.25,NULL}".into())
    );
    assert_eq!(
        scalar(&provider, "SELECT ARRAY['2024-02-29'::date]", vec![]).await,
        SqlValue::Text("{2024-02-29}".into())
    );
}

#[tokio::test]
async fn enums_domains_and_composites_map_through_their_definitions() {
    let provider = linked_provider(&[]).await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (mood, positive, pair) = (
        format!("trellis_mood_{suffix}"),
        format!("trellis_positive_{suffix}"),
        format!("trellis_pair_{suffix}"),
    );
    execute(
        &provider,
        &format!("CREATE TYPE {mood} AS ENUM ('sad', 'happy')"),
        vec![],
    )
    .await
    .unwrap();
    execute(
        &provider,
        &format!("CREATE DOMAIN {positive} AS int4 CHECK (VALUE > 0)"),
        vec![],
    )
    .await
    .unwrap();
    execute(
        &provider,
        &format!("CREATE TYPE {pair} AS (label text, mood {mood})"),
        vec![],
    )
    .await
    .unwrap();

    let rows = query(
        &provider,
        &format!(
            "SELECT $1::{mood} AS m, $2::{positive} AS p, ROW('a b', $1::{mood})::{pair} AS c"
        ),
        vec![SqlValue::Text("happy".into()), SqlValue::Int4(7)],
    )
    .await;
    let checked = execute(
        &provider,
        &format!("SELECT $1::{positive}"),
        vec![SqlValue::Int4(-1)],
    )
    .await;
    let client = crate::connect().await;
    client
        .batch_execute(&format!(
            "DROP TYPE IF EXISTS {pair}; DROP DOMAIN IF EXISTS {positive}; DROP TYPE IF EXISTS {mood}"
        ))
        .await
        .unwrap();

    let rows = rows.unwrap();
    assert_eq!(rows.columns[0].type_name, mood);
    // PostgreSQL describes a domain column by its base type.
    assert_eq!(rows.columns[1].type_name, "int4");
    assert_eq!(
        rows.rows,
        vec![vec![
            SqlValue::Text("happy".into()),
            SqlValue::Int4(7),
            SqlValue::Text("(\"a b\",happy)".into()),
        ]]
    );
    assert!(
        matches!(&checked, Err(SqlError::Query { sqlstate, .. }) if sqlstate == "23514"),
        "{checked:?}"
    );
}

#[tokio::test]
async fn parameters_are_converted_to_the_types_postgresql_inferred() {
    let provider = linked_provider(&[]).await;
    let rows = query(
        &provider,
        "SELECT $1::int8, $2::int2, $3::float8, $4::float4, $5::numeric, $6::numeric, \
         $7::uuid, $8::date, $9::timestamptz, $10::timestamp, $11::text, $12::jsonb, $13::json",
        vec![
            SqlValue::Int2(5),
            SqlValue::Int8(-300),
            SqlValue::Int4(3),
            SqlValue::Float8(0.5),
            SqlValue::Int8(i64::MAX),
            SqlValue::Float8(0.1),
            SqlValue::Text("67E55044-10B1-426F-9247-BB680E5FE0C8".into()),
            SqlValue::Text("2024-02-29".into()),
            SqlValue::Text("2024-02-29 13:45:07-05:00".into()),
            SqlValue::Text("2024-02-29".into()),
            SqlValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            SqlValue::Json("[1,2]".into()),
            SqlValue::Text(" {\"k\":  true} ".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        rows.rows[0],
        vec![
            SqlValue::Int8(5),
            SqlValue::Int2(-300),
            SqlValue::Float8(3.0),
            SqlValue::Float4(0.5),
            SqlValue::Numeric(i64::MAX.to_string()),
            SqlValue::Numeric("0.1".into()),
            SqlValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            SqlValue::Date("2024-02-29".into()),
            SqlValue::Timestamptz("2024-02-29T18:45:07Z".into()),
            SqlValue::Timestamp("2024-02-29T00:00:00".into()),
            SqlValue::Text("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            SqlValue::Jsonb("[1, 2]".into()),
            SqlValue::Json(" {\"k\":  true} ".into()),
        ]
    );
    // A NULL binds to any type, even one without a mapping.
    assert_eq!(
        scalar(
            &provider,
            "SELECT $1::interval IS NULL",
            vec![SqlValue::Null]
        )
        .await,
        SqlValue::Bool(true)
    );
}

#[tokio::test]
async fn a_parameter_that_does_not_fit_its_type_is_invalid_before_running() {
    let provider = linked_provider(&[]).await;
    let invalid = |r: Result<_, SqlError>| match r {
        Err(SqlError::Invalid { message }) => message,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let m = invalid(
        query(
            &provider,
            "SELECT $1::int4",
            vec![SqlValue::Text("12".into())],
        )
        .await,
    );
    assert!(
        m.contains("$1") && m.contains("int4") && m.contains("text"),
        "{m}"
    );
    let m = invalid(query(&provider, "SELECT $1::int2", vec![SqlValue::Int4(70_000)]).await);
    assert!(m.contains("out of range"), "{m}");
    let m = invalid(
        query(
            &provider,
            "SELECT $1::timestamptz",
            vec![SqlValue::Timestamptz("2024-02-29T13:45:07".into())],
        )
        .await,
    );
    assert!(m.contains("offset"), "{m}");
    let m = invalid(
        query(
            &provider,
            "SELECT $1::date",
            vec![SqlValue::Date("2023-02-29".into())],
        )
        .await,
    );
    assert!(m.contains("does not exist"), "{m}");
    let m = invalid(
        query(
            &provider,
            "SELECT $1::interval",
            vec![SqlValue::Text("1 day".into())],
        )
        .await,
    );
    assert!(m.contains("$1::text::interval"), "{m}");
    let m = invalid(
        query(
            &provider,
            "SELECT $1::int4, $2::int4",
            vec![SqlValue::Int4(1)],
        )
        .await,
    );
    assert!(m.contains("2 parameter(s) but 1"), "{m}");
    // Passing it as text and casting in SQL works.
    assert_eq!(
        scalar(
            &provider,
            "SELECT $1::text::interval",
            vec![SqlValue::Text("1 day".into())]
        )
        .await,
        SqlValue::Text("1 day".into())
    );
}

#[tokio::test]
async fn a_column_type_without_a_mapping_is_refused_with_the_cast_to_use() {
    let provider = linked_provider(&[]).await;
    let result = query(&provider, "SELECT 12.5::money AS price", vec![]).await;
    let Err(SqlError::Invalid { message }) = result else {
        panic!("{result:?}")
    };
    assert!(
        message.contains("price") && message.contains("money") && message.contains("price::text"),
        "{message}"
    );
    assert_eq!(
        scalar(&provider, "SELECT 12.5::money::numeric", vec![]).await,
        SqlValue::Numeric("12.50".into())
    );
}
