#!/usr/bin/env bash
# Sync req/s and async jobs/s on the multi-process topology, with three runners and with
# one: starts the topology (scripts/topology up) when it is not running, measures with
# load-tests/topology_scale.py (bounded runs), leaves it running. SECONDS_PER_RUN (10),
# CONNECTIONS (16), JOBS (300), CLIENTS (8). NR_BIN_DIR: the binaries to start (e.g.
# `NR_BIN_DIR=target/release`, relative to where it is run; unset: target/release, built
# first); a topology already running keeps the binaries it was started with.
source "$(dirname "$0")/../scripts/lib.sh"
if [ -n "${NR_BIN_DIR:-}" ]; then
  NR_BIN_DIR="$(cd "$NR_BIN_DIR" && pwd)" || { echo "NR_BIN_DIR=$NR_BIN_DIR is not a directory" >&2; exit 1; }
  export NR_BIN_DIR
fi
cd "$ROOT"
scripts/topology status >/dev/null 2>&1 || scripts/topology up
exec "$NR_PYTHON" load-tests/topology_scale.py
