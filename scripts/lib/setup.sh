# Shared set-up for scripts/demo.sh and scripts/test.sh: installs what is
# missing (as root on Debian) or stops with a one-line instruction, and starts
# NATS (with JetStream), Redis and PostgreSQL when none is running.
#
# Settings (environment):
#   TRELLIS_SKIP_SERVICES=1   do not install or start services
#   TRELLIS_NATS_PORT         default 4222
#   TRELLIS_REDIS_PORT        default 6379
#   TRELLIS_POSTGRES_PORT     default 5432

set -euo pipefail

TRELLIS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export TRELLIS_ROOT
TRELLIS_STATE_DIR="${TRELLIS_STATE_DIR:-$TRELLIS_ROOT/.trellis}"
export TRELLIS_STATE_DIR

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
    local port=$1 name=$2 i
    for i in $(seq 1 100); do
        port_open "$port" && return 0
        sleep 0.1
    done
    die "$name did not start listening on 127.0.0.1:$port"
}

APT_UPDATED=0
apt_install() {
    is_root || die "$1 is missing: run this script as root, or install it with: sudo apt-get install -y $*"
    command -v apt-get >/dev/null || die "$1 is missing and this is not a Debian-like system: install $* by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo is missing: install Rust from rustup (https://rustup.rs) and run this again"
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        command -v rustup >/dev/null || die "the wasm32-wasip2 target is missing and rustup is not installed: install it for your toolchain"
        say "rustup target add wasm32-wasip2"
        rustup target add wasm32-wasip2 >/dev/null
    fi
}

find_nats_server() {
    command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } || true
}

# Installs nats-server when missing and exports TRELLIS_NATS_SERVER.
install_nats() {
    local bin
    bin=$(find_nats_server)
    if [ -z "$bin" ]; then
        apt_install nats-server
        bin=$(find_nats_server)
        [ -n "$bin" ] || die "nats-server is still missing after installing the nats-server package"
    fi
    export TRELLIS_NATS_SERVER="$bin"
}

ensure_nats() {
    local port=${TRELLIS_NATS_PORT:-4222} bin
    install_nats
    bin=$TRELLIS_NATS_SERVER
    if ! port_open "$port"; then
        say "starting nats-server with JetStream on 127.0.0.1:$port"
        mkdir -p "$TRELLIS_STATE_DIR/nats"
        nohup "$bin" -a 127.0.0.1 -p "$port" -js -sd "$TRELLIS_STATE_DIR/nats" \
            >"$TRELLIS_STATE_DIR/nats-server.log" 2>&1 &
        wait_for_port "$port" nats-server
    fi
}

ensure_redis() {
    local port=${TRELLIS_REDIS_PORT:-6379}
    if ! command -v redis-server >/dev/null; then
        port_open "$port" && return 0
        apt_install redis-server
    fi
    if ! port_open "$port"; then
        say "starting redis-server on 127.0.0.1:$port"
        mkdir -p "$TRELLIS_STATE_DIR/redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
            --dir "$TRELLIS_STATE_DIR/redis" --logfile "$TRELLIS_STATE_DIR/redis.log" >/dev/null
        wait_for_port "$port" redis-server
    fi
}

ensure_postgres() {
    local port=${TRELLIS_POSTGRES_PORT:-5432} installed_now=0
    port_open "$port" && return 0
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        apt_install postgresql
        installed_now=1
    fi
    is_root || die "PostgreSQL is installed but not running: start it with: sudo pg_ctlcluster \$(ls /etc/postgresql) main start"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting PostgreSQL $version on 127.0.0.1:$port"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for_port "$port" PostgreSQL
    if [ "$installed_now" -eq 1 ]; then
        # A fresh cluster authenticates TCP clients by password: give the
        # postgres role the one the test defaults use.
        su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    fi
}

ensure_services() {
    if [ "${TRELLIS_SKIP_SERVICES:-0}" = 1 ]; then
        return 0
    fi
    ensure_nats
    ensure_redis
    ensure_postgres
}

# As ensure_services, but NATS is only installed: `trellis up` starts it
# when none is listening, and stops it again on Ctrl-C.
ensure_backing_services() {
    if [ "${TRELLIS_SKIP_SERVICES:-0}" = 1 ]; then
        return 0
    fi
    install_nats
    ensure_redis
    ensure_postgres
}

# Installs the OCI registry the tests start on free ports (Debian's
# docker-registry, the CNCF distribution registry); nothing is started here.
ensure_registry() {
    if [ -n "${TRELLIS_TEST_REGISTRY:-}" ] || [ -x /usr/bin/docker-registry ]; then
        return 0
    fi
    apt_install docker-registry
}

# A Python with the `oras` package (an OCI client independent of Trellis)
# for the interoperability tests, in a venv under target/; exports
# TRELLIS_TEST_ORAS_PYTHON.
ensure_oras() {
    local venv="$TRELLIS_ROOT/target/oras-venv"
    if ! "$venv/bin/python" -c 'import oras' 2>/dev/null; then
        command -v python3 >/dev/null || apt_install python3 python3-venv
        say "pip install oras (into $venv)"
        python3 -m venv "$venv" || die "cannot create a Python venv: install python3-venv"
        "$venv/bin/pip" install --quiet 'oras==0.2.43' || die "cannot pip install oras"
    fi
    export TRELLIS_TEST_ORAS_PYTHON="$venv/bin/python"
}

build_examples() {
    say "building actors-examples for wasm32-wasip2"
    (cd "$TRELLIS_ROOT/actors-examples" && cargo build --release --quiet)
}
