//! The `http-server` capability provider process; see the library for what it does.

fn main() -> std::process::ExitCode {
    trellis_provider_http_server::run()
}
