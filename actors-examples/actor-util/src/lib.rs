//! `actor-util`: the `wasi:http` plumbing the example actors share.
//!
//! Every example actor exports `wasi:http/incoming-handler` and answers in
//! the same few ways; this crate holds that code once:
//!
//! - [`respond`] sends a status, headers and an optional body.
//!   [`respond_text`] and [`respond_json`] are the two shapes the actors
//!   use, and [`method_not_allowed`] the plain-text `405` with `allow`.
//! - [`json_string`] and [`json_error`] write small JSON bodies without a
//!   serializer (so an actor need not link `serde_json` for its errors).
//! - [`read_body`] reads a request body up to a size limit.
//! - [`path`] and [`query`] split a request target at its `?`.
//!
//! ```
//! use actor_util::{json_error, respond_json};
//! use wasi::http::types::ResponseOutparam;
//!
//! fn not_found(out: ResponseOutparam) {
//!     respond_json(out, 404, Some(&json_error("not found")));
//! }
//! ```
//!
//! This is a plain library (no `cdylib`, no `[package.metadata.trellis]`
//! table): it builds into the actors that use it, and `trellis build`
//! neither signs it nor expects a `.wasm` of it.

#![warn(missing_docs)]

use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse,
    ResponseOutparam, StatusCode,
};
use wasi::io::streams::StreamError;

/// The `content-type` header of a plain-text answer.
pub const TEXT_PLAIN: (&str, &str) = ("content-type", "text/plain; charset=utf-8");
/// The `content-type` header of a JSON answer.
pub const APPLICATION_JSON: (&str, &str) = ("content-type", "application/json");

/// The most `blocking-write-and-flush` takes in one call.
const MAX_WRITE: usize = 4096;
/// How much [`read_body`] asks the stream for at a time.
const READ_CHUNK: u64 = 16 * 1024;

/// Sends a response: `status`, `headers` in the order given, and `body`
/// (`None` sends none, as for `HEAD` or `204`).
///
/// If the head cannot be built (an invalid header or status code), `out`
/// gets an `internal-error` instead. Once the head is sent, a failed body
/// write is dropped: the client has gone and there is no one to tell.
pub fn respond(
    out: ResponseOutparam,
    status: StatusCode,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) {
    let (response, outgoing) = match start_response(status, headers) {
        Ok(parts) => parts,
        Err(error) => return ResponseOutparam::set(out, Err(error)),
    };
    ResponseOutparam::set(out, Ok(response));
    if let Some(body) = body
        && let Ok(stream) = outgoing.write()
    {
        for chunk in body.chunks(MAX_WRITE) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
        // The stream is a child of the body: it must go before the body is finished.
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Sends a `text/plain; charset=utf-8` response with `text` as its body.
pub fn respond_text(out: ResponseOutparam, status: StatusCode, text: &str) {
    respond(out, status, &[TEXT_PLAIN], Some(text.as_bytes()));
}

/// Sends an `application/json` response with `json` as its body (`None`
/// for no body, as for `204`).
pub fn respond_json(out: ResponseOutparam, status: StatusCode, json: Option<&str>) {
    respond(out, status, &[APPLICATION_JSON], json.map(str::as_bytes));
}

/// Sends `405 Method Not Allowed` as plain text, with an `allow` header
/// listing the methods the actor takes (e.g. `GET, HEAD`).
pub fn method_not_allowed(out: ResponseOutparam, allow: &str) {
    respond(
        out,
        405,
        &[TEXT_PLAIN, ("allow", allow)],
        Some(b"Method Not Allowed\n"),
    );
}

/// Creates the response head and takes its body.
fn start_response(
    status: StatusCode,
    headers: &[(&str, &str)],
) -> Result<(OutgoingResponse, OutgoingBody), ErrorCode> {
    let internal = |what: String| ErrorCode::InternalError(Some(what));
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
        .collect();
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

/// A JSON string literal for `s`: quoted, with `"` and `\` escaped and
/// control characters written as `\u00XX`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JSON error body `{"error":"<message>"}`.
pub fn json_error(message: &str) -> String {
    format!(r#"{{"error":{}}}"#, json_string(message))
}

/// Reads the whole body of `request`, refusing one over `max_bytes`.
///
/// # Errors
///
/// A message fit for a `400` answer when the body cannot be read or is
/// longer than `max_bytes`.
pub fn read_body(request: &IncomingRequest, max_bytes: u64) -> Result<Vec<u8>, String> {
    let body = request
        .consume()
        .map_err(|()| "cannot read the request body".to_owned())?;
    let stream = body
        .stream()
        .map_err(|()| "cannot read the request body".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > max_bytes {
                    return Err(format!("the body exceeds {max_bytes} bytes"));
                }
            }
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("cannot read the request body: {e:?}")),
        }
    }
    // The stream is a child of the body: it must go before the body is finished.
    drop(stream);
    IncomingBody::finish(body);
    Ok(bytes)
}

/// The path of a request target, without its query: `/a?b=1` → `/a`.
pub fn path(path_with_query: &str) -> &str {
    path_with_query
        .split_once('?')
        .map_or(path_with_query, |(path, _)| path)
}

/// The query of a request target, without the `?`: `/a?b=1` → `b=1`; empty
/// when there is none.
pub fn query(path_with_query: &str) -> &str {
    path_with_query
        .split_once('?')
        .map_or("", |(_, query)| query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_escapes_quotes_backslashes_and_controls() {
        assert_eq!(json_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(json_string("x\ny\u{1}"), r#""x\u000ay\u0001""#);
        assert_eq!(json_string("é {}'"), r#""é {}'""#);
    }

    #[test]
    fn json_error_wraps_the_message() {
        assert_eq!(
            json_error("method not allowed"),
            r#"{"error":"method not allowed"}"#
        );
    }

    #[test]
    fn path_and_query_split_at_the_first_question_mark() {
        assert_eq!((path("/a/b?x=1?y"), query("/a/b?x=1?y")), ("/a/b", "x=1?y"));
        assert_eq!((path("/a"), query("/a")), ("/a", ""));
        assert_eq!((path(""), query("")), ("", ""));
        assert_eq!((path("?x"), query("?x")), ("", "x"));
    }
}
