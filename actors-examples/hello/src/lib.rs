//! `hello`: the smallest Trellis actor.
//!
//! A WebAssembly component that exports the standard
//! `wasi:http/incoming-handler` interface and nothing Trellis-specific, so it
//! runs on any `wasi:http` host as well as on Trellis behind the
//! `http-server` provider.
//!
//! - `GET /?name=Ada` answers `200 Hello, Ada!` (the value is URL-decoded,
//!   so `?name=Ada%20Lovelace` greets `Ada Lovelace`).
//! - `GET /` (or an empty `name`) answers `200 Hello, World!`.
//! - `HEAD` answers like `GET` without a body.
//! - Any other method answers `405` with `allow: GET, HEAD`.

use actor_util::{TEXT_PLAIN, method_not_allowed, query, respond, respond_text};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, Method, ResponseOutparam};

/// The actor; all of its behaviour is in [`Guest::handle`].
struct Hello;

wasi::http::proxy::export!(Hello);

impl Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        match request.method() {
            Method::Get => respond_text(response_out, 200, &greeting(query(&target))),
            // The head `GET` would send, without its body.
            Method::Head => respond(response_out, 200, &[TEXT_PLAIN], None),
            _ => method_not_allowed(response_out, "GET, HEAD"),
        }
    }
}

/// Builds `Hello, <name>!` from the `name` parameter of `query`, or
/// `Hello, World!` when it is missing or empty.
fn greeting(query: &str) -> String {
    let name = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| String::from("World"));
    format!("Hello, {name}!")
}
