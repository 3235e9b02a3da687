#!/usr/bin/env bash
# WebSocket fan-out benchmark: starts the platform (release build, one process), deploys
# load-tests/notify/apps/bench_notify, opens $SOCKETS sockets on /api/ws/notify as the
# admin (subscribed to bench_notify/tick) and fires $ROUNDS actions, one at a time.
# Prints fan-out latency p50/p99 from the app's return to delivery, and the server's
# RSS growth per socket.
#
#   load-tests/notify/run.sh                 # 10,000 sockets, 20 rounds
#   SOCKETS=2000 ROUNDS=5 load-tests/notify/run.sh
#   NR_BENCH_NO_BUILD=1 load-tests/notify/run.sh   # use the release binaries as built
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
# Each socket is a descriptor in the server and one in the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
SOCKETS="${SOCKETS:-10000}"
ROUNDS="${ROUNDS:-20}"
# One user holds every socket: lift the per-user cap (NR_WS_MAX_PER_USER) above them.
export NR_WS_MAX_PER_USER="${NR_WS_MAX_PER_USER:-$((SOCKETS + 16))}"
PORT="${NR_BENCH_PORT:-3998}"
BASE="http://127.0.0.1:$PORT"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
NR="$BIN/noderouter"
# A database of its own, made afresh (never the one `scripts/up` serves).
BENCH_DB="${NR_BENCH_DB:-noderouter_bench}"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB"
if [ "$(ulimit -n)" -lt $((SOCKETS + 1024)) ]; then
  echo "ulimit -n is $(ulimit -n); $SOCKETS sockets need more (raise the hard limit)" >&2
  exit 1
fi
ensure_all
fresh_database "$BENCH_DB"
cd "$ROOT"
if [ -z "${NR_BENCH_NO_BUILD:-}" ]; then
  cargo build --release -q -p noderouter -p nr-load --bin noderouter --bin nr-load-notify
fi
if port_open 127.0.0.1 "$PORT"; then
  echo "port $PORT is taken; set NR_BENCH_PORT" >&2
  exit 1
fi
DATA="$(mktemp -d)"
chmod o+x "$DATA" # the runner directory under it must be reachable by app users
RUST_LOG="${RUST_LOG:-warn}" "$NR" up --http-addr "127.0.0.1:$PORT" --data-dir "$DATA/data" \
  --object-store-url "$DATA/objects" --runner-dir "$DATA/runner" >"$DATA/platform.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
NR_TOKEN=""
for _ in $(seq 1 150); do
  NR_TOKEN="$(cat "$DATA/data/admin.token" 2>/dev/null || true)"
  [ -n "$NR_TOKEN" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$NR_TOKEN" ]; then
  echo "the platform did not come up on $BASE:" >&2
  tail -n 20 "$DATA/platform.log" >&2
  exit 1
fi
export NR_TOKEN
"$NR" app deploy "$ROOT/load-tests/notify/apps/bench_notify" --url "$BASE" >"$DATA/deploy.log" 2>&1 || {
  cat "$DATA/deploy.log" >&2
  exit 1
}
echo "notify fan-out ($(nproc) cores, ulimit -n $(ulimit -n), server pid $PID)"
"$BIN/nr-load-notify" --url "$BASE" --sockets "$SOCKETS" --rounds "$ROUNDS" --server-pid "$PID"
