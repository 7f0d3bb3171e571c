#!/usr/bin/env bash
# The Trellis demo. Installs what is missing (as root on Debian), starts
# NATS, Redis and PostgreSQL if none is running, builds everything and shows
# what Trellis does so far: a development issuer signs the example actor and
# its claims are verified.
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"

ensure_rust
ensure_services

cd "$TRELLIS_ROOT"
say "building the trellis CLI"
cargo build --release --quiet -p trellis-cli
trellis="$TRELLIS_ROOT/target/release/trellis"
build_examples

keys="$TRELLIS_STATE_DIR/keys"
issuer="$keys/dev.account.nk"
if [ ! -f "$issuer" ]; then
    say "creating the development issuer key in $keys (git-ignored)"
    "$trellis" keys gen account --keys-dir "$keys" --name dev >/dev/null
fi
issuer_public=$("$trellis" keys public "$issuer")

signed="$TRELLIS_STATE_DIR/hello.signed.wasm"
say "signing actors-examples/hello with the development issuer $issuer_public"
"$trellis" claims sign actors-examples/target/wasm32-wasip2/release/hello.wasm \
    --issuer "$issuer" --keys-dir "$keys" --name hello \
    --cap wasi:http --cap wasi:logging -d "$signed" >/dev/null

say "trellis claims inspect $signed --trust $issuer_public"
"$trellis" claims inspect "$signed" --trust "$issuer_public"

cat <<MSG

The lattice host, the capability providers and the HTTP demo come with the
next issues. Until then, try the claims yourself:

  $trellis claims inspect $signed --trust $issuer_public
  $trellis -o json claims inspect $signed --trust $issuer_public
MSG
