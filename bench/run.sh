#!/usr/bin/env bash
# The Trellis benchmarks, in one command:
#
#   bench/run.sh [--duration 10s] [--concurrency 1,32,128] [...]
#
# Installs what is missing (as root on Debian: wrk, redis-tools,
# postgresql-client), starts Redis and PostgreSQL if none is running, builds
# everything in release mode, installs wasmtime-cli of the host's wasmtime
# version into bench/.cache with `cargo install --root` (once; about ten
# minutes), then runs the harness (bench/src/main.rs), which prints a table
# and writes bench/results/latest.json, and the criterion benches of
# per-invocation costs. Arguments go to the harness (`--help` lists them).
# A flamegraph of the lattice path: bench/profile.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/setup.sh"

ensure_rust
ensure_services
command -v wrk >/dev/null || apt_install wrk
command -v redis-benchmark >/dev/null || apt_install redis-tools
command -v pgbench >/dev/null || apt_install postgresql-client
command -v psql >/dev/null || apt_install postgresql-client

cd "$TRELLIS_ROOT"
say "building Trellis and the harness (release)"
cargo build --release --quiet -p trellis-cli -p trellis-provider-http-server \
    -p trellis-provider-keyvalue-redis -p trellis-provider-sqldb-postgres -p trellis-bench
build_examples

cache="$TRELLIS_ROOT/bench/.cache"
version=$(awk '/^name = "wasmtime"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || die "cannot read the wasmtime version from Cargo.lock"
if ! "$cache/bin/wasmtime" --version 2>/dev/null | grep -q "wasmtime $version"; then
    say "cargo install wasmtime-cli $version --root $cache (once; about ten minutes)"
    cargo install --quiet --locked wasmtime-cli --version "$version" --root "$cache"
fi

export TRELLIS_BENCH_REDIS_URL="${TRELLIS_BENCH_REDIS_URL:-redis://127.0.0.1:${TRELLIS_REDIS_PORT:-6379}}"
export TRELLIS_BENCH_POSTGRES_URL="${TRELLIS_BENCH_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:${TRELLIS_POSTGRES_PORT:-5432}/postgres}"
say "running the harness"
target/release/trellis-bench --bin-dir target/release --wasmtime "$cache/bin/wasmtime" \
    --components actors-examples/target/wasm32-wasip2/release "$@"

say "per-invocation costs (criterion): signing, verifying, warm instantiation"
export TRELLIS_BENCH_COMPONENT="$TRELLIS_ROOT/actors-examples/target/wasm32-wasip2/release/hello.wasm"
mkdir -p bench/results
cargo bench --quiet -p trellis-bench --bench invocation --bench instantiation -- --noplot \
    2>bench/results/criterion.log | grep -E "^[a-z].*|time:" ||
    { tail -n 20 bench/results/criterion.log >&2; die "the criterion benches failed"; }
