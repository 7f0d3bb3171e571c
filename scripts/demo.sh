#!/usr/bin/env bash
# The Trellis demo: three actors serving real HTTP through a local lattice,
# backed by Redis and PostgreSQL.
#
# It installs what is missing (as root on Debian), starts Redis and
# PostgreSQL if none is running, builds everything (release), signs the
# actors and the provider archives with a development issuer kept in the
# git-ignored .trellis/, runs `trellis up` (which starts nats-server unless
# one listens on 4222, and runs wadm), pushes the actors and provider
# archives into the lattice's artifact store, deploys
# actors-examples/demo.yaml with `trellis app deploy`, prints curl lines,
# and stays up until Ctrl-C.
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

log="$TRELLIS_HOME/demo.log"
say "starting the lattice: trellis up, with wadm (log: $log)"
"$trellis" up --nats-port "$nats_port" >"$TRELLIS_HOME/up.out" 2>"$log" &
up_pid=$!

stop_lattice() {
    trap - INT TERM EXIT
    if kill -0 "$up_pid" 2>/dev/null; then
        say "stopping the lattice"
        "$trellis" app undeploy demo >/dev/null 2>&1 || true
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

say "pushing the actors and provider archives into the lattice's artifact store"
for actor in hello kvcounter todo; do
    "$trellis" push "$TRELLIS_HOME/actors/$actor.signed.wasm" "$actor:0.1.0" >/dev/null
done
for name in http-server keyvalue-redis sqldb-postgres; do
    "$trellis" push "$archives/$name.par.gz" "$name:0.1.0" >/dev/null
done

# The manifest listens on 8080-8082; another first port is substituted.
manifest="$TRELLIS_ROOT/actors-examples/demo.yaml"
if [ "$port" != 8080 ]; then
    sed -e "s/127.0.0.1:8080/127.0.0.1:$port/" -e "s/127.0.0.1:8081/127.0.0.1:$((port + 1))/" \
        -e "s/127.0.0.1:8082/127.0.0.1:$((port + 2))/" "$manifest" >"$TRELLIS_HOME/demo.yaml"
    manifest="$TRELLIS_HOME/demo.yaml"
fi
say "deploying actors-examples/demo.yaml through wadm (trellis app deploy)"
# A lattice kept from an earlier run (a nats-server already on the port)
# may still hold the application: start from a clean slate.
"$trellis" app undeploy demo >/dev/null 2>&1 || true
"$trellis" app delete demo >/dev/null 2>&1 || true
# The store URLs are secrets: sealed by the CLI, seen only by the providers.
TRELLIS_DEMO_REDIS_URL="$redis_url" TRELLIS_DEMO_POSTGRES_URL="$demo_db_url" \
    "$trellis" app deploy "$manifest" || die "the demo application did not deploy; see $log"

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
    $trellis app status demo
    $trellis get inventory
    $trellis link list

Press Ctrl-C to stop everything.
MSG

wait "$up_pid"
