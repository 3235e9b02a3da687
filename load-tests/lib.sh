# Shared by the load-test scripts: builds the release binaries, starts the platform (all
# services in one process) on 127.0.0.1:$PORT with the example apps, exports NR_TOKEN
# (the admin session token it prints), deploys benchmark apps, and stops it all on exit.
# Sets BASE (the gateway's URL), PID (the platform's) and DATA (its scratch directory).
#
#   source "$(dirname "$0")/lib.sh"
#   bench_start [extra `noderouter up` flags...]
#   bench_deploy "$ROOT/load-tests/apps/bench_select"
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

PORT="${NR_BENCH_PORT:-3999}"
BASE="http://127.0.0.1:$PORT"
# The release binaries: NR_BENCH_TARGET_DIR (a cargo target dir built apart, e.g. with
# NR_BENCH_NO_BUILD=1), else CARGO_TARGET_DIR, else the repository's target/.
TARGET_DIR="${NR_BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}"
NR="$TARGET_DIR/release/noderouter"
NR_LOAD="$TARGET_DIR/release/nr-load"
# Override to try other settings, e.g. ...noderouter?sslmode=disable (libpq and sqlx
# negotiate TLS on loopback by default).
# The benchmarks' own database (the platform's tables, the baselines' `starter_items`),
# made afresh by every `bench_start`: a benchmark never touches the database `scripts/up`
# serves, its apps, jobs and users. NR_BENCH_DATABASE_URL names another one to use as is.
BENCH_DB="${NR_BENCH_DB:-noderouter_bench}"
export DATABASE_URL="${NR_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$BENCH_DB}"

bench_start() {
  ensure_all
  [ -n "${NR_BENCH_DATABASE_URL:-}" ] || fresh_database "$BENCH_DB"
  ensure_nats # the open server the raw NATS floor figures use
  cd "$ROOT"
  if [ -z "${NR_BENCH_NO_BUILD:-}" ]; then
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p noderouter -p nr-load
  fi
  if port_open 127.0.0.1 "$PORT"; then
    echo "port $PORT is taken; set NR_BENCH_PORT" >&2
    exit 1
  fi
  DATA="$(mktemp -d)"
  chmod o+x "$DATA" # the runner directory under it must be reachable by app users
  # The platform runs its own private NATS with credentials, as `scripts/up` does.
  RUST_LOG="${RUST_LOG:-warn}" "$NR" up --http-addr "127.0.0.1:$PORT" \
    --data-dir "$DATA" --embedded-nats-port "${NR_BENCH_NATS_PORT:-4299}" \
    --object-store-url "$DATA/objects" --runner-dir "$DATA/runner" --examples "$ROOT/examples" \
    "$@" >"$DATA/platform.log" 2>&1 &
  PID=$!
  trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
  # Ready once it writes the admin session token (to a file of its data directory, not
  # to its output); every API call then carries it.
  local _
  for _ in $(seq 1 150); do
    NR_TOKEN="$(cat "$DATA/admin.token" 2>/dev/null || true)"
    if [ -n "$NR_TOKEN" ]; then
      export NR_TOKEN
      # The read-only NATS credentials (`nr-load async` follows job progress with them).
      set -a
      # shellcheck disable=SC1091
      . "$DATA/nats/reader.env"
      set +a
      if curl -sf -X POST "$BASE/api/sync/hello" -H "Authorization: Bearer $NR_TOKEN" \
        -H 'Content-Type: application/json' -d '{}' >/dev/null 2>&1; then
        return 0
      fi
    fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "the platform did not come up on $BASE:" >&2
  tail -n 20 "$DATA/platform.log" >&2
  exit 1
}

# Deploys app folders (each folder's name is its app_name) and waits until each answers.
bench_deploy() {
  local dir app _
  for dir in "$@"; do
    app="$(basename "$dir")"
    if ! "$NR" app deploy "$dir" --url "$BASE" >"$DATA/deploy-$app.log" 2>&1; then
      echo "cannot deploy $dir:" >&2
      cat "$DATA/deploy-$app.log" >&2
      exit 1
    fi
    for _ in $(seq 1 50); do
      curl -sf -X POST "$BASE/api/sync/$app" -H "Authorization: Bearer $NR_TOKEN" \
        -H 'Content-Type: application/json' -d '{}' \
        >/dev/null 2>&1 && continue 2
      sleep 0.2
    done
    echo "app $app does not answer after its deploy" >&2
    exit 1
  done
}
