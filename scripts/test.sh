#!/usr/bin/env bash
# Runs every Trellis test. Installs what is missing (as root on Debian) and
# starts NATS, Redis and PostgreSQL if none is running.
#
# Extra arguments are passed to `cargo test`, e.g. `scripts/test.sh -p trellis-claims`.
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"

ensure_rust
ensure_services
ensure_registry
ensure_oras
build_examples

export TRELLIS_TEST_NATS_SERVER="${TRELLIS_TEST_NATS_SERVER:-${TRELLIS_NATS_SERVER:-}}"
export TRELLIS_TEST_REDIS_URL="${TRELLIS_TEST_REDIS_URL:-redis://127.0.0.1:${TRELLIS_REDIS_PORT:-6379}}"
export TRELLIS_TEST_POSTGRES_URL="${TRELLIS_TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:${TRELLIS_POSTGRES_PORT:-5432}/postgres}"

say "cargo test --workspace"
cd "$TRELLIS_ROOT"
cargo test --workspace "$@"
