//! `todo`: a JSON REST API of to-do items backed by `trellis:sqldb`.
//!
//! | request | answer |
//! |---|---|
//! | `POST /todos` `{"title": "…", "done": false}` | `201` the new item |
//! | `GET /todos` | `200` every item, oldest first |
//! | `GET /todos/{id}` | `200` the item, or `404` |
//! | `PATCH /todos/{id}` `{"title"?: "…", "done"?: true}` | `200` the updated item, or `404` |
//! | `DELETE /todos/{id}` | `204`, or `404` |
//!
//! An item is `{"id": 1, "title": "…", "done": false, "created_at": "…"}`.
//! The table `todos` is created on first use. Invalid input (bad JSON, a
//! missing or empty title, a title over 500 characters, wrong types) gets
//! `400 {"error": "…"}`; a database failure `500 {"error": "…"}` (a denied
//! capability included), other methods `405`, other paths `404`.

use ::wasi::exports::http::incoming_handler::Guest;
use ::wasi::http::types::{IncomingRequest, Method, ResponseOutparam};
use actor_util::{read_body, respond_json};
use serde::Deserialize;
use serde_json::{Value, json};

mod bindings {
    wit_bindgen::generate!({
        path: "../../interfaces/wit",
        inline: "
            package trellis:todo-actor;
            world todo {
                import trellis:sqldb/query@0.1.0;
            }
        ",
        world: "trellis:todo-actor/todo",
        generate_all,
    });
}

use bindings::trellis::sqldb::query;
use bindings::trellis::sqldb::types::{Error as SqlError, PgValue};

/// Longest title accepted, in characters.
const MAX_TITLE_CHARS: usize = 500;
/// Largest request body read, in bytes.
const MAX_BODY_BYTES: u64 = 64 * 1024;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS todos (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    done BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now())";
const COLUMNS: &str = "id, title, done, created_at";

struct Todo;

::wasi::http::proxy::export!(Todo);

/// A response: status and JSON body (`None` for no body).
type Answer = (u16, Option<Value>);

impl Guest for Todo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, body) = route(&request)
            .unwrap_or_else(|(status, message)| (status, Some(json!({ "error": message }))));
        respond_json(response_out, status, body.map(|b| b.to_string()).as_deref());
    }
}

fn route(request: &IncomingRequest) -> Result<Answer, (u16, String)> {
    let target = request.path_with_query().unwrap_or_default();
    let path = actor_util::path(&target);
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (request.method(), segments.as_slice()) {
        (Method::Get, ["todos"]) => list(),
        (Method::Post, ["todos"]) => create(&read_json(request)?),
        (Method::Get, ["todos", id]) => get(parse_id(id)?),
        (Method::Patch, ["todos", id]) => {
            let id = parse_id(id)?;
            update(id, &read_json(request)?)
        }
        (Method::Delete, ["todos", id]) => delete(parse_id(id)?),
        (_, ["todos"] | ["todos", _]) => Err((405, "method not allowed".to_owned())),
        _ => Err((404, "not found; try /todos".to_owned())),
    }
}

fn parse_id(id: &str) -> Result<i64, (u16, String)> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| (404, format!("no todo {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodo {
    title: String,
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TodoPatch {
    title: Option<String>,
    done: Option<bool>,
}

fn check_title(title: &str) -> Result<(), (u16, String)> {
    if title.trim().is_empty() {
        return Err((400, "title must not be empty".to_owned()));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err((
            400,
            format!("title must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(())
}

fn create(body: &[u8]) -> Result<Answer, (u16, String)> {
    let new: NewTodo =
        serde_json::from_slice(body).map_err(|e| (400, format!("invalid todo: {e}")))?;
    check_title(&new.title)?;
    let rows = sql(
        &format!("INSERT INTO todos (title, done) VALUES ($1, $2) RETURNING {COLUMNS}"),
        &[PgValue::Text(new.title), PgValue::Bool(new.done)],
    )?;
    Ok((201, rows.into_iter().next()))
}

fn list() -> Result<Answer, (u16, String)> {
    let rows = sql(&format!("SELECT {COLUMNS} FROM todos ORDER BY id"), &[])?;
    Ok((200, Some(Value::Array(rows))))
}

fn get(id: i64) -> Result<Answer, (u16, String)> {
    let rows = sql(
        &format!("SELECT {COLUMNS} FROM todos WHERE id = $1"),
        &[PgValue::Int8(id)],
    )?;
    rows.into_iter()
        .next()
        .map(|row| (200, Some(row)))
        .ok_or_else(|| (404, format!("no todo {id}")))
}

fn update(id: i64, body: &[u8]) -> Result<Answer, (u16, String)> {
    let patch: TodoPatch =
        serde_json::from_slice(body).map_err(|e| (400, format!("invalid patch: {e}")))?;
    if let Some(title) = &patch.title {
        check_title(title)?;
    }
    let title = patch.title.map_or(PgValue::Null, PgValue::Text);
    let done = patch.done.map_or(PgValue::Null, PgValue::Bool);
    let rows = sql(
        &format!(
            "UPDATE todos SET title = COALESCE($2, title), done = COALESCE($3, done) WHERE id = $1 RETURNING {COLUMNS}"
        ),
        &[PgValue::Int8(id), title, done],
    )?;
    rows.into_iter()
        .next()
        .map(|row| (200, Some(row)))
        .ok_or_else(|| (404, format!("no todo {id}")))
}

fn delete(id: i64) -> Result<Answer, (u16, String)> {
    ensure_table()?;
    let deleted = query::execute("DELETE FROM todos WHERE id = $1", &[PgValue::Int8(id)])
        .map_err(describe)?;
    if deleted == 0 {
        Err((404, format!("no todo {id}")))
    } else {
        Ok((204, None))
    }
}

fn ensure_table() -> Result<(), (u16, String)> {
    query::execute(CREATE_TABLE, &[])
        .map(|_| ())
        .map_err(describe)
}

/// Runs a query (creating the table first) and returns its rows as JSON objects.
fn sql(statement: &str, params: &[PgValue]) -> Result<Vec<Value>, (u16, String)> {
    ensure_table()?;
    let result = query::query(statement, params).map_err(describe)?;
    Ok(result
        .rows
        .into_iter()
        .map(|row| {
            let object = result
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| (column.name.clone(), to_json(value)))
                .collect();
            Value::Object(object)
        })
        .collect())
}

fn to_json(value: PgValue) -> Value {
    match value {
        PgValue::Null => Value::Null,
        PgValue::Bool(b) => Value::Bool(b),
        PgValue::Int2(n) => json!(n),
        PgValue::Int4(n) => json!(n),
        PgValue::Int8(n) => json!(n),
        PgValue::Float4(n) => json!(n),
        PgValue::Float8(n) => json!(n),
        PgValue::Bytea(bytes) => json!(bytes),
        PgValue::Json(text) | PgValue::Jsonb(text) => {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        PgValue::Numeric(text)
        | PgValue::Text(text)
        | PgValue::Uuid(text)
        | PgValue::Date(text)
        | PgValue::Time(text)
        | PgValue::Timestamp(text)
        | PgValue::Timestamptz(text) => Value::String(text),
    }
}

fn describe(error: SqlError) -> (u16, String) {
    let message = match error {
        SqlError::Denied(m) => m,
        SqlError::Connection(m) => format!("database unavailable: {m}"),
        SqlError::Timeout(m) => format!("database timeout: {m}"),
        SqlError::Invalid(m) => format!("invalid statement: {m}"),
        SqlError::Query(q) => format!("database error {}: {}", q.sqlstate, q.message),
    };
    (500, message)
}

/// The request body, to be parsed as JSON by the caller.
fn read_json(request: &IncomingRequest) -> Result<Vec<u8>, (u16, String)> {
    read_body(request, MAX_BODY_BYTES).map_err(|message| (400, message))
}
