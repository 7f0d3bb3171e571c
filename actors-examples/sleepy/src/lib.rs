//! `sleepy`: an actor that takes as long as it is asked to, for testing
//! timeouts.
//!
//! A WebAssembly component exporting the standard
//! `wasi:http/incoming-handler` interface.
//!
//! - `GET /?ms=N` sleeps `N` milliseconds (on the monotonic clock, without
//!   spinning), then answers `200 slept N ms`.
//! - `GET /` (no `ms`) answers at once: `200 slept 0 ms`.
//! - An `ms` that is not a whole number answers `400`.
//! - Any other method answers `405` with `allow: GET`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    StatusCode,
};

/// The actor; all of its behaviour is in [`Guest::handle`].
struct Sleepy;

wasi::http::proxy::export!(Sleepy);

impl Guest for Sleepy {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        if !matches!(request.method(), Method::Get) {
            return respond(response_out, 405, "Method Not Allowed\n");
        }
        match requested_ms(request.path_with_query().as_deref()) {
            Some(ms) => {
                wasi::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000))
                    .block();
                respond(response_out, 200, &format!("slept {ms} ms"));
            }
            None => respond(
                response_out,
                400,
                "ms must be a whole number of milliseconds\n",
            ),
        }
    }
}

/// The `ms` query parameter: `Some(0)` when absent, `None` when invalid.
fn requested_ms(path_with_query: Option<&str>) -> Option<u64> {
    let query = path_with_query
        .and_then(|path| path.split_once('?'))
        .map_or("", |(_, query)| query);
    match query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "ms")
    {
        Some((_, value)) => value.parse().ok(),
        None => Some(0),
    }
}

/// Sends a `text/plain` response with `text` as its body.
fn respond(out: ResponseOutparam, status: StatusCode, text: &str) {
    let (response, body) = match start_response(status) {
        Ok(parts) => parts,
        Err(error) => return ResponseOutparam::set(out, Err(error)),
    };
    ResponseOutparam::set(out, Ok(response));
    // From here on the host owns the response: if the client has gone away
    // there is no one left to report a failed write to.
    if let Ok(stream) = body.write() {
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
        fields.push((String::from("allow"), b"GET".to_vec()));
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
