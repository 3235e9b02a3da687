#!/usr/bin/env bash
# What the bus's locks cost the sync path between separate services, paired: one build,
# one stack per configuration (its own nats-server, nr-registry, nr-deploy, nr-gateway
# and nr-runner, the guide's starter app deployed), all started once and kept up, then
# ROUNDS rounds of wrk at 64 connections on each stack in turn, each round starting one
# stack later. A fresh stack per run (ab-split.sh) adds each start's own luck (where its
# processes and memory land) to the comparison, about ±15 % per run on two cores; here
# every stack is measured many times and each round's runs are seconds apart.
#
#   load-tests/ab-locks.sh BIN_DIR [rounds] [generations]
#
# Configurations: "locked" (NATS users and permissions, signed requests and replies: as
# shipped), "open" (neither; NR_INSECURE_DEV=1), and with AB_PARTS=1 "users" (NATS users,
# unsigned) and "signd" (signed, NATS open). Prints each run's line (req/s, latency, CPU
# per request of the machine, the gateway, the runner with its workers and nats-server)
# and, at the end, per configuration: the median req/s, the median of its per-round
# ratio to "open", and the median CPU per request. SECONDS_PER_RUN (default 5) sets the
# length of a run. The idle stacks' timers (heartbeats, sweeps) run during every run.
# AB_AA=1 adds "open2", a second stack configured exactly as "open": its ratio to "open"
# is what this method makes of two identical configurations, the resolution of every
# other ratio it prints. With GENERATIONS above 1 (default 1), every stack is brought
# down and up again that many times, ROUNDS rounds each, so the luck of one start (where
# its processes and memory land, which persists over its rounds) is sampled too; the
# summary then also gives each generation's median ratios.
# AB_PERF_DIR=DIR records each run under a system-wide `perf record` (cpu-clock, 499 Hz)
# into DIR/<label>.<round>.data.
set -u
source "$(dirname "$0")/../scripts/lib.sh"
set +e +o pipefail
command -v wrk >/dev/null || apt_install wrk
[ -n "${AB_PERF_DIR:-}" ] && { command -v perf >/dev/null || apt_install linux-perf; mkdir -p "$AB_PERF_DIR"; }
BIN=$(cd "$1" && pwd); ROUNDS=${2:-10}; GENERATIONS=${3:-1}; SECS=${SECONDS_PER_RUN:-5}
ensure_python
source "$ROOT/load-tests/split-lib.sh"

labels=(locked open); modes=("" open); ports=(3971 3976)
[ "${AB_PARTS:-0}" = 1 ] && { labels+=(users signd); modes+=(users signed); ports+=(3981 3986); }
[ "${AB_AA:-0}" = 1 ] && { labels+=(open2); modes+=(open); ports+=(3991); }
up=()
trap 'for l in "${up[@]}"; do split_down "$l"; done' EXIT
log=$(mktemp)
n=${#labels[@]}
echo "bus locks A/B, separate services, guide's starter app, ${SECS}s per run, $(nproc) cores, $n stacks up, $GENERATIONS generation(s) of $ROUNDS rounds"
for gen in $(seq 1 "$GENERATIONS"); do
  for i in "${!labels[@]}"; do
    split_up "$BIN" "${labels[$i]}" "${ports[$i]}" ${modes[$i]} || exit 1
    up+=("${labels[$i]}")
  done
  for round in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((n - 1))); do
      l=${labels[$(((round + k) % n))]}
      split_measure "$l" 64 ${AB_PERF_DIR:+"$AB_PERF_DIR/$l.$gen.$round.data"} | sed "s/^/gen $gen /" | tee -a "$log" | sed "s/^/round $round  /"
    done
  done
  for l in "${up[@]}"; do split_down "$l"; done
  up=()
done
"$NR_PYTHON" - "$log" "$ROUNDS" "${labels[@]}" <<'EOF'
import re, statistics, sys
path, rounds, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {l: [] for l in labels}
gens = {}
for line in open(path):
    m = re.match(r"gen (\d+) (\S+)\s+c=64\s+([\d.]+) req/s.*machine\s+(\d+) gateway\s+(\d+) runner\+workers\s+(\d+) nats\s+(\d+)", line)
    if m and m.group(2) in runs:
        runs[m.group(2)].append([float(x) for x in m.groups()[2:]])
        gens.setdefault(m.group(1), {l: [] for l in labels})[m.group(2)].append(float(m.group(3)))
if len(gens) > 1:
    print("\nper generation, median ÷ open per round: " + "  ".join(labels))
    for g, r in gens.items():
        print(f"generation {g}: " + "  ".join(
            f"{statistics.median(a / b for a, b in zip(r[l], r['open']) if b):.3f}" if r[l] else "-"
            for l in labels))
print(f"\nmedians over {len(runs['open'])} rounds: req/s | ÷ open, per round | CPU µs/req machine / gateway / runner+workers / nats")
for l in labels:
    r = runs[l]
    if not r or not runs["open"]:
        print(f"{l:6} no runs"); continue
    ratios = [a[0] / b[0] for a, b in zip(r, runs["open"]) if b[0]]
    cpu = " / ".join(f"{statistics.median(x[i] for x in r):.0f}" for i in range(1, 5))
    print(f"{l:6} {statistics.median(x[0] for x in r):8.0f} | {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f}) | {cpu}")
EOF
rm -f "$log"
