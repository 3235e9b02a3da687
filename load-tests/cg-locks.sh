#!/usr/bin/env bash
# What the bus's locks cost the services themselves, in instructions: a count, not a
# time, so it is the same on a busy or an idle machine. One build, two stacks of
# separate services one after the other ("open": NR_INSECURE_DEV=1, no NATS users;
# "locked": as shipped), nr-gateway and nr-runner under callgrind; after the warm-up
# the counters are zeroed, wrk sends sync calls to the guide's starter app at 4
# connections for SECONDS_PER_RUN seconds (default 20), and each service's
# instructions per request are printed with the functions that differ most.
# nats-server (Go) does not run under valgrind, and the kernel is not counted.
#
#   load-tests/cg-locks.sh BIN_DIR
set -u
source "$(dirname "$0")/../scripts/lib.sh"
set +e +o pipefail
command -v wrk >/dev/null || apt_install wrk
command -v valgrind >/dev/null || apt_install valgrind
BIN=$(cd "$1" && pwd); SECS=${SECONDS_PER_RUN:-20}
ensure_python
out=$(mktemp -d); export SPLIT_CALLGRIND_DIR=$out
source "$ROOT/load-tests/split-lib.sh"
declare -A REQS
trap 'rm -rf "$out"' EXIT
for label in open locked; do
  mode=$([ $label = open ] && echo open)
  split_up "$BIN" "$label" 3991 $mode || exit 1
  callgrind_control -z "${S_GW[$label]}" >/dev/null; callgrind_control -z "${S_RUNNER[$label]}" >/dev/null
  res=$(NR_TOKEN=${S_TOKEN[$label]} BODY='{}' wrk -t1 -c4 -d${SECS}s -s "$ROOT/load-tests/post.lua" \
    "http://127.0.0.1:3991/api/sync/starter" 2>&1)
  REQS[$label]=$(awk '/requests in/{print $1}' <<<"$res")
  callgrind_control -d "${S_GW[$label]}" >/dev/null; callgrind_control -d "${S_RUNNER[$label]}" >/dev/null
  echo "$label: ${REQS[$label]} requests, non-2xx: $(awk '/Non-2xx/{print $5}' <<<"$res")"
  split_down "$label"
done
for role in gateway runner; do
  echo "$role:"
  # The dump taken after the run is the file with the .1 suffix.
  "$NR_PYTHON" "$ROOT/load-tests/cg/compare.py" "$(ls "$out"/open.$role.*.1)" "${REQS[open]}" \
    "$(ls "$out"/locked.$role.*.1)" "${REQS[locked]}" "${TOP:-12}"
done
