# Separate services of one build, brought up, measured and stopped by label: the shared
# part of ab-split.sh (a fresh stack per run) and ab-locks.sh (stacks that stay up while
# runs alternate between them). Sourced; needs scripts/lib.sh, ensure_python and wrk.
#
# split_up BIN_DIR LABEL PORT [open|users|signed]: nats-server on PORT + 1000, then
#   nr-registry, nr-deploy, nr-gateway (PORT) and one nr-runner, each a process of its
#   own; the guide's starter app deployed and every worker of its pool warmed. A build
#   with `noderouter nats-config` (the containment) gets the permission table's users
#   and a runner key unless the mode drops one: "open" neither (NR_INSECURE_DEV=1),
#   "users" no key, "signed" no NATS users; no mode means both, as shipped.
# split_measure LABEL CONNECTIONS [PERF_FILE]: wrk for SECS seconds; prints one line with
#   req/s, p50, p99, non-2xx and the CPU per request of the machine, the gateway, the
#   runner with its workers and nats-server.
# split_down LABEL: stops the stack and drops its database.
# SPLIT_CALLGRIND_DIR=DIR runs nr-gateway and nr-runner under callgrind, their counts
#   written to DIR/<label>.<gateway|runner>.<pid> (see cg-locks.sh).
# SPLIT_NATS_PPROF_DIR=DIR gives each nats-server a profiling port (PORT + 2000) and
#   records nats-server's own CPU profile of every run (Go's pprof, with its function
#   names) into DIR/<label>.<n>.pb.gz; `go tool pprof -top` reads them.

declare -A S_DIR S_PIDS S_GW S_RUNNER S_NATS S_TOKEN S_PORT S_DB
APP_DIR="$ROOT/load-tests/apps/starter"
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

split_up() { # bin_dir label port [open|users|signed]
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
    [ $users = 1 ] && echo "include ./auth.conf"
    [ -n "${SPLIT_NATS_PPROF_DIR:-}" ] && echo "prof_port: $((port + 2000))"; } >"$d/nats.conf"
  [ $users = 1 ] && "$bin/noderouter" nats-config --passwords "$d/passwords.json" --out "$d/auth.conf"
  "$NATS" -c "$d/nats.conf" >"$d/nats.log" 2>&1 & pids+=($!)
  S_NATS[$label]=$!
  for _ in $(seq 1 50); do port_open 127.0.0.1 $np && break; sleep 0.1; done
  start() { # role binary VAR=VALUE...
    local role=$1 b=$2; shift 2
    local creds=()
    [ $users = 1 ] && creds=(NR_NATS_USER="$role" NR_NATS_PASSWORD="$("$bin/noderouter" nats-config \
      --passwords "$d/passwords.json" --password-of "$role")")
    [ $signed = 1 ] && creds+=(RUNNER_SECRET="$key")
    local wrap=()
    [ -n "${SPLIT_CALLGRIND_DIR:-}" ] && { [ "$role" = gateway ] || [ "$role" = runner ]; } &&
      wrap=(valgrind -q --tool=callgrind --callgrind-out-file="$SPLIT_CALLGRIND_DIR/$label.$role.%p")
    env RUST_LOG=warn NO_COLOR=1 NR_NATS_URL="nats://127.0.0.1:$np" \
      DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" NR_OBJECT_STORE_URL="$d/objects" \
      NR_PYTHON="$NR_PYTHON" "${creds[@]}" "${dev[@]}" "$@" "${wrap[@]}" "$bin/$b" >"$d/$b.log" 2>&1 &
    pids+=($!)
  }
  start registry nr-registry NR_HEALTH_ADDR="127.0.0.1:$((port + 1))"
  # The registry makes the streams the others use.
  for _ in $(seq 1 100); do curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$((port + 1))/healthz" && break; sleep 0.1; done
  start deploy nr-deploy NR_HEALTH_ADDR="127.0.0.1:$((port + 2))" NR_DEPLOY_DIR="$d/deploy"
  start gateway nr-gateway NR_HTTP_ADDR="127.0.0.1:$port" NR_JWT_SECRET="$jwt" NR_ADMIN_PASSWORD="$admin"
  S_GW[$label]=$!
  start runner nr-runner NR_HEALTH_ADDR="127.0.0.1:$((port + 3))" NR_RUNNER_DIR="$d/runner"
  S_RUNNER[$label]=$!
  S_DIR[$label]=$d; S_PIDS[$label]="${pids[*]}"; S_PORT[$label]=$port; S_DB[$label]=$db
  for _ in $(seq 1 300); do
    token=$(curl -fsS --max-time 1 -X POST "http://127.0.0.1:$port/api/auth/login" -H 'Content-Type: application/json' \
      -d "{\"username\":\"admin\",\"password\":\"$admin\"}" 2>/dev/null |
      "$NR_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["token"])' 2>/dev/null)
    [ -n "$token" ] && curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$((port + 3))/healthz" && break
    sleep 0.2
  done
  S_TOKEN[$label]=$token
  if ! NR_TOKEN=$token "$bin/noderouter" app deploy "$APP_DIR" --url "http://127.0.0.1:$port" >"$d/deploy.log" 2>&1; then
    echo "$label: deploy failed (see $d)"; split_down "$label"; return 1
  fi
  # Warm every worker of the pool before measuring.
  NR_TOKEN=$token BODY='{}' wrk -t2 -c64 -d2s -s "$ROOT/load-tests/post.lua" "http://127.0.0.1:$port/api/sync/starter" >/dev/null 2>&1
}

split_measure() { # label connections [perf_file]
  local label=$1 c=$2 out m0 g0 r0 n0 m1 g1 r1 n1 reqs perf=()
  local gw=${S_GW[$label]} runner=${S_RUNNER[$label]} nats=${S_NATS[$label]}
  [ -n "${3:-}" ] && perf=(${AB_PERF_CMD:-perf record -q -a -e cpu-clock -F 499} -o "$3" --)
  local prof="" profpid=""
  if [ -n "${SPLIT_NATS_PPROF_DIR:-}" ]; then
    mkdir -p "$SPLIT_NATS_PPROF_DIR"; prof=$SPLIT_NATS_PPROF_DIR/$label.$(date +%s%N).pb.gz
    curl -fsS -o "$prof" "http://127.0.0.1:$((${S_PORT[$label]} + 2000))/debug/pprof/profile?seconds=$((SECS > 2 ? SECS - 1 : 1))" & profpid=$!
  fi
  m0=$(busy_ticks); g0=$(tree_ticks $gw); r0=$(tree_ticks $runner); n0=$(tree_ticks $nats)
  out=$(NR_TOKEN=${S_TOKEN[$label]} BODY='{}' "${perf[@]}" wrk -t$([ $c = 1 ] && echo 1 || echo 2) -c$c -d${SECS}s --latency \
    -s "$ROOT/load-tests/post.lua" "http://127.0.0.1:${S_PORT[$label]}/api/sync/starter" 2>&1)
  m1=$(busy_ticks); g1=$(tree_ticks $gw); r1=$(tree_ticks $runner); n1=$(tree_ticks $nats)
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  [ -n "$profpid" ] && wait "$profpid"
  printf '%-5s c=%-3s %9s req/s  p50 %8s  p99 %8s  non-2xx=%-4s CPU µs/req: machine %4s gateway %3s runner+workers %3s nats %3s\n' \
    "$label" $c "$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" \
    "$(awk '$1=="99%"{print $2}' <<<"$out")" "$(awk '/Non-2xx/{print $5}' <<<"$out")" \
    $(for p in "$m0 $m1" "$g0 $g1" "$r0 $r1" "$n0 $n1"; do
        set -- $p; awk -v a="$1" -v b="$2" -v n="${reqs:-0}" 'BEGIN {printf "%d ", n ? (b - a) * 10000 / n : 0}'
      done)
}

split_down() { # label
  local label=$1 pids
  read -ra pids <<<"${S_PIDS[$label]}"
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE ${S_DB[$label]} WITH (FORCE)" postgres
  rm -rf "${S_DIR[$label]}"
}
