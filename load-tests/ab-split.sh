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
ensure_python
source "$ROOT/load-tests/split-lib.sh"

one() { # bin_dir label port [open|users|signed]
  split_up "$@" || return
  split_measure "$2" 64 ${AB_PERF_DIR:+"$AB_PERF_DIR/$2.$round.data"}
  split_measure "$2" 1
  split_down "$2"
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
