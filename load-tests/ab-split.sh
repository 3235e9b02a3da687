#!/usr/bin/env bash
# A/B of the sync path between separate services, two builds in the same run: each build's
# nr-registry, nr-deploy, nr-gateway and one nr-runner as processes of their own on one
# nats-server, the guide's starter app deployed, wrk driving POST /api/sync/starter {} at
# 64 and at 1 connection. The call crosses NATS between two processes in both builds.
#
#   load-tests/ab-split.sh OLD_BIN_DIR NEW_BIN_DIR [rounds]
#
# A build with `noderouter nats-config` (the containment) gets its NATS with the
# authorization block of the permission table, a user per service and a runner key
# (signed requests and replies); one without gets an open nats-server and no key, as it
# ran before. Besides req/s and latency, each run prints the CPU the machine spent per
# request (all processes, wrk included, from /proc/stat) and that of the gateway, the
# runner with its Python workers, and nats-server (from /proc/<pid>/stat), which says
# where a difference went. Runs of the same build vary by about 15 % on a 2-core machine:
# take medians over several rounds (load-tests/README.md).
#
# AB_OPEN=1 adds a third run per round, "open": NEW_BIN_DIR on an open nats-server with
# NR_INSECURE_DEV=1 (no NATS users, requests and replies not signed). NEW against open is
# what the bus's locks cost; OLD against open is what everything else between the two
# builds changed on this path.
#
# AB_PARTS=1 adds two more: "users" (NATS users, requests not signed) and "signd" (signed,
# NATS open): which of the two locks costs what.
#
# AB_PERF_DIR=DIR records each c=64 run under a system-wide `perf record` (cpu-clock,
# 499 Hz) into DIR/<label>.<round>.data, for `perf report --sort comm,dso,sym`;
# AB_PERF_CMD replaces that command (e.g. "perf stat -a -e context-switches").
set -u
source "$(dirname "$0")/../scripts/lib.sh"
set +e +o pipefail
command -v wrk >/dev/null || apt_install wrk
[ -n "${AB_PERF_DIR:-}" ] && { command -v perf >/dev/null || apt_install linux-perf; mkdir -p "$AB_PERF_DIR"; }
OLD=$(cd "$1" && pwd); NEW=$(cd "$2" && pwd); ROUNDS=${3:-2}; SECS=${SECONDS_PER_RUN:-6}
APP_DIR="$ROOT/load-tests/apps/starter"
ensure_python
NATS=$(nats_bin)

busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
tree_ticks() { # PID...: utime+stime of these processes and all their descendants
  local all=" $* " grown=1 p
  while [ $grown = 1 ]; do
    grown=0
    for p in $(ps -eo pid=,ppid= | awk -v s="$all" 'index(s, " " $2 " ") && !index(s, " " $1 " ") {print $1}'); do
      all="$all$p "; grown=1
    done
  done
  for p in $all; do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s+=$1} END {print s+0}'
}

one() { # bin_dir label port [open|users|signed]
  local bin=$1 label=$2 port=$3 mode=${4:-} d db pids=() token users=0 signed=0 dev=()
  mkdir -p "$ROOT/.data"; d=$(mktemp -d "$ROOT/.data/split.XXXX"); chmod 711 "$ROOT/.data" "$d"
  db="split_$(basename "$d" | tr -dc 'a-z0-9')"
  fresh_database "$db"
  local np=$((port + 1000)) admin jwt key
  admin=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'); jwt=$admin$admin
  key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  if "$bin/noderouter" nats-config --help >/dev/null 2>&1; then
    case "$mode" in
      open) dev=(NR_INSECURE_DEV=1) ;;
      users) users=1; dev=(NR_INSECURE_DEV=1) ;;
      signed) signed=1 ;;
      *) users=1; signed=1 ;;
    esac
  fi
  { echo "listen: 127.0.0.1:$np"; echo "jetstream { store_dir: \"$d/nats\" }"
    [ $users = 1 ] && echo "include ./auth.conf"; } >"$d/nats.conf"
  [ $users = 1 ] && "$bin/noderouter" nats-config --passwords "$d/passwords.json" --out "$d/auth.conf"
  "$NATS" -c "$d/nats.conf" >"$d/nats.log" 2>&1 & pids+=($!)
  local nats_pid=$!
  for _ in $(seq 1 50); do port_open 127.0.0.1 $np && break; sleep 0.1; done
  start() { # role binary VAR=VALUE...
    local role=$1 b=$2; shift 2
    local creds=()
    [ $users = 1 ] && creds=(NR_NATS_USER="$role" NR_NATS_PASSWORD="$("$bin/noderouter" nats-config \
      --passwords "$d/passwords.json" --password-of "$role")")
    [ $signed = 1 ] && creds+=(RUNNER_SECRET="$key")
    env RUST_LOG=warn NO_COLOR=1 NR_NATS_URL="nats://127.0.0.1:$np" \
      DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" NR_OBJECT_STORE_URL="$d/objects" \
      NR_PYTHON="$NR_PYTHON" "${creds[@]}" "${dev[@]}" "$@" "$bin/$b" >"$d/$b.log" 2>&1 &
    pids+=($!)
  }
  start registry nr-registry NR_HEALTH_ADDR="127.0.0.1:$((port + 1))"
  # The registry makes the streams the others use.
  for _ in $(seq 1 100); do curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$((port + 1))/healthz" && break; sleep 0.1; done
  start deploy nr-deploy NR_HEALTH_ADDR="127.0.0.1:$((port + 2))" NR_DEPLOY_DIR="$d/deploy"
  start gateway nr-gateway NR_HTTP_ADDR="127.0.0.1:$port" NR_JWT_SECRET="$jwt" NR_ADMIN_PASSWORD="$admin"
  local gw_pid=$!
  start runner nr-runner NR_HEALTH_ADDR="127.0.0.1:$((port + 3))" NR_RUNNER_DIR="$d/runner"
  local runner_pid=$!
  for _ in $(seq 1 300); do
    token=$(curl -fsS --max-time 1 -X POST "http://127.0.0.1:$port/api/auth/login" -H 'Content-Type: application/json' \
      -d "{\"username\":\"admin\",\"password\":\"$admin\"}" 2>/dev/null |
      "$NR_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["token"])' 2>/dev/null)
    [ -n "$token" ] && curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$((port + 3))/healthz" && break
    sleep 0.2
  done
  if ! NR_TOKEN=$token "$bin/noderouter" app deploy "$APP_DIR" --url "http://127.0.0.1:$port" >"$d/deploy.log" 2>&1; then
    echo "$label: deploy failed (see $d)"; kill "${pids[@]}"; return
  fi
  # Warm every worker of the pool before measuring.
  NR_TOKEN=$token BODY='{}' wrk -t2 -c64 -d2s -s "$ROOT/load-tests/post.lua" "http://127.0.0.1:$port/api/sync/starter" >/dev/null 2>&1
  for c in 64 1; do
    local out m0 g0 r0 n0 m1 g1 r1 n1 reqs
    m0=$(busy_ticks); g0=$(tree_ticks $gw_pid); r0=$(tree_ticks $runner_pid); n0=$(tree_ticks $nats_pid)
    local perf=()
    [ -n "${AB_PERF_DIR:-}" ] && [ $c = 64 ] && perf=(${AB_PERF_CMD:-perf record -q -a -e cpu-clock -F 499} -o "$AB_PERF_DIR/$label.$round.data" --)
    out=$(NR_TOKEN=$token BODY='{}' "${perf[@]}" wrk -t$([ $c = 1 ] && echo 1 || echo 2) -c$c -d${SECS}s --latency \
      -s "$ROOT/load-tests/post.lua" "http://127.0.0.1:$port/api/sync/starter" 2>&1)
    m1=$(busy_ticks); g1=$(tree_ticks $gw_pid); r1=$(tree_ticks $runner_pid); n1=$(tree_ticks $nats_pid)
    reqs=$(awk '/requests in/{print $1}' <<<"$out")
    printf '%-5s c=%-3s %9s req/s  p50 %8s  p99 %8s  non-2xx=%-4s CPU µs/req: machine %4s gateway %3s runner+workers %3s nats %3s\n' \
      "$label" $c "$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" \
      "$(awk '$1=="99%"{print $2}' <<<"$out")" "$(awk '/Non-2xx/{print $5}' <<<"$out")" \
      $(for p in "$m0 $m1" "$g0 $g1" "$r0 $r1" "$n0 $n1"; do
          set -- $p; awk -v a="$1" -v b="$2" -v n="${reqs:-0}" 'BEGIN {printf "%d ", n ? (b - a) * 10000 / n : 0}'
        done)
  done
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $db WITH (FORCE)" postgres
  rm -rf "$d"
}
echo "split-services sync A/B, guide's starter app, ${SECS}s per run, $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  # Each run takes its port, the three after it, and its port + 1000 for NATS.
  runs=("one $OLD old 3971" "one $NEW new 3976")
  [ "${AB_OPEN:-0}" = 1 ] && runs+=("one $NEW open 3981 open")
  [ "${AB_PARTS:-0}" = 1 ] && runs+=("one $NEW users 3986 users" "one $NEW signd 3991 signed")
  # Even rounds go in reverse order, so no build always runs first or last (a run
  # leaves Postgres, the page cache and the CPU's clocks in some state for the next).
  if [ $((round % 2)) = 0 ]; then
    for ((i = ${#runs[@]} - 1; i >= 0; i--)); do ${runs[$i]}; done
  else
    for r in "${runs[@]}"; do $r; done
  fi
done
