#!/usr/bin/env bash
# Sync-path benchmark: starts the platform (release build, one process), deploys the
# example apps, and prints req/s and p50/p99 through the gateway at 1 and 64
# connections, plus the floor: a bare NATS request/reply round trip.
#
#   load-tests/sync.sh            # 10 s per run
#   SECONDS_PER_RUN=30 load-tests/sync.sh
source "$(dirname "$0")/../scripts/lib.sh"
ensure_all
command -v wrk >/dev/null || apt_install wrk
cd "$ROOT"
cargo build --release -q -p noderouter -p nr-load
DUR="${SECONDS_PER_RUN:-10}"
PORT="${NR_BENCH_PORT:-3999}"
DATA="$(mktemp -d)"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/noderouter"
RUST_LOG=warn "$ROOT/target/release/noderouter" up --http-addr "127.0.0.1:$PORT" \
  --object-store-url "$DATA/objects" --runner-dir "$DATA/runner" --examples "$ROOT/examples" \
  >"$DATA/platform.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  curl -sf -X POST "http://127.0.0.1:$PORT/api/sync/hello" -d '{}' >/dev/null 2>&1 && break
  sleep 0.2
done
URL="http://127.0.0.1:$PORT/api/sync/hello"
run() { # label connections threads [body]
  local out
  out="$(BODY="${4:-{\}}" wrk -t"$3" -c"$2" -d"${DUR}s" --latency -s "$ROOT/load-tests/post.lua" "$5" 2>&1)"
  local rps p50 p99 errs
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  errs="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
  printf '%-28s %10s req/s   p50 %9s   p99 %9s   non-2xx=%s\n' "$1" "$rps" "$p50" "$p99" "${errs:-0}"
}
echo "sync path through the gateway (app 'hello', ${DUR}s per run, $(nproc) cores)"
run "gateway c=1" 1 1 '{}' "$URL"
run "gateway c=64" 64 2 '{}' "$URL"
"$ROOT/target/release/nr-load" nats-floor --concurrency 1 --seconds "$DUR"
"$ROOT/target/release/nr-load" nats-floor --concurrency 64 --seconds "$DUR"
