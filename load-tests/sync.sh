#!/usr/bin/env bash
# Sync-path benchmark: starts the platform (release build, one process), deploys the
# example apps and load-tests/apps/bench_select, and prints req/s and p50/p99 through the
# gateway at 1 and 64 connections for the trivial app ('hello') and for an app that runs
# one `SELECT 1` on its injected connection ('bench_select'), plus the floor: a bare NATS
# request/reply round trip.
#
#   load-tests/sync.sh            # 10 s per run
#   SECONDS_PER_RUN=30 load-tests/sync.sh
source "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || apt_install wrk
DUR="${SECONDS_PER_RUN:-10}"
bench_start
bench_deploy "$ROOT/load-tests/apps/bench_select"
run() { # label connections threads body url
  local out
  out="$(BODY="$4" wrk -t"$3" -c"$2" -d"${DUR}s" --latency -s "$ROOT/load-tests/post.lua" "$5" 2>&1)"
  local rps p50 p99 errs
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  errs="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
  printf '%-28s %10s req/s   p50 %9s   p99 %9s   non-2xx=%s\n' "$1" "$rps" "$p50" "$p99" "${errs:-0}"
}
echo "sync path through the gateway (app 'hello', ${DUR}s per run, $(nproc) cores)"
run "gateway c=1" 1 1 '{}' "$BASE/api/sync/hello"
run "gateway c=64" 64 2 '{}' "$BASE/api/sync/hello"
echo "one SELECT 1 on the injected connection (app 'bench_select')"
run "gateway select c=1" 1 1 '{}' "$BASE/api/sync/bench_select"
run "gateway select c=64" 64 2 '{}' "$BASE/api/sync/bench_select"
"$NR_LOAD" nats-floor --concurrency 1 --seconds "$DUR"
"$NR_LOAD" nats-floor --concurrency 64 --seconds "$DUR"
