#!/usr/bin/env bash
# Async-job benchmark: starts the platform (release build, one process), deploys
# load-tests/apps/bench_noop, and runs `nr-load async`: submits JOBS jobs over HTTP from
# CONCURRENCY clients, follows job.progress.<app>.> on NATS, and prints jobs/s from
# submit to `completed` and p50/p99 of submit → running seen and submit → completed
# seen. Then a paced run at RATE jobs/s (below saturation) for latency without a queue.
#
#   load-tests/async.sh                                # 2000 jobs, c=64, then 500 at 100/s
#   JOBS=5000 CONCURRENCY=32 RATE=200 APP=hello load-tests/async.sh
#   RATE=0 load-tests/async.sh                         # skip the paced run
#   JOBS=0 RATE=150 load-tests/async.sh                # only the paced run
#   RUNNERS=2 load-tests/async.sh                      # runners in the process (4 job slots each)
source "$(dirname "$0")/lib.sh"
JOBS="${JOBS:-2000}"
CONCURRENCY="${CONCURRENCY:-64}"
RATE="${RATE:-100}"
PACED_JOBS="${PACED_JOBS:-500}"
APP="${APP:-bench_noop}"
bench_start --runners "${RUNNERS:-1}"
bench_deploy "$ROOT/load-tests/apps/bench_noop" "$ROOT/load-tests/apps/bench_select"
# Any other app of load-tests/apps (e.g. APP=starter, the guide's starter).
[ -d "$ROOT/load-tests/apps/$APP" ] && [ "$APP" != bench_noop ] && [ "$APP" != bench_select ] &&
  bench_deploy "$ROOT/load-tests/apps/$APP"
# A short warm-up so the first measured job does not pay for loading the app.
"$NR_LOAD" async --url "$BASE" --app "$APP" --jobs 20 --concurrency 4 --label warm-up >/dev/null
echo "async jobs through the gateway (app '$APP', $(nproc) cores, runners=${RUNNERS:-1})"
if [ "$JOBS" != "0" ]; then
  since="$(psql -tAc 'SELECT now()' "$DATABASE_URL")"
  "$NR_LOAD" async --url "$BASE" --app "$APP" --jobs "$JOBS" --concurrency "$CONCURRENCY" \
    --label "saturated c=$CONCURRENCY"
  # The rows' own clocks, as a cross-check (created_at = the gateway's INSERT,
  # updated_at = the runner's final UPDATE).
  psql -tA -F ' ' "$DATABASE_URL" -c "
    SELECT 'rows: ' || count(*) || ' jobs, ' || count(*) FILTER (WHERE status = 'completed')
           || ' completed, ' || round((count(*) FILTER (WHERE status = 'completed')
           / NULLIF(extract(epoch FROM max(updated_at) - min(created_at)), 0))::numeric)
           || ' jobs/s (first created_at → last updated_at), created → final p50 '
           || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)) * 1000)::numeric, 1)
           || ' ms p99 '
           || round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)) * 1000)::numeric, 1)
           || ' ms'
    FROM noderouter_core.job_queue WHERE app_name = '$APP' AND created_at >= '$since'"
fi
if [ "$RATE" != "0" ]; then
  "$NR_LOAD" async --url "$BASE" --app "$APP" --jobs "$PACED_JOBS" --concurrency "$CONCURRENCY" \
    --rate "$RATE" --label "paced ${RATE}/s"
fi
