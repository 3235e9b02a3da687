#!/usr/bin/env bash
# Sync req/s and async jobs/s on the multi-process topology, with three runners and with
# one: starts the topology (scripts/topology up) when it is not running, measures with
# load-tests/topology_scale.py (bounded runs), leaves it running. SECONDS_PER_RUN (10),
# CONNECTIONS (16), JOBS (300), CLIENTS (8).
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
scripts/topology status >/dev/null 2>&1 || scripts/topology up
exec "$NR_PYTHON" load-tests/topology_scale.py
