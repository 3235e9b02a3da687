# Shared set-up steps for scripts/up and scripts/test: each installs or starts what is
# missing and leaves alone what is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NR_PYTHON="${NR_PYTHON:-$ROOT/.venv/bin/python}"
PG_HOST=127.0.0.1
PG_PORT=5432

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing $*: install it (apt-get install $*) or run this script as root" >&2
    exit 1
  fi
  if [ -z "${NR_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    export NR_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ensure_postgres() {
  if port_open "$PG_HOST" "$PG_PORT"; then return; fi
  log "starting Postgres"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n1)"
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 50); do port_open "$PG_HOST" "$PG_PORT" && return; sleep 0.2; done
  echo "Postgres did not start on $PG_HOST:$PG_PORT" >&2
  exit 1
}

ensure_database() {
  local db="$1"
  if ! psql -h "$PG_HOST" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" postgres | grep -q 1; then
    log "creating database $db"
    psql -h "$PG_HOST" -U postgres -qc "CREATE DATABASE \"$db\"" postgres
  fi
}

# Drops `db` if it exists (closing its connections) and creates it empty.
fresh_database() {
  local db="$1"
  PGOPTIONS="-c client_min_messages=warning" \
    psql -h "$PG_HOST" -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" postgres
  psql -h "$PG_HOST" -U postgres -qc "CREATE DATABASE \"$db\"" postgres
}

nats_bin() { command -v nats-server || echo /usr/sbin/nats-server; }

# The binary only: `noderouter up` starts its own private nats-server with generated
# credentials, and the tests start one per test.
ensure_nats_bin() {
  [ -x "$(nats_bin)" ] || apt_install nats-server
}

# An open nats-server on 127.0.0.1:4222 (no credentials): only for the load tests' raw
# NATS floor figures. Never for the platform.
ensure_nats() {
  ensure_nats_bin
  if port_open 127.0.0.1 4222; then return; fi
  log "starting nats-server with JetStream (open, for benchmarks)"
  mkdir -p /var/lib/nats-server 2>/dev/null || true
  local store=/var/lib/nats-server
  [ -w "$store" ] || store="$ROOT/.data/nats"
  mkdir -p "$store"
  nohup "$(nats_bin)" -a 127.0.0.1 -p 4222 -js -sd "$store" >"$ROOT/.data/nats.log" 2>&1 &
  for _ in $(seq 1 50); do port_open 127.0.0.1 4222 && return; sleep 0.1; done
  echo "nats-server did not start; see .data/nats.log" >&2
  exit 1
}

# Apps run as users of their own (docs/security.md): they must be able to run the
# interpreter, so the venv is made from the system Python, never from one under a
# private home such as /root/.pyenv.
python_reachable() {
  [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null ||
    setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c 'exec "$0" -c ""' "$NR_PYTHON" 2>/dev/null
}

ensure_python() {
  if [ -x "$NR_PYTHON" ] && "$NR_PYTHON" -c 'import psycopg2, nats, msgpack, schemathesis' 2>/dev/null && python_reachable; then return; fi
  log "preparing the Python environment (.venv)"
  if [ "$NR_PYTHON" = "$ROOT/.venv/bin/python" ]; then
    local py=python3
    [ -x /usr/bin/python3 ] && py=/usr/bin/python3
    "$py" -m venv --clear "$ROOT/.venv" 2>/dev/null || { apt_install python3-venv; "$py" -m venv --clear "$ROOT/.venv"; }
  fi
  "$NR_PYTHON" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
}

# Headless Chromium for the browser tests of the admin shell.
ensure_browser() {
  [ -x /usr/bin/chromium ] || { log "installing chromium (browser tests)"; apt_install chromium; }
}

# An S3-compatible server for the object-store tests and the multi-process topology:
# s3s-fs from crates.io, built once into .tools/bin (a few minutes on a fresh machine).
# NR_S3_SERVER: a built s3s-fs to use instead (the tests' testkit reads it too).
S3S_VERSION=0.14.1
s3_bin() { echo "${NR_S3_SERVER:-$ROOT/.tools/bin/s3s-fs}"; }
ensure_s3() {
  local bin; bin="$(s3_bin)"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$S3S_VERSION"; then return; fi
  if [ -n "${NR_S3_SERVER:-}" ]; then
    echo "NR_S3_SERVER=$NR_S3_SERVER is not an s3s-fs $S3S_VERSION" >&2
    exit 1
  fi
  log "building the S3-compatible test server (s3s-fs $S3S_VERSION)"
  cargo install -q s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$ROOT/.tools"
}

ensure_all() {
  mkdir -p "$ROOT/.data"
  ensure_postgres
  ensure_nats_bin
  ensure_python
  ensure_database noderouter
}
