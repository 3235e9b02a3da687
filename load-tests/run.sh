#!/usr/bin/env bash
# One table, one run: the platform, the floor and the baselines on this machine, for the
# author guide's starter app (load-tests/apps/starter, its default action: `{}` →
# {"message": "ok"}, with the injected connection it declares).
#
#   sync   wrk through the gateway with the admin bearer token, c=1 and c=64;
#          Flask under gunicorn (4 sync workers) serving the same execute(), same wrk.
#   async  `nr-load async`: JOBS jobs from CONCURRENCY HTTP clients, submit → final
#          job.progress event; Celery (prefork, 4 processes, Redis broker and result
#          backend) with the same batch shape (baselines/celery_load.py).
#   floor  a bare NATS request/reply (nr-load nats-floor), a bare call into one warm
#          Python worker (floor.py worker: nr_host's serve_worker over a socket pair),
#          one Postgres commit (floor.py commit).
#
#   load-tests/run.sh                      # about 2-3 minutes
#   SECONDS_PER_RUN=10 JOBS=4000 load-tests/run.sh
#   NR_BENCH_NO_BUILD=1 load-tests/run.sh  # use target/release as built
#   NR_BENCH_ONLY=async NR_BENCH_NO_BUILD=1 NR_BENCH_TARGET_DIR=/path/to/target load-tests/run.sh
#                                          # only the platform's jobs and Celery's, same run
#   RATE=200 load-tests/run.sh             # the paced run's rate (jobs/s, below capacity; 0 skips)
#
# The baselines run after the platform is stopped, one at a time, on the same cores.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
DUR="${SECONDS_PER_RUN:-5}"
JOBS="${JOBS:-2000}"
CONCURRENCY="${CONCURRENCY:-64}"
RATE="${RATE:-100}"
PACED_JOBS="${PACED_JOBS:-500}"
ONLY="${NR_BENCH_ONLY:-}" # "async": skip sync, floors and Flask
FLASK_PORT="${NR_BENCH_FLASK_PORT:-3998}"
REDIS_PORT="${NR_BENCH_REDIS_PORT:-6379}"
LT="$ROOT/load-tests"
VENV="$LT/.venv"
command -v wrk >/dev/null || apt_install wrk

# The baselines' Python: a venv of its own with Flask, gunicorn, Celery and redis-py.
if ! "$VENV/bin/python" -c 'import flask, gunicorn, celery, redis, packaging, psycopg2' 2>/dev/null; then
  log "creating $VENV (baselines/requirements.txt: Flask, gunicorn, Celery, redis-py)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$LT/baselines/requirements.txt"
fi

OUT="$(mktemp)"
EXTRA_PIDS=()
cleanup_extra() {
  local p
  for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${EXTRA_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$OUT"
}

# `wrk` → "req/s p50_ms p99_ms non2xx"
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.3f", v}'; }
wrk_run() { # connections threads url
  local out rps p50 p99 errs
  out="$(BODY='{}' wrk -t"$2" -c"$1" -d"${DUR}s" --latency -s "$LT/post.lua" "$3" 2>&1)"
  rps="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)"
  errs="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
  echo "$rps $p50 $p99 ${errs:-0}"
}
record() { echo "$*" >>"$OUT"; } # key rate p50 p99 [note]

bench_start
trap 'cleanup_extra; kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
bench_deploy "$LT/apps/starter"
if [ "$ONLY" != "async" ]; then
  log "platform: sync"
  wrk_run 4 1 "$BASE/api/sync/starter" >/dev/null # warm-up (fills the worker pool)
  read -r r a b e < <(wrk_run 1 1 "$BASE/api/sync/starter")
  record "sync_nr_1 $r $a $b non2xx=$e"
  read -r r a b e < <(wrk_run 64 2 "$BASE/api/sync/starter")
  record "sync_nr_64 $r $a $b non2xx=$e"
fi
log "platform: async"
"$NR_LOAD" async --url "$BASE" --app starter --jobs 20 --concurrency 4 --label warm-up >/dev/null
jobs_out="$("$NR_LOAD" async --url "$BASE" --app starter --jobs "$JOBS" --concurrency "$CONCURRENCY" --label nr)"
echo "$jobs_out" >"$DATA/jobs.txt"
rate="$(awk '/jobs\/s completed/ {print $2}' <<<"$jobs_out")"
p50="$(awk '/submit → completed seen/ {print $7}' <<<"$jobs_out")"
p99="$(awk '/submit → completed seen/ {print $10}' <<<"$jobs_out")"
done_n="$(grep -o 'completed [0-9]*, failed [0-9]*' <<<"$jobs_out" | head -n1)"
record "async_nr $rate $p50 $p99 ${done_n// /_}"
record "async_nr_running - $(awk '/submit → running seen/ {print $7, $10}' <<<"$jobs_out")"
if [ "$RATE" != "0" ]; then
  paced_out="$("$NR_LOAD" async --url "$BASE" --app starter --jobs "$PACED_JOBS" --concurrency "$CONCURRENCY" \
    --rate "$RATE" --label paced)"
  echo "$paced_out" >"$DATA/paced.txt"
  record "async_paced_running $RATE $(awk '/submit → running seen/ {print $7, $10}' <<<"$paced_out")"
  record "async_paced_completed $RATE $(awk '/submit → completed seen/ {print $7, $10}' <<<"$paced_out")"
fi
# Stop the platform before the floors and the baselines, so it does not take their CPU.
kill "$PID" 2>/dev/null || true
wait "$PID" 2>/dev/null || true

if [ "$ONLY" != "async" ]; then
log "floor"
read_floor() { awk '{for (i=1;i<=NF;i++) {if ($i ~ /\/s$/) r=$i; if ($i=="p50") a=$(i+1); if ($i=="p99") b=$(i+1)}} END {sub(/\/s$/,"",r); print r, a, b}'; }
floor_nats() {
  "$NR_LOAD" nats-floor --concurrency "$1" --seconds "$DUR" |
    awk '{for (i=1;i<=NF;i++) {if ($i=="req/s") r=$(i-1); if ($i=="p50") a=$(i+1); if ($i=="p99") b=$(i+1)}} END {print r, a, b}'
}
read -r r a b < <(floor_nats 1)
record "floor_nats_1 $r $a $b"
read -r r a b < <(floor_nats 64)
record "floor_nats_64 $r $a $b"
read -r r a b < <(NR_APP_CPU_S=30 "$NR_PYTHON" "$LT/floor.py" worker "$LT/apps/starter" "$DUR" | read_floor)
record "floor_worker_1 $r $a $b"
read -r r a b < <("$NR_PYTHON" "$LT/floor.py" commit "$DUR" | read_floor)
record "floor_commit_1 $r $a $b"

log "baseline: Flask under gunicorn, 4 workers"
(cd "$LT/baselines" && exec "$VENV/bin/gunicorn" -w 4 -b "127.0.0.1:$FLASK_PORT" \
  --log-level warning flask_app:app) &
EXTRA_PIDS+=($!)
for _ in $(seq 1 100); do
  curl -sf -X POST "http://127.0.0.1:$FLASK_PORT/api/sync/starter" -H 'Content-Type: application/json' -d '{}' >/dev/null 2>&1 && break
  sleep 0.1
done
wrk_run 4 1 "http://127.0.0.1:$FLASK_PORT/api/sync/starter" >/dev/null
read -r r a b e < <(wrk_run 1 1 "http://127.0.0.1:$FLASK_PORT/api/sync/starter")
record "sync_flask_1 $r $a $b non2xx=$e"
read -r r a b e < <(wrk_run 64 2 "http://127.0.0.1:$FLASK_PORT/api/sync/starter")
record "sync_flask_64 $r $a $b non2xx=$e"
kill "${EXTRA_PIDS[-1]}" 2>/dev/null || true
fi

log "baseline: Celery, prefork 4 processes, Redis broker and result backend"
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --port "$REDIS_PORT" --save '' --appendonly no >"$DATA/redis.log" 2>&1 &
  EXTRA_PIDS+=($!)
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
export NR_BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/15"
redis-cli -p "$REDIS_PORT" -n 15 flushdb >/dev/null
(cd "$LT/baselines" && exec "$VENV/bin/celery" -A celery_app worker -P prefork -c 4 \
  --loglevel=warning --without-heartbeat --without-gossip --without-mingle) >"$DATA/celery.log" 2>&1 &
EXTRA_PIDS+=($!)
celery_out="$(cd "$LT/baselines" && JOBS="$JOBS" CONCURRENCY="$CONCURRENCY" timeout 300 "$VENV/bin/python" celery_load.py)"
read -r r a b < <(awk '{print $2, $5, $8}' <<<"$celery_out")
record "async_celery $r $a $b $(awk '{print "completed_" $11}' <<<"$celery_out")"
kill "${EXTRA_PIDS[-1]}" 2>/dev/null || true
redis-cli -p "$REDIS_PORT" -n 15 flushdb >/dev/null 2>&1 || true

# The table.
val() { awk -v k="$1" -v f="$2" '$1==k {print $f}' "$OUT"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 > 0) printf "%.2f×", a/b; else print "-" }'; }
others="$(ps -eo comm= | sort | uniq -c | sort -rn | awk '$2 ~ /rustc|cargo|cc1|ld|chromium|python|postgres|nats-server|gunicorn|celery/ {printf "%s %s, ", $1, $2}')"
echo
echo "NodeRouter load tests, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); app 'starter' (the guide's starter, default action); ${DUR}s per sync run; $JOBS jobs from $CONCURRENCY clients"
echo "binaries: $NR"
echo "processes at the end: ${others%, }"
echo
printf '| %-44s | %12s | %10s | %10s | %-30s |\n' "path" "rate" "p50 ms" "p99 ms" "vs baseline / floor"
printf '|%s|%s|%s|%s|%s|\n' "----------------------------------------------" "--------------" "------------" "------------" "--------------------------------"
row() { printf '| %-44s | %12s | %10s | %10s | %-30s |\n' "$1" "$2" "$3" "$4" "$5"; }
if [ "$ONLY" != "async" ]; then
  row "sync, platform, c=1 (req/s)" "$(val sync_nr_1 2)" "$(val sync_nr_1 3)" "$(val sync_nr_1 4)" "$(ratio "$(val sync_nr_1 2)" "$(val sync_flask_1 2)") Flask"
  row "sync, platform, c=64 (req/s)" "$(val sync_nr_64 2)" "$(val sync_nr_64 3)" "$(val sync_nr_64 4)" "$(ratio "$(val sync_nr_64 2)" "$(val sync_flask_64 2)") Flask"
  row "sync, Flask + gunicorn -w 4, c=1" "$(val sync_flask_1 2)" "$(val sync_flask_1 3)" "$(val sync_flask_1 4)" "baseline"
  row "sync, Flask + gunicorn -w 4, c=64" "$(val sync_flask_64 2)" "$(val sync_flask_64 3)" "$(val sync_flask_64 4)" "baseline"
fi
row "async, platform (jobs/s)" "$(val async_nr 2)" "$(val async_nr 3)" "$(val async_nr 4)" "$(ratio "$(val async_nr 2)" "$(val async_celery 2)") Celery ($(val async_nr 5))"
row "async, platform: submit → running seen" "" "$(val async_nr_running 3)" "$(val async_nr_running 4)" "saturated: queueing"
row "async, paced $RATE/s: submit → running" "$(val async_paced_running 2)" "$(val async_paced_running 3)" "$(val async_paced_running 4)" "below capacity"
row "async, paced $RATE/s: submit → completed" "$(val async_paced_completed 2)" "$(val async_paced_completed 3)" "$(val async_paced_completed 4)" "below capacity"
row "async, Celery prefork 4 + Redis (jobs/s)" "$(val async_celery 2)" "$(val async_celery 3)" "$(val async_celery 4)" "baseline ($(val async_celery 5))"
if [ "$ONLY" != "async" ]; then
  row "floor: NATS request/reply c=1" "$(val floor_nats_1 2)" "$(val floor_nats_1 3)" "$(val floor_nats_1 4)" "sync c=1 p50 = $(ratio "$(val sync_nr_1 3)" "$(val floor_nats_1 3)") floor"
  row "floor: NATS request/reply c=64" "$(val floor_nats_64 2)" "$(val floor_nats_64 3)" "$(val floor_nats_64 4)" "sync c=64 = $(ratio "$(val sync_nr_64 2)" "$(val floor_nats_64 2)") of it"
  row "floor: warm Python worker call c=1" "$(val floor_worker_1 2)" "$(val floor_worker_1 3)" "$(val floor_worker_1 4)" "sync c=1 p50 = $(ratio "$(val sync_nr_1 3)" "$(val floor_worker_1 3)") floor"
  row "floor: one Postgres commit c=1" "$(val floor_commit_1 2)" "$(val floor_commit_1 3)" "$(val floor_commit_1 4)" "job p50 = $(ratio "$(val async_nr 3)" "$(val floor_commit_1 3)") commit"
fi
echo
echo "(p50/p99: sync = request latency seen by wrk; async = submit → completion, the final"
echo " job.progress event for the platform, the result's date_done for Celery; the ratio"
echo " column divides the platform's figure by the baseline's, or a latency by the floor's.)"
