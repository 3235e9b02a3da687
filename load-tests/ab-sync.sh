#!/usr/bin/env bash
# A/B of the sync path between two `noderouter` release binaries (say, before and after a
# change), in the same run, interleaved: each is started on a fresh database and its own
# NATS, the guide's starter app (load-tests/apps/starter) is deployed, and wrk drives
# POST /api/sync/starter {} at 64 and at 1 connection. Compare the ratios, not the
# absolute figures.
#
#   load-tests/ab-sync.sh OLD_BINARY NEW_BINARY [rounds]
#
# AB_BUS=1 adds a third run per round, NEW with NR_BUS_CALLS=true ("new+bus"): the sync
# call crosses NATS, signed, as between separate services, instead of going to the
# runner of the same process in memory.
#
# AB_JOBS=N adds, per binary, N async jobs of the same app from 64 HTTP clients, submit
# to the final job.progress event (`nr-load async`; NR_LOAD names its binary, default
# target/release/nr-load): jobs/s and submit → completed p50/p99.
#
# A binary from before the embedded NATS (it has no --embedded-nats-port) is given a
# private nats-server without authorization, as it expects.
set -u
source "$(dirname "$0")/../scripts/lib.sh"
set +e +o pipefail
command -v wrk >/dev/null || apt_install wrk
OLD=$1; NEW=$2; ROUNDS=${3:-2}; SECS=${SECONDS_PER_RUN:-6}
APP_DIR="$ROOT/load-tests/apps/starter"

jobs_run() { # label port token data_dir open_nats_pid: AB_JOBS jobs through nr-load async
  local label=$1 port=$2 token=$3 d=$4 open=$5 out
  out=$(
    if [ -n "$open" ]; then export NATS_URL="nats://127.0.0.1:$((port + 1000))"; unset NATS_USER NATS_PASSWORD
    else set -a; . "$d/data/nats/reader.env"; set +a; fi
    NR_TOKEN=$token "${NR_LOAD:-$ROOT/target/release/nr-load}" async --url "http://127.0.0.1:$port" \
      --app starter --jobs "$AB_JOBS" --concurrency 64 --label ab 2>&1
  )
  printf '%-8s async %6s jobs/s   submit → completed %s\n' "$label" \
    "$(awk '/jobs\/s completed/ {print $2}' <<<"$out")" \
    "$(grep 'submit → completed' <<<"$out" | sed 's/.*completed seen *//')"
  grep -q 'failed 0, rejected 0' <<<"$out" || echo "$label: not every job completed: $(grep -m1 'accepted' <<<"$out")"
}

one() { # binary label port [bus]
  local bin=$1 label=$2 port=$3 bus=${4:-false} d db nats_pid="" token extra=()
  mkdir -p "$ROOT/.data"; d=$(mktemp -d "$ROOT/.data/ab.XXXX"); chmod 711 "$ROOT/.data" "$d"
  db="ab_$(basename "$d" | tr -dc 'a-z0-9')"
  fresh_database "$db"
  if "$bin" up --help | grep -q -- --embedded-nats-port; then
    extra=(--embedded-nats-port $((port + 1000)) --data-dir "$d/data")
  else
    "$(nats_bin)" -a 127.0.0.1 -p $((port + 1000)) -js -sd "$d/nats" >/dev/null 2>&1 &
    nats_pid=$!; sleep 0.5
    extra=(--nats-url "nats://127.0.0.1:$((port + 1000))")
  fi
  NR_BUS_CALLS=$bus DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" RUST_LOG=warn "$bin" up \
    --http-addr "127.0.0.1:$port" --object-store-url "$d/objects" --runner-dir "$d/runner" \
    "${extra[@]}" >"$d/log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do
    # Builds since the token file; older ones printed it.
    token=$(cat "$d/data/admin.token" 2>/dev/null ||
      grep -o 'export NR_TOKEN=[^ $]*' "$d/log" | head -1 | cut -d= -f2)
    [ -n "$token" ] && break; sleep 0.2
  done
  NR_TOKEN=$token "$bin" app deploy "$APP_DIR" --url "http://127.0.0.1:$port" >"$d/deploy.log" 2>&1 ||
    { echo "$label: deploy failed (see $d)"; kill $pid; [ -n "$nats_pid" ] && kill $nats_pid; return; }
  for c in 64 1; do
    local out
    out=$(NR_TOKEN=$token BODY='{}' wrk -t$([ $c = 1 ] && echo 1 || echo 2) -c$c -d${SECS}s --latency \
      -s "$ROOT/load-tests/post.lua" "http://127.0.0.1:$port/api/sync/starter" 2>&1)
    printf '%-8s c=%-3s %10s req/s   p50 %9s   p99 %9s   non-2xx=%s\n' "$label" $c \
      "$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" \
      "$(awk '$1=="99%"{print $2}' <<<"$out")" "$(awk '/Non-2xx/{print $5}' <<<"$out")"
  done
  [ "${AB_JOBS:-0}" -gt 0 ] && jobs_run "$label" "$port" "$token" "$d" "$nats_pid"
  kill $pid; wait $pid 2>/dev/null
  [ -n "$nats_pid" ] && { kill $nats_pid; wait $nats_pid 2>/dev/null; }
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $db WITH (FORCE)" postgres
  rm -rf "$d"
}
echo "sync A/B, guide's starter app, ${SECS}s per run, $(nproc) cores"
for r in $(seq 1 "$ROUNDS"); do
  one "$OLD" old 3961; one "$NEW" new 3962
  [ "${AB_BUS:-0}" = 1 ] && one "$NEW" new+bus 3963 true
done
