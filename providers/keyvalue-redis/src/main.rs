//! The `keyvalue-redis` capability provider process; see the library for what it does.

fn main() -> std::process::ExitCode {
    trellis_provider_keyvalue_redis::run()
}
