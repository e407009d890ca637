#!/usr/bin/env bash
# NitroSocks as a peer for the side-by-side peer harness (not part of this
# repository; BENCH_COMMON names its lib/common.sh; contract in its README): a server
# on 127.0.0.1:12210 (TLS 1.3 outside, NitroSocks inside) and a client whose
# SOCKS5 port is 127.0.0.1:11010, both from this checkout, with throwaway keys
# made in $PEER_STATE. Knobs: NS_AEAD (aes-256-gcm | aes-128-gcm |
# chacha20-poly1305), NS_CRYPTO (record backend of both sides: openssl, the
# default, which refuses to start without OpenSSL 3 | webcrypto | auto),
# NS_TRANSPORT (tls | tcp), NS_SERVER_PORT, NS_SOCKS_PORT.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMMON=${BENCH_COMMON:-$ROOT/../shared/bench/lib/common.sh}
# shellcheck source=/dev/null
. "$COMMON"

SERVER_PORT=${NS_SERVER_PORT:-12210}
SOCKS_PORT=${NS_SOCKS_PORT:-11010}
AEAD=${NS_AEAD:-aes-256-gcm}
TRANSPORT=${NS_TRANSPORT:-tls}
CRYPTO=${NS_CRYPTO:-openssl}
FLAGS=(--allow-net --allow-read --allow-write --allow-env=LOG_TOKENS,LOG_STREAM --allow-ffi)
NS=(deno run "${FLAGS[@]}" "$ROOT/main.ts")

start_peer() {
  port_free "$SERVER_PORT"; port_free "$SOCKS_PORT"
  local dir=$PEER_STATE/srv
  "${NS[@]}" init "$dir" --listen "127.0.0.1:$SERVER_PORT" --name localhost --force >"$PEER_STATE/init.log" 2>&1 ||
    die "nitrosocks init failed: $(tail -3 "$PEER_STATE/init.log")"
  "${NS[@]}" user add bench --dir "$dir" --out "$PEER_STATE/bench.yml" --force \
    --routes '127.0.0.1:*,[::1]:*' >"$PEER_STATE/user.log" 2>&1 ||
    die "nitrosocks user add failed: $(tail -3 "$PEER_STATE/user.log")"
  sed -i "s/^transport: .*/transport: $TRANSPORT/" "$dir/server.yml" "$PEER_STATE/bench.yml"
  printf 'aead: [%s]\n' "$AEAD" >>"$PEER_STATE/bench.yml"
  grep -q '^  backend: auto$' "$dir/server.yml" || die "server.yml has no 'crypto: backend: auto' line to set"
  sed -i "s/^  backend: auto\$/  backend: $CRYPTO/" "$dir/server.yml"
  printf 'crypto:\n  backend: %s\n' "$CRYPTO" >>"$PEER_STATE/bench.yml"
  "${NS[@]}" server --config "$dir/server.yml" --log-level warn >"$PEER_STATE/server.log" 2>&1 &
  record_pid server $!
  wait_listen "$SERVER_PORT" 30 $! || die "server did not start: $(tail -3 "$PEER_STATE/server.log")"
  "${NS[@]}" client --config "$PEER_STATE/bench.yml" --socks "127.0.0.1:$SOCKS_PORT" --log-level warn \
    >"$PEER_STATE/client.log" 2>&1 &
  record_pid client $!
  wait_listen "$SOCKS_PORT" 30 $! || die "client did not start: $(tail -3 "$PEER_STATE/client.log")"
  echo "nitrosocks $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo dev) deno $(deno --version | head -1 | cut -d' ' -f2) $TRANSPORT aead=$AEAD crypto=$CRYPTO" >"$PEER_STATE/info"
  echo "127.0.0.1:$SOCKS_PORT"
}

peer_main nitrosocks "$@"
