#!/usr/bin/env bash
# Where the time of async jobs goes. Starts the platform like async.sh, runs the
# saturated job benchmark under a system-wide `perf record` (cpu-clock, 499 Hz per
# CPU), and prints:
#   - the benchmark's own lines (jobs/s, latencies);
#   - Postgres work per job: commits, WAL bytes and WAL flushes (whole server);
#   - CPU by command over the run, in ms of CPU per job (swapper = idle);
#   - the hottest functions of nats-server (gosym.py names them in the stripped binary);
#   - the Python side split into the app hosts (which fork) and the per-job workers,
#     and the kernel paths its CPU goes to (fork, page faults, exit).
#
#   load-tests/profile/async-profile.sh
#   RUNNERS=2 APP=hello JOBS=2000 load-tests/profile/async-profile.sh
#   PERF_OUT=/tmp/async.perf load-tests/profile/async-profile.sh   # keep the recording
source "$(dirname "$0")/../lib.sh"
command -v perf >/dev/null || apt_install linux-perf
JOBS="${JOBS:-2000}"
CONCURRENCY="${CONCURRENCY:-64}"
APP="${APP:-bench_noop}"
HZ=499
bench_start --runners "${RUNNERS:-1}"
bench_deploy "$ROOT/load-tests/apps/bench_noop" "$ROOT/load-tests/apps/bench_select"
# Any other app of load-tests/apps (e.g. APP=starter, the guide's starter).
[ -d "$ROOT/load-tests/apps/$APP" ] && [ "$APP" != bench_noop ] && [ "$APP" != bench_select ] &&
  bench_deploy "$ROOT/load-tests/apps/$APP"
"$NR_LOAD" async --url "$BASE" --app "$APP" --jobs 20 --concurrency 4 --label warm-up >/dev/null
PERF="${PERF_OUT:-$DATA/perf.data}"
DB_NAME="${DATABASE_URL##*/}"
DB_NAME="${DB_NAME%%\?*}"
pgq() { psql -h 127.0.0.1 -U postgres -tA -F ' ' "$DB_NAME" -c "$1"; }
pg_snapshot() {
  pgq "SELECT xact_commit, pg_current_wal_lsn(), (SELECT wal_sync FROM pg_stat_wal)
       FROM pg_stat_database WHERE datname = '$DB_NAME'"
}
# Postgres publishes backend counters up to ~10 s late; wait them out around the run.
sleep 11
read -r x0 lsn0 s0 < <(pg_snapshot)
perf record -a -g -e cpu-clock -F "$HZ" -o "$PERF" -- \
  "$NR_LOAD" async --url "$BASE" --app "$APP" --jobs "$JOBS" --concurrency "$CONCURRENCY" \
  --label "profiled c=$CONCURRENCY" 2>"$DATA/perf.log"
sleep 11
read -r x1 lsn1 s1 < <(pg_snapshot)
wal="$(pgq "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")"
awk -v db="$DB_NAME" -v n="$JOBS" -v x="$((x1 - x0))" -v w="$wal" -v s="$((s1 - s0))" 'BEGIN {
  printf "postgres per job: %.2f commits, %.0f WAL bytes, %.2f WAL flushes (whole server; commits: database %s)\n", x/n, w/n, s/n, db }'

# `head` closing a pipe must not end the script.
set +o pipefail
report() { perf report -i "$PERF" --stdio --no-children -g none --show-nr-samples "$@" 2>/dev/null | awk '!/^#/ && NF >= 3'; }
echo "CPU by command over the run ($(nproc) cores; ms of CPU per job; swapper = idle):"
report --sort comm | awk -v n="$JOBS" -v hz="$HZ" '{
  printf "  %-18s %6s   %7.3f ms/job\n", $3, $1, $2 / hz * 1000 / n }' | head -n 10
# The app host is the python process with the most samples; the rest are job workers.
host="$(report --comm python --sort pid | head -n 1 | awk '{split($3, a, ":"); print a[1]}')"
echo "python CPU by process and kernel path (host = the app host, which forks; workers = one per job):"
perf script -i "$PERF" -F comm,pid,ip,sym 2>/dev/null | awk -v HOST="$host" '
  BEGIN { RS = ""; FS = "\n" }
  {
    split($1, h, " "); if (h[1] != "python") next
    if ($0 ~ /kernel_clone/) cat = "fork (kernel_clone)"
    else if ($0 ~ /do_exit/) cat = "exit (address-space teardown)"
    else if ($0 ~ /asm_exc_page_fault/) cat = "page faults (copy-on-write)"
    else if ($0 ~ /entry_SYSCALL/) cat = "other system calls"
    else cat = "user space (interpreter, libc)"
    n[(h[2] == HOST ? "host    " : "workers ") cat]++
  }
  END { for (k in n) print n[k] "\t" k }' | sort -t$'\t' -k2 |
  awk -F'\t' -v n="$JOBS" -v hz="$HZ" '{ printf "  %7.3f ms/job  %s\n", $1 / hz * 1000 / n, $2 }'
echo "hottest symbols in the platform process (tokio-rt-worker):"
report --comm tokio-rt-worker --sort dso,sym | head -n 8 | sed 's/^/  /'
echo "hottest functions in nats-server (% of all samples; named from its .gopclntab):"
report --comm nats-server --sort sym | python3 "$ROOT/load-tests/profile/gosym.py" "$(command -v nats-server || echo /usr/sbin/nats-server)" |
  head -n 6 | sed 's/^/  /'
