#!/usr/bin/env bash
# Where the CPU of sync calls goes. Starts the platform like sync.sh, runs wrk at 64
# connections against APP (default hello) under a system-wide `perf record`
# (cpu-clock, 499 Hz per CPU), and prints req/s and the CPU by command in µs per request.
#
#   load-tests/profile/sync-profile.sh
#   APP=bench_select SECONDS_PER_RUN=10 load-tests/profile/sync-profile.sh
#   APP=starter load-tests/profile/sync-profile.sh   # the guide's starter (run.sh's app)
source "$(dirname "$0")/../lib.sh"
command -v perf >/dev/null || apt_install linux-perf
command -v wrk >/dev/null || apt_install wrk
APP="${APP:-hello}"
DUR="${SECONDS_PER_RUN:-10}"
HZ=499
bench_start
bench_deploy "$ROOT/load-tests/apps/bench_select" "$ROOT/load-tests/apps/starter"
PERF="${PERF_OUT:-$DATA/perf.data}"
out="$(perf record -a -g -e cpu-clock -F "$HZ" -o "$PERF" -- env BODY='{}' \
  wrk -t2 -c64 -d"${DUR}s" --latency -s "$ROOT/load-tests/post.lua" "$BASE/api/sync/$APP" 2>/dev/null)"
requests="$(awk '/requests in/ {print $1}' <<<"$out")"
printf '%s c=64 (under perf): %s req/s   p50 %s   p99 %s   %s requests\n' "$APP" \
  "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
  "$(awk '$1 == "99%" {print $2}' <<<"$out")" "$requests"
set +o pipefail
echo "CPU by command ($(nproc) cores; µs of CPU per request; swapper = idle):"
perf report -i "$PERF" --stdio --no-children -g none --show-nr-samples --sort comm 2>/dev/null |
  awk -v n="$requests" -v hz="$HZ" '!/^#/ && NF >= 3 {
    printf "  %-18s %6s   %7.1f us/req\n", $3, $1, $2 / hz * 1e6 / n }' | head -n 10
echo "hottest symbols in the platform process (tokio-rt-worker):"
perf report -i "$PERF" --stdio --no-children -g none --comm tokio-rt-worker --sort dso,sym 2>/dev/null |
  awk '!/^#/ && NF >= 3' | head -n 12 | sed 's/^/  /'
