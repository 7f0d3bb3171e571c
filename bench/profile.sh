#!/usr/bin/env bash
# A CPU flamegraph of the lattice hello path under load, in one command:
#
#   bench/profile.sh [seconds]     # default 8 s of samples
#
# Builds Trellis with the `profiling` profile (release code plus line
# tables), runs the benchmark harness on the lattice alone at 32
# connections, and while wrk loads it, samples every process on the machine
# with `perf record -a --call-graph dwarf` (the CPU clock: VMs often have no
# hardware counters). Then it folds the stacks with inferno (installed into
# bench/.cache with `cargo install --root` when missing) and writes:
#
#   bench/results/lattice-hello.svg    the flamegraph (open it in a browser)
#   bench/results/lattice-hello.txt    the share of samples by process, by
#                                      kind of work and the top functions
#   bench/results/lattice-hello.folded the folded stacks, for other views
#
# Needs root, or kernel.perf_event_paranoid <= -1, for system-wide samples.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/setup.sh"

seconds=${1:-8}
ensure_rust
ensure_services
command -v wrk >/dev/null || apt_install wrk
command -v perf >/dev/null || apt_install linux-perf

cd "$TRELLIS_ROOT"
cache="$TRELLIS_ROOT/bench/.cache"
if ! [ -x "$cache/bin/inferno-flamegraph" ]; then
    say "cargo install inferno --root $cache (once)"
    cargo install --quiet --locked inferno --root "$cache"
fi

say "building Trellis with the profiling profile"
cargo build --profile profiling --quiet -p trellis-cli -p trellis-provider-http-server \
    -p trellis-provider-keyvalue-redis -p trellis-provider-sqldb-postgres -p trellis-bench
build_examples

out="$TRELLIS_ROOT/bench/results"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "loading the lattice hello at 32 connections"
duration=$((seconds + 6))
target/profiling/trellis-bench --bin-dir target/profiling \
    --components actors-examples/target/wasm32-wasip2/release \
    --sections http --targets lattice --concurrency 32 --trials 1 --warmup 0s \
    --duration "${duration}s" --out "$work/bench.json" 2>"$work/bench.err" >"$work/bench.out" &
bench=$!
# Sample once wrk has been loading for a few seconds.
for _ in $(seq 1 1200); do
    grep -q "wrk -c32" "$work/bench.err" 2>/dev/null && break
    kill -0 "$bench" 2>/dev/null || { cat "$work/bench.err" >&2; die "the harness exited early"; }
    sleep 0.1
done
sleep 3
# Which process is which: the host is `trellis up`; the http-server provider
# is the process listening on the port wrk loads.
port=$(sed -n 's|.*wrk -c32 http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/bench.err" | head -n 1)
host_pid=$(pgrep -f "target/profiling/trellis -o json up" | head -n 1)
http_pid=$(ss -ltnpH "( sport = :$port )" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
[ -n "$host_pid" ] && [ -n "$http_pid" ] || die "cannot find the host or the http-server provider process"

say "perf record -a for ${seconds} s"
perf record -q -a -e cpu-clock -F 499 --call-graph dwarf,32768 -o "$work/perf.data" -- sleep "$seconds" \
    2>"$work/perf.err" || { cat "$work/perf.err" >&2; die "perf record failed"; }
wait "$bench" || { cat "$work/bench.err" >&2; die "the harness failed"; }

say "folding stacks"
perf script -F +pid -i "$work/perf.data" 2>/dev/null >"$work/perf.script"
# Stacks start with `comm-pid`: name the processes, drop the other pids.
"$cache/bin/inferno-collapse-perf" --all --pid "$work/perf.script" |
    sed -E -e "s/^[^;]*-$host_pid;/host (trellis up);/" \
        -e "s/^[^;]*-$http_pid;/http-server provider;/" \
        -e 's/^tokio-rt-worker-[0-9]+;/other providers (idle);/' \
        -e 's/^([^;]*)-[0-9]+;/\1;/' >"$work/folded"
cp "$work/folded" "$out/lattice-hello.folded"
"$cache/bin/inferno-flamegraph" --title "Trellis lattice hello, wrk -c32, all processes" \
    "$work/folded" >"$out/lattice-hello.svg"
{
    grep "^lattice " "$work/bench.out" || true
    echo
    echo "Share of samples by process:"
    awk '{ n = $NF; split($0, f, ";"); by[f[1]] += n; all += n }
         END { for (p in by) printf "%6.1f%%  %s\n", 100 * by[p] / all, p }' "$work/folded" | sort -rn
    echo
    echo "Self time by kind of work, per process (share of all samples):"
    awk '{ n = $NF; $NF = ""; k = split($0, f, ";"); leaf = f[k]; p = f[1]
           if (leaf ~ /curve25519|ed25519|sha512/) c = "Ed25519 (incl. SHA-512)"
           else if (leaf ~ /sha256|digest_blocks/) c = "SHA-256"
           else if (leaf ~ /memset/) c = "memset"
           else if (leaf ~ /malloc|free|_int_|tcache|unlink_chunk|realloc|memcpy|memmove/) c = "allocation and copies"
           else if (leaf ~ /_\[k\]/) c = "kernel"
           else if (leaf ~ /wasmtime|cranelift|_\[j\]|perf-[0-9]+\.map/) c = "wasmtime and guest code"
           else if (leaf ~ /serde|base64|rmp|json/) c = "encoding (JSON, base64, msgpack)"
           else c = "other"
           by[p " | " c] += n; all += n }
         END { for (x in by) if (100 * by[x] / all >= 0.5) printf "%6.1f%%  %s\n", 100 * by[x] / all, x }' \
        "$work/folded" | sort -rn
    echo
    echo "Top functions by self time (share of all samples):"
    awk '{ n = $NF; $NF = ""; k = split($0, f, ";"); leaf = f[k]; sub(/ +$/, "", leaf);
           by[f[1] " | " leaf] += n; all += n }
         END { for (p in by) printf "%6.2f%%  %s\n", 100 * by[p] / all, p }' "$work/folded" |
        sort -rn | sed -n 1,40p
} >"$out/lattice-hello.txt"
cat "$out/lattice-hello.txt"
say "flamegraph: $out/lattice-hello.svg"
