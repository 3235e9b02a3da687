#!/bin/sh
# Creates the platform's JetStream streams with three replicas before the services
# start. The services create missing streams themselves, with one replica, and use an
# existing stream as it is; so creating them here first is what makes them replicated.
# Subjects, retention, storage, age and duplicate window are those of
# nr_infra::bus::ensure_streams (shared/infra/src/bus.rs).
set -eu
NATS="nats --server ${NATS_URL:-nats://nats:4222}"

# Wait until the cluster has elected its JetStream meta leader.
tries=0
until $NATS stream ls >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt 120 ] || { echo "JetStream did not become available" >&2; exit 1; }
  sleep 1
done

add() {
  name=$1
  shift
  if $NATS stream info "$name" >/dev/null 2>&1; then
    echo "stream $name exists"
    return
  fi
  $NATS stream add "$name" --defaults --storage file --replicas 3 --discard old "$@" >/dev/null
  echo "stream $name created"
}

add NR_APPS       --subjects 'app.updated.>'       --retention limits --dupe-window 2m
add NR_JOBS       --subjects 'job.submitted.>'     --retention work   --dupe-window 2m
add NR_JOB_EVENTS --subjects 'job.progress.>'      --retention limits --max-age 24h
add NR_ACTIONS    --subjects 'action.triggered.>'  --retention limits --max-age 168h
