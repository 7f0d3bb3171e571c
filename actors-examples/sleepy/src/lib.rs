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

use actor_util::{method_not_allowed, query, respond_text};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, Method, ResponseOutparam};

/// The actor; all of its behaviour is in [`Guest::handle`].
struct Sleepy;

wasi::http::proxy::export!(Sleepy);

impl Guest for Sleepy {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        if !matches!(request.method(), Method::Get) {
            return method_not_allowed(response_out, "GET");
        }
        let target = request.path_with_query().unwrap_or_default();
        match requested_ms(query(&target)) {
            Some(ms) => {
                wasi::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000))
                    .block();
                respond_text(response_out, 200, &format!("slept {ms} ms"));
            }
            None => respond_text(
                response_out,
                400,
                "ms must be a whole number of milliseconds\n",
            ),
        }
    }
}

/// The `ms` parameter of `query`: `Some(0)` when absent, `None` when invalid.
fn requested_ms(query: &str) -> Option<u64> {
    match query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "ms")
    {
        Some((_, value)) => value.parse().ok(),
        None => Some(0),
    }
}
