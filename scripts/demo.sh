#!/usr/bin/env bash
# The Trellis demo: three actors serving real HTTP through a local lattice,
# backed by Redis and PostgreSQL.
#
# It installs what is missing (as root on Debian), starts Redis and
# PostgreSQL if none is running, builds everything (release), signs the
# actors and the provider archives with a development issuer kept in the
# git-ignored .trellis/, runs `trellis up` (which starts nats-server unless
# one listens on 4222) with the three providers, starts and links the
# actors, prints curl lines, and stays up until Ctrl-C.
#
# Settings (environment):
#   TRELLIS_DEMO_PORT           first of the three HTTP ports (default 8080)
#   TRELLIS_DEMO_REDIS_URL      default redis://127.0.0.1:6379
#   TRELLIS_DEMO_POSTGRES_URL   server to use (default postgres://postgres:postgres@127.0.0.1:5432/postgres);
#                               the demo recreates a database trellis_demo there so that ids start at 1
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"

ensure_rust
ensure_backing_services

port=${TRELLIS_DEMO_PORT:-8080}
redis_url=${TRELLIS_DEMO_REDIS_URL:-redis://127.0.0.1:${TRELLIS_REDIS_PORT:-6379}}
postgres_url=${TRELLIS_DEMO_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:${TRELLIS_POSTGRES_PORT:-5432}/postgres}
nats_port=${TRELLIS_NATS_PORT:-4222}
export TRELLIS_HOME="$TRELLIS_STATE_DIR"
export TRELLIS_NATS_URL="nats://127.0.0.1:$nats_port"
mkdir -p "$TRELLIS_HOME"

cd "$TRELLIS_ROOT"
say "building the trellis CLI and the capability providers (release)"
cargo build --release --quiet -p trellis-cli -p trellis-provider-http-server \
    -p trellis-provider-keyvalue-redis -p trellis-provider-sqldb-postgres
bin="$TRELLIS_ROOT/target/release"
trellis="$bin/trellis"

say "building and signing the example actors (trellis build)"
"$trellis" build --manifest-path actors-examples/Cargo.toml --out-dir "$TRELLIS_HOME/actors" >/dev/null

say "packing the providers into signed archives (trellis par create)"
archives="$TRELLIS_HOME/archives"
mkdir -p "$archives"
for spec in http-server=wasi:http keyvalue-redis=wasi:keyvalue sqldb-postgres=trellis:sqldb; do
    name=${spec%%=*}
    "$trellis" par create --name "$name" --contract "${spec#*=}" --vendor trellis \
        --binary "$bin/$name" -d "$archives/$name.par.gz" >/dev/null
done

say "resetting the demo's data: database trellis_demo, Redis keys trellis-demo:*"
command -v psql >/dev/null || apt_install postgresql-client
psql -q "$postgres_url" -c 'DROP DATABASE IF EXISTS trellis_demo WITH (FORCE)' -c 'CREATE DATABASE trellis_demo' >/dev/null
demo_db_url="${postgres_url%/*}/trellis_demo"
if command -v redis-cli >/dev/null; then
    redis-cli -u "$redis_url" --scan --pattern 'trellis-demo:*' | xargs -r redis-cli -u "$redis_url" DEL >/dev/null
fi

key_id() { "$trellis" keys public "$TRELLIS_HOME/keys/$1"; }
http_id=$(key_id http-server.provider.nk)
kv_id=$(key_id keyvalue-redis.provider.nk)
sql_id=$(key_id sqldb-postgres.provider.nk)

log="$TRELLIS_HOME/demo.log"
say "starting the lattice: trellis up (log: $log)"
"$trellis" up --nats-port "$nats_port" \
    --provider "$archives/http-server.par.gz" \
    --provider "$archives/keyvalue-redis.par.gz" \
    --provider "$archives/sqldb-postgres.par.gz" \
    >"$TRELLIS_HOME/up.out" 2>"$log" &
up_pid=$!

stop_lattice() {
    trap - INT TERM EXIT
    if kill -0 "$up_pid" 2>/dev/null; then
        say "stopping the lattice"
        kill -TERM "$up_pid" 2>/dev/null || true
        wait "$up_pid" 2>/dev/null || true
    fi
}
trap 'stop_lattice; exit 130' INT
trap 'stop_lattice; exit 143' TERM
trap 'stop_lattice' EXIT

for _ in $(seq 1 600); do
    grep -q "Press Ctrl-C" "$TRELLIS_HOME/up.out" 2>/dev/null && break
    kill -0 "$up_pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "trellis up exited; see $log"; }
    sleep 0.1
done
grep -q "Press Ctrl-C" "$TRELLIS_HOME/up.out" || die "the lattice did not come up within 60 s; see $log"
sed '/Press Ctrl-C/d' "$TRELLIS_HOME/up.out"

say "starting the actors and linking them"
for actor in hello kvcounter todo; do
    "$trellis" start actor "$TRELLIS_HOME/actors/$actor.signed.wasm" >/dev/null
done
hello_id=$(key_id hello.actor.nk)
kvcounter_id=$(key_id kvcounter.actor.nk)
todo_id=$(key_id todo.actor.nk)
"$trellis" link put "$hello_id" "$http_id" wasi:http "address=127.0.0.1:$port" >/dev/null
"$trellis" link put "$kvcounter_id" "$http_id" wasi:http "address=127.0.0.1:$((port + 1))" >/dev/null
# The store URLs are secrets: sealed by the CLI, seen only by the provider.
TRELLIS_DEMO_SECRET_URL="$redis_url" "$trellis" link put "$kvcounter_id" "$kv_id" wasi:keyvalue \
    --secret-env url=TRELLIS_DEMO_SECRET_URL "prefix=trellis-demo:" >/dev/null
"$trellis" link put "$todo_id" "$http_id" wasi:http "address=127.0.0.1:$((port + 2))" >/dev/null
TRELLIS_DEMO_SECRET_URL="$demo_db_url" "$trellis" link put "$todo_id" "$sql_id" trellis:sqldb \
    --secret-env url=TRELLIS_DEMO_SECRET_URL >/dev/null

# The links reach the providers asynchronously: wait until each answers.
for p in "$port" "$((port + 1))" "$((port + 2))"; do
    for _ in $(seq 1 100); do
        status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/" || true)
        [ "$status" != 000 ] && break
        sleep 0.1
    done
done

cat <<MSG

Trellis is serving three actors on lattice "default" (host log: $log).

  hello      — wasi:http
    curl 'http://127.0.0.1:$port/?name=Ada'
        # Hello, Ada!

  kvcounter  — wasi:http + wasi:keyvalue (Redis at $redis_url, keys trellis-demo:*)
    curl http://127.0.0.1:$((port + 1))/counter/visits
        # {"name":"visits","count":1}, then 2, 3, …

  todo       — wasi:http + trellis:sqldb (PostgreSQL database trellis_demo, table todos)
    curl -X POST http://127.0.0.1:$((port + 2))/todos -d '{"title":"try Trellis"}'
        # 201 {"created_at":"…","done":false,"id":1,"title":"try Trellis"}
    curl http://127.0.0.1:$((port + 2))/todos
        # [{"created_at":"…","done":false,"id":1,"title":"try Trellis"}]
    curl -X PATCH http://127.0.0.1:$((port + 2))/todos/1 -d '{"done":true}'
        # {"created_at":"…","done":true,"id":1,"title":"try Trellis"}
    curl -X DELETE http://127.0.0.1:$((port + 2))/todos/1
        # 204 (no body); now GET http://127.0.0.1:$((port + 2))/todos/1 answers 404
    curl -X POST http://127.0.0.1:$((port + 2))/todos -d '{"title":""}'
        # 400 {"error":"title must not be empty"}

Look inside the lattice (in another terminal):
    export TRELLIS_NATS_URL=$TRELLIS_NATS_URL
    $trellis get inventory
    $trellis link list

Press Ctrl-C to stop everything.
MSG

wait "$up_pid"
