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

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    StatusCode,
};

/// The actor; all of its behaviour is in [`Guest::handle`].
struct Hello;

wasi::http::proxy::export!(Hello);

impl Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = request.method();
        let (status, text) = match method {
            Method::Get | Method::Head => (200, greeting(request.path_with_query().as_deref())),
            _ => (405, String::from("Method Not Allowed\n")),
        };
        respond(response_out, status, &text, !matches!(method, Method::Head));
    }
}

/// Builds `Hello, <name>!` from the `name` query parameter, or
/// `Hello, World!` when it is missing or empty.
fn greeting(path_with_query: Option<&str>) -> String {
    let query = path_with_query
        .and_then(|path| path.split_once('?'))
        .map_or("", |(_, query)| query);
    let name = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| String::from("World"));
    format!("Hello, {name}!")
}

/// Sends a `text/plain` response, writing `text` as the body when
/// `with_body` is set.
fn respond(out: ResponseOutparam, status: StatusCode, text: &str, with_body: bool) {
    let (response, body) = match start_response(status) {
        Ok(parts) => parts,
        Err(error) => return ResponseOutparam::set(out, Err(error)),
    };
    ResponseOutparam::set(out, Ok(response));
    // From here on the host owns the response: if the client has gone away
    // there is no one left to report a failed write to.
    if with_body && let Ok(stream) = body.write() {
        let _ = stream.blocking_write_and_flush(text.as_bytes());
    }
    let _ = OutgoingBody::finish(body, None);
}

/// Creates the response head and takes its body.
fn start_response(status: StatusCode) -> Result<(OutgoingResponse, OutgoingBody), ErrorCode> {
    let internal = |what: String| ErrorCode::InternalError(Some(what));

    let mut fields = vec![(
        String::from("content-type"),
        b"text/plain; charset=utf-8".to_vec(),
    )];
    if status == 405 {
        fields.push((String::from("allow"), b"GET, HEAD".to_vec()));
    }
    let headers = Fields::from_list(&fields).map_err(|e| internal(format!("header: {e:?}")))?;

    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .map_err(|()| internal(format!("invalid status code {status}")))?;
    let body = response
        .body()
        .map_err(|()| internal(String::from("response body already taken")))?;
    Ok((response, body))
}
