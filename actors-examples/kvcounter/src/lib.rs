//! `kvcounter`: an HTTP counter backed by `wasi:keyvalue`.
//!
//! - `GET /counter/{name}` increments the counter `{name}` in the key-value
//!   bucket linked under the link name `default` and answers
//!   `200 {"name":"{name}","count":n}`.
//! - A key-value failure answers `500 {"error":"…","kind":"…"}`, where
//!   `kind` is `denied` when the host refused the capability (no claim for
//!   `wasi:keyvalue`, or no link: the store's typed `access-denied` error),
//!   `no_such_store`, or `other` (e.g. Redis unreachable).
//! - Other paths answer `404`, other methods `405`.
//!
//! Counter keys are `counter:{name}`; names are limited to 64 ASCII
//! letters, digits, `-` and `_` (`400` otherwise).

use ::wasi::exports::http::incoming_handler::Guest;
use ::wasi::http::types::{IncomingRequest, Method, ResponseOutparam};
use actor_util::{json_error, json_string, path, respond_json};

mod bindings {
    wit_bindgen::generate!({
    path: "../../interfaces/wit",
    inline: "
        package trellis:kvcounter-actor;
        world kvcounter {
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
        }
    ",
    world: "trellis:kvcounter-actor/kvcounter",
    generate_all,
    });
}

use bindings::wasi::keyvalue::{atomics, store};

struct KvCounter;

::wasi::http::proxy::export!(KvCounter);

impl Guest for KvCounter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (status, body) = match (request.method(), path(&target).strip_prefix("/counter/")) {
            (Method::Get, Some(name)) if valid_name(name) => match increment(name) {
                Ok(count) => (200, format!(r#"{{"name":"{name}","count":{count}}}"#)),
                Err((kind, message)) => (
                    500,
                    format!(r#"{{"error":{},"kind":"{kind}"}}"#, json_string(&message)),
                ),
            },
            (Method::Get, Some(_)) => (
                400,
                json_error("counter names are 1 to 64 letters, digits, '-' or '_'"),
            ),
            (Method::Get, None) => (404, json_error("not found; try GET /counter/{name}")),
            _ => (405, json_error("method not allowed")),
        };
        respond_json(response_out, status, Some(&body));
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn increment(name: &str) -> Result<u64, (&'static str, String)> {
    let bucket = store::open("default").map_err(describe)?;
    atomics::increment(&bucket, &format!("counter:{name}"), 1).map_err(describe)
}

/// The error's kind (see the crate docs) and message.
fn describe(error: store::Error) -> (&'static str, String) {
    match error {
        store::Error::NoSuchStore => ("no_such_store", "no such store".to_owned()),
        store::Error::AccessDenied => ("denied", "access denied".to_owned()),
        store::Error::Other(message) => ("other", message),
    }
}
