#!/usr/bin/env bash
# WebSocket fan-out benchmark: starts the platform (release build, one process), deploys
# load-tests/notify/apps/bench_notify, opens $SOCKETS sockets on /api/ws/notify as the
# admin (subscribed to bench_notify/tick) and fires $ROUNDS actions, one at a time.
# Prints fan-out latency p50/p99 from the app's return to delivery, and the server's
# RSS growth per socket.
#
#   load-tests/notify/run.sh                 # 10,000 sockets, 20 rounds
#   SOCKETS=2000 ROUNDS=5 load-tests/notify/run.sh
set -euo pipefail
# Each socket is a descriptor in the server and one in the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 || true
SOCKETS="${SOCKETS:-10000}"
ROUNDS="${ROUNDS:-20}"
source "$(dirname "$0")/../lib.sh"
if [ "$(ulimit -n)" -lt $((SOCKETS + 1024)) ]; then
  echo "ulimit -n is $(ulimit -n); $SOCKETS sockets need more" >&2
  exit 1
fi
bench_start
NR_TOKEN="$(grep -o 'export NR_TOKEN=[^ ]*' "$DATA/platform.log" | head -n1 | cut -d= -f2)"
export NR_TOKEN
bench_deploy "$ROOT/load-tests/notify/apps/bench_notify"
echo "notify fan-out ($(nproc) cores, ulimit -n $(ulimit -n))"
"$ROOT/target/release/nr-load-notify" --url "$BASE" --sockets "$SOCKETS" --rounds "$ROUNDS" --server-pid "$PID"
